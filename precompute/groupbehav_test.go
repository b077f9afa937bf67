package precompute_test

import (
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

func companyCheckout(team int64, did, company, uuid string, at time.Time) *ingestv1.Envelope {
	return &ingestv1.Envelope{Kind: &ingestv1.Envelope_Event{Event: &ingestv1.Event{
		Team: team, DistinctId: did, Event: "checkout", Uuid: uuid, Timestamp: timestamppb.New(at),
		Properties: map[string]string{"$groups": `{"company": "` + company + `"}`}}}}
}

// TestGroupBehavioralCohortWindow is the group-aggregated form of
// TestBehavioralCohortWindow: a flag aggregating on company targets
// "companies that performed checkout at least 2 times in the last 5
// minutes". One event from a member of acme leaves it off, a second from
// another member turns it on, and it turns off exactly when the first ages
// out, on the live and the precomputed path alike; a redelivered event
// counts once; another company stays off. Each of the company's two
// transitions is signalled once, with the group in place of a person.
func TestGroupBehavioralCohortWindow(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b)
			id := e.createCohort(flags.Cohort{Name: "checked out twice", Kind: flags.CohortBehavioral, Filters: flags.PropertyGroup{Type: "AND",
				Values: []flags.PropertyNode{{Filter: &flags.PropertyFilter{Key: "checkout", Type: "behavioral", Value: mustJSON("performed_event_multiple"),
					Operator: "gte", OperatorValue: mustJSON(2), TimeValue: mustJSON(5), TimeInterval: "minute", EventType: "events"}}}}})
			e.createFlag(parseFlag(t, fmt.Sprintf(`{"key":"busy-company","active":true,"filters":{"aggregation_group_type_index":0,"groups":[{"properties":[{"key":"id","type":"cohort","value":%d}],"rollout_percentage":100}]}}`, id)))
			e.notify(changes.KindFlag)
			e.startWorker(precompute.Config{})
			for _, c := range []string{"acme", "globex"} {
				v := int64(1)
				e.ingest(&ingestv1.Envelope{Kind: &ingestv1.Envelope_GroupUpdate{GroupUpdate: &ingestv1.GroupUpdate{
					Team: e.team, GroupTypeIndex: 0, GroupKey: c, Set: map[string]string{"name": `"` + c + `"`}, Version: &v}}})
			}
			e.ingest(pu(e.team, "P1", 1, []string{"u1"}, nil))
			e.ingest(pu(e.team, "P2", 1, []string{"u2"}, nil))
			e.waitQuiet()

			check := func(step, company string, want bool, source string) {
				t.Helper()
				body := `{"distinct_id":"u1","groups":{"company":"` + company + `"},"api_key":"` + e.token + `"}`
				for _, svc := range []struct {
					name string
					h    http.Handler
				}{{"live", e.lh}, {"stored", e.sh}} {
					name := svc.name
					var got bool
					var src string
					polltest.Eventually(t, time.Minute, func() error {
						resp, hdr := flagsResponse(t, svc.h, body, true)
						f, _ := resp["flags"].(map[string]any)["busy-company"].(map[string]any)
						got, _ = f["enabled"].(bool)
						src = sources(hdr)["busy-company"]
						if name == "stored" && source != "" && src != source {
							return fmt.Errorf("%s: the stored service answered from %q, want %q", step, src, source)
						}
						return nil
					})
					if got != want {
						t.Fatalf("%s (%s): %s path says %v, want %v (source %s)", step, company, name, got, want, src)
					}
				}
			}
			t0 := e.clock.Now()
			check("no events", "acme", false, "stored")

			e.ingest(companyCheckout(e.team, "u1", "acme", "e1", t0.Add(-3*time.Minute)))
			e.ingest(companyCheckout(e.team, "u1", "globex", "g1", t0.Add(-3*time.Minute)))
			e.waitQuiet()
			check("one checkout", "acme", false, "stored")

			e.ingest(companyCheckout(e.team, "u1", "acme", "e1", t0.Add(-3*time.Minute))) // redelivered
			e.waitQuiet()
			check("the same checkout again", "acme", false, "stored")

			e.ingest(companyCheckout(e.team, "u2", "acme", "e2", t0.Add(-time.Minute))) // another member
			e.waitQuiet()
			check("second checkout, by another member", "acme", true, "stored")
			check("the other company", "globex", false, "stored")

			// The first ages out at t0+2m: just before, still on; at that
			// instant, off (the worker wakes at valid_until and stores it).
			e.clock.advance(2*time.Minute - time.Second)
			e.waitQuiet()
			check("one second before the first ages out", "acme", true, "stored")
			e.clock.advance(time.Second)
			check("the first aged out", "acme", false, "")
			body := `{"distinct_id":"u1","groups":{"company":"acme"},"api_key":"` + e.token + `"}`
			polltest.Eventually(t, time.Minute, func() error {
				_, hdr := flagsResponse(t, e.sh, body, true)
				if src := sources(hdr)["busy-company"]; src != "stored" {
					return fmt.Errorf("after valid_until the stored service answers from %q, not yet stored again", src)
				}
				return nil
			})
			check("stored again after the wake-up", "acme", false, "stored")

			// The company's transitions were signalled once each, as a
			// person's are: entered with the second member's checkout,
			// left at the exact instant the first aged out; globex, with
			// one checkout, never entered.
			e.waitQuiet()
			want := []signals.Signal{
				{Type: "cohort.entered", Team: e.team, Cohort: id, GroupType: "company", GroupKey: "acme", Direction: signals.Entered,
					Cause: signals.CauseEvent, Time: t0, Ordinal: 1},
				{Type: "cohort.left", Team: e.team, Cohort: id, GroupType: "company", GroupKey: "acme", Direction: signals.Left,
					Cause: signals.CauseTime, Time: t0.Add(2 * time.Minute), Ordinal: 2},
			}
			var got []signals.Signal
			polltest.Eventually(t, time.Minute, func() error {
				got = got[:0]
				for _, s := range cohortSignals(t, e) {
					if s.GroupKey != "" {
						got = append(got, s)
					} else if s.GroupType != "" {
						t.Fatalf("a person's signal with a group type: %+v", s)
					}
				}
				if len(got) < len(want) {
					return fmt.Errorf("%d group signals, want %d", len(got), len(want))
				}
				return nil
			})
			if len(got) != len(want) {
				t.Fatalf("group signals: got %+v, want %+v", got, want)
			}
			for i, w := range want {
				w.ID = signals.GroupSignalID(e.team, 0, "acme", id, w.Direction, w.Ordinal)
				if g := got[i]; g != w || !g.Time.Equal(w.Time) {
					t.Errorf("group signal %d: got %+v, want %+v", i, g, w)
				}
			}
		})
	}
}
