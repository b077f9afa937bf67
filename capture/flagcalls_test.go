package capture

import (
	"net/http"
	"slices"
	"sync"
	"testing"
)

// TestFlagCalls: the $feature_flag_called events of a server SDK that
// evaluated locally (posthog-node and posthog-python send
// locally_evaluated true) reach Config.FlagCalls, counted by flag and
// value, once the request is acknowledged; remote evaluations, events
// without a flag or an answer, and other events do not, and a refused
// request reports nothing.
func TestFlagCalls(t *testing.T) {
	var mu sync.Mutex
	var got []FlagCall
	var teams []int64
	f := newFixture(t, Config{FlagCalls: func(team int64, calls []FlagCall) {
		mu.Lock()
		defer mu.Unlock()
		teams = append(teams, team)
		got = append(got, calls...)
	}})
	body := `{"api_key":"` + token + `","batch":[
	 {"event":"$feature_flag_called","distinct_id":"u1","properties":{"$feature_flag":"beta","$feature_flag_response":true,"locally_evaluated":true}},
	 {"event":"$feature_flag_called","distinct_id":"u2","properties":{"$feature_flag":"beta","$feature_flag_response":true,"locally_evaluated":true}},
	 {"event":"$feature_flag_called","distinct_id":"u3","properties":{"$feature_flag":"beta","$feature_flag_response":false,"locally_evaluated":true}},
	 {"event":"$feature_flag_called","distinct_id":"u1","properties":{"$feature_flag":"mv","$feature_flag_response":"test","locally_evaluated":true,"$feature/mv":"test"}},
	 {"event":"$feature_flag_called","distinct_id":"u1","properties":{"$feature_flag":"remote","$feature_flag_response":true,"locally_evaluated":false}},
	 {"event":"$feature_flag_called","distinct_id":"u1","properties":{"$feature_flag":"old-sdk","$feature_flag_response":true}},
	 {"event":"$feature_flag_called","distinct_id":"u1","properties":{"$feature_flag":"missing","$feature_flag_error":"flag_missing","locally_evaluated":true}},
	 {"event":"$feature_flag_called","distinct_id":"u1","properties":{"$feature_flag_response":true,"locally_evaluated":true}},
	 {"event":"purchase","distinct_id":"u1","properties":{"$feature_flag":"beta","$feature_flag_response":true,"locally_evaluated":true}}
	]}`
	res, out := f.do(t, http.MethodPost, "/batch/", []byte(body), "Content-Type", "application/json")
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, out)
	}
	want := []FlagCall{{"beta", "true", 2}, {"beta", "false", 1}, {"mv", "test", 1}}
	if !slices.Equal(got, want) || !slices.Equal(teams, []int64{7}) {
		t.Errorf("flag calls %+v of teams %v, want %+v of team 7", got, teams, want)
	}
	got, teams = nil, nil
	bad := `{"api_key":"phc_nobody","batch":[{"event":"$feature_flag_called","distinct_id":"u1","properties":{"$feature_flag":"beta","$feature_flag_response":true,"locally_evaluated":true}}]}`
	if res, _ := f.do(t, http.MethodPost, "/batch/", []byte(bad), "Content-Type", "application/json"); res.StatusCode != http.StatusUnauthorized || got != nil {
		t.Errorf("refused request: status %d, flag calls %+v", res.StatusCode, got)
	}
}
