package precompute_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vexil-dev/vexil/changes"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/polltest"
	"github.com/vexil-dev/vexil/precompute"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
	"github.com/vexil-dev/vexil/signals"
)

func checkoutEvent(team int64, did, uuid string, at time.Time) *ingestv1.Envelope {
	return &ingestv1.Envelope{Kind: &ingestv1.Envelope_Event{Event: &ingestv1.Event{
		Team: team, DistinctId: did, Event: "checkout", Uuid: uuid, Timestamp: timestamppb.New(at)}}}
}

// TestBehavioralCohortWindow is the test: a flag targeting
// "performed checkout at least 2 times in the last 5 minutes" turns on with
// the second event and off exactly when the first one ages out, on the live
// path and the precomputed path alike, with a controllable clock. A
// redelivered event (same uuid) counts once.
func TestBehavioralCohortWindow(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b)
			id := e.createCohort(flags.Cohort{Name: "checked out twice", Kind: flags.CohortBehavioral, Filters: flags.PropertyGroup{Type: "AND",
				Values: []flags.PropertyNode{{Filter: &flags.PropertyFilter{Key: "checkout", Type: "behavioral", Value: mustJSON("performed_event_multiple"),
					Operator: "gte", OperatorValue: mustJSON(2), TimeValue: mustJSON(5), TimeInterval: "minute", EventType: "events"}}}}})
			e.createFlag(parseFlag(t, fmt.Sprintf(`{"key":"cart-nudge","active":true,"filters":{"groups":[{"properties":[{"key":"id","type":"cohort","value":%d}],"rollout_percentage":100}]}}`, id)))
			e.notify(changes.KindFlag)
			e.startWorker(precompute.Config{})
			e.ingest(pu(e.team, "P1", 1, []string{"u1"}, map[string]string{"plan": `"pro"`}))
			e.waitQuiet()

			body := `{"distinct_id":"u1","api_key":"` + e.token + `"}`
			// check asks both services at the clock's now; the stored one
			// must answer from the stored result when want is "stored".
			check := func(step string, want bool, source string) {
				t.Helper()
				for _, svc := range []struct {
					name string
					h    http.Handler
				}{{"live", e.lh}, {"stored", e.sh}} {
					name := svc.name
					var got bool
					var src string
					polltest.Eventually(t, time.Minute, func() error {
						resp, hdr := flagsResponse(t, svc.h, body, true)
						f, _ := resp["flags"].(map[string]any)["cart-nudge"].(map[string]any)
						got, _ = f["enabled"].(bool)
						src = sources(hdr)["cart-nudge"]
						if name == "stored" && source != "" && src != source {
							return fmt.Errorf("%s: the stored service answered from %q, want %q", step, src, source)
						}
						return nil
					})
					if got != want {
						t.Fatalf("%s: %s path says %v, want %v (source %s)", step, name, got, want, src)
					}
				}
			}
			t0 := e.clock.Now()
			check("no events", false, "stored")

			e.ingest(checkoutEvent(e.team, "u1", "e1", t0.Add(-3*time.Minute)))
			e.waitQuiet()
			check("one checkout", false, "stored")

			e.ingest(checkoutEvent(e.team, "u1", "e1", t0.Add(-3*time.Minute))) // redelivered
			e.waitQuiet()
			check("the same checkout again", false, "stored")

			e.ingest(checkoutEvent(e.team, "u1", "e2", t0.Add(-time.Minute)))
			e.waitQuiet()
			check("second checkout", true, "stored")

			// The first ages out at t0+2m: just before, still on; at that
			// instant, off (the worker wakes at valid_until and stores it).
			e.clock.advance(2*time.Minute - time.Second)
			e.waitQuiet()
			check("one second before the first ages out", true, "stored")
			e.clock.advance(time.Second)
			check("the first aged out", false, "")
			polltest.Eventually(t, time.Minute, func() error {
				_, hdr := flagsResponse(t, e.sh, body, true)
				if src := sources(hdr)["cart-nudge"]; src != "stored" {
					return fmt.Errorf("after valid_until the stored service answers from %q, not yet stored again", src)
				}
				return nil
			})
			check("stored again after the wake-up", false, "stored")

			// Each transition was signalled once: entered with the second
			// checkout, left at the exact instant the first aged out, however
			// many times the row was recomputed (the redelivered event, the
			// wake-ups, the repairs of the stored service).
			e.waitQuiet()
			want := []signals.Signal{
				{Type: "cohort.entered", Team: e.team, Cohort: id, DistinctID: "u1", PersonID: "P1", Direction: signals.Entered,
					Cause: signals.CauseEvent, Time: t0, Ordinal: 1},
				{Type: "cohort.left", Team: e.team, Cohort: id, DistinctID: "u1", PersonID: "P1", Direction: signals.Left,
					Cause: signals.CauseTime, Time: t0.Add(2 * time.Minute), Ordinal: 2},
			}
			var got []signals.Signal
			polltest.Eventually(t, time.Minute, func() error {
				got = cohortSignals(t, e)
				if len(got) < len(want) {
					return fmt.Errorf("%d signals, want %d", len(got), len(want))
				}
				return nil
			})
			if len(got) != len(want) {
				t.Fatalf("signals: got %+v, want %+v", got, want)
			}
			for i, w := range want {
				w.ID = signals.SignalID(e.team, "u1", id, w.Direction, w.Ordinal)
				if g := got[i]; g != w || !g.Time.Equal(w.Time) {
					t.Errorf("signal %d: got %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

// cohortSignals returns the signals in the signal stream, in order.
func cohortSignals(t *testing.T, e *env) []signals.Signal {
	t.Helper()
	st, err := e.js.Stream(e.ctx, signals.NamesOf("").Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []signals.Signal
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(e.ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != signals.CohortSubject("", e.team) {
			t.Fatalf("signal on %q, want %q", m.Subject, signals.CohortSubject("", e.team))
		}
		var s signals.Signal
		if err := json.Unmarshal(m.Data, &s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func pu(team int64, person string, version int64, ids []string, set map[string]string) *ingestv1.Envelope {
	return &ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonUpdate{PersonUpdate: &ingestv1.PersonUpdate{
		Team: team, PersonId: person, DistinctIds: ids, Set: set, Version: &version}}}
}
