package signals

import "testing"

// TestSignalIDsStable pins two ids: they are stored (the JetStream
// dedup window, the inbox, webhook deliveries) and compared across
// versions, so the bytes hashed must never change.
func TestSignalIDsStable(t *testing.T) {
	if got, want := SignalID(7, "user-1", 42, Entered, 3), "7062c54d3f8a739ff43d56492194db8a"; got != want {
		t.Errorf("SignalID = %s, want %s", got, want)
	}
	if got, want := GroupSignalID(7, 1, "acme", 42, Left, 2), "423702834e5c0436c38c08a6669e11e8"; got != want {
		t.Errorf("GroupSignalID = %s, want %s", got, want)
	}
}
