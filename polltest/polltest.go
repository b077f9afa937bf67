// Package polltest waits in tests for what happens in the background (a
// consumer catching up, a row appearing, a log line) instead of hand-rolled
// deadline and sleep loops. Only tests import it (deps_test.go).
package polltest

import (
	"testing"
	"time"
)

// The pause between attempts starts at firstPause and doubles up to
// maxPause: a condition that holds soon is seen soon, and a long wait does
// not keep a loaded machine busy.
const (
	firstPause = time.Millisecond
	maxPause   = 20 * time.Millisecond
)

// Eventually calls cond until it returns nil. If cond has not returned nil
// when timeout has passed since the call, Eventually fails tb with cond's
// last error and the number of attempts. cond runs on the caller's
// goroutine, one call at a time, so it may call tb.Fatal and keep state
// between calls (a count of successes in a row, a position reached).
//
// The timeout is a hang guard, not an assertion of speed: give it generous
// room (a minute or more), because the machine running the tests may be
// slow and loaded.
func Eventually(tb testing.TB, timeout time.Duration, cond func() error) {
	tb.Helper()
	if timeout <= 0 || cond == nil {
		tb.Fatalf("polltest: Eventually needs a timeout above 0 (got %v) and a condition (nil: %v)", timeout, cond == nil)
		return
	}
	deadline := time.Now().Add(timeout)
	pause := firstPause
	for attempts := 1; ; attempts++ {
		err := cond()
		if err == nil {
			return
		}
		if !time.Now().Before(deadline) {
			tb.Fatalf("not within %v (%d attempts): %v", timeout, attempts, err)
			return
		}
		time.Sleep(min(pause, time.Until(deadline)))
		pause = min(2*pause, maxPause)
	}
}
