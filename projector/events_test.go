package projector_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/flags/counters"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/ingest"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
	"github.com/vexil-dev/vexil/store"
)

// eventSet compiles a team whose one cohort counts checkout events, and
// purchases over 100.
func eventSet(t testing.TB) *flags.Set {
	t.Helper()
	defs, err := flags.ParseDefinitions([]byte(`{"flags": [], "cohorts": {"1": {"type": "OR", "values": [
		{"key": "checkout", "type": "behavioral", "value": "performed_event_multiple", "operator": "gte", "operator_value": 2, "time_value": 5, "time_interval": "minute"},
		{"key": "purchase", "type": "behavioral", "value": "performed_event", "time_value": 1, "time_interval": "day",
		 "event_filters": [{"key": "amount", "type": "event", "operator": "gt", "value": 100}]}]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	set, err := flags.Compile(defs)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func ev(team int64, did, name, uuid string, at time.Time, props map[string]string) *ingestv1.Envelope {
	return &ingestv1.Envelope{Kind: &ingestv1.Envelope_Event{Event: &ingestv1.Event{
		Team: team, DistinctId: did, Event: name, Uuid: uuid, Timestamp: timestamppb.New(at), Properties: props}}}
}

func storedCounters(t testing.TB, st store.Store, team int64, did string) *counters.Row {
	t.Helper()
	row, err := st.GetRow(context.Background(), team, did)
	if err != nil {
		t.Fatalf("GetRow %q: %v", did, err)
	}
	r, err := counters.Decode(row.Counters)
	if err != nil {
		t.Fatalf("counters of %q: %v", did, err)
	}
	return r
}

func count(r *counters.Row, pair uint64) (n int64) {
	for _, b := range r.EventBuckets(pair) {
		n += int64(b.Count)
	}
	return n
}

// TestEventsCounted: tracked events count into their distinct id's row,
// once under duplicates and reordering, in the batch's write; untracked
// events, unmatched event filters and distinct ids without a person are
// not counted (nor later, when the person comes after the event), and a
// person update keeps the counters.
func TestEventsCounted(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			e := startNATS(t)
			st := be.open(t)
			set := eventSet(t)
			now := time.Now().Truncate(time.Second)
			p, err := projector.New(projector.Config{Conn: e.nc, Store: st, AtomicStore: be.atomic, Logger: testLogger(t),
				Events: func(team int64) *flags.Set {
					if team == 1 {
						return set
					}
					return nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			e.publish(t, pu(1, "P1", 1, []string{"a"}, map[string]string{"plan": `"pro"`}, nil), ingest.Protobuf)
			e.publish(t, ev(1, "a", "checkout", "c2", now.Add(-time.Minute), nil), ingest.Protobuf)
			e.publish(t, ev(1, "a", "checkout", "c1", now.Add(-2*time.Minute), nil), ingest.JSON)   // earlier, later
			e.publish(t, ev(1, "a", "checkout", "c2", now.Add(-time.Minute), nil), ingest.Protobuf) // duplicate
			e.publish(t, ev(1, "a", "purchase", "p1", now, map[string]string{"amount": "150"}), ingest.Protobuf)
			e.publish(t, ev(1, "a", "purchase", "p2", now, map[string]string{"amount": "50"}), ingest.Protobuf) // filter fails
			e.publish(t, ev(1, "a", "$pageview", "v1", now, nil), ingest.Protobuf)                              // untracked
			e.publish(t, ev(1, "nobody", "checkout", "n1", now, nil), ingest.Protobuf)                          // no person
			// An event before its person is not counted, even once the
			// person exists (docs/cohorts.md, Whose counters: capture
			// publishes the person first).
			e.publish(t, ev(1, "late", "checkout", "l1", now, nil), ingest.Protobuf)
			e.publish(t, pu(1, "P9", 1, []string{"late"}, nil, nil), ingest.Protobuf)
			e.publish(t, ev(2, "a", "checkout", "t2", now, nil), ingest.Protobuf) // team counts nothing
			r := run(p)
			defer r.stop()
			e.waitApplied(t, projector.DefaultDurable)

			checkout := flags.PairID("checkout", nil)
			pairs := set.EventPairs()
			if len(pairs) != 2 {
				t.Fatalf("pairs %+v", pairs)
			}
			var purchase uint64
			for _, pr := range pairs {
				if pr.Event == "purchase" {
					purchase = pr.ID
				}
			}
			c := storedCounters(t, st, 1, "a")
			if n := count(c, checkout); n != 2 {
				t.Errorf("checkouts %d, want 2", n)
			}
			if n := count(c, purchase); n != 1 {
				t.Errorf("purchases %d, want 1 (the one over 100)", n)
			}
			if f, ok := c.FirstEvent(checkout); !ok || f != now.Add(-2*time.Minute).Unix() {
				t.Errorf("first checkout %d %v", f, ok)
			}
			assertNoRow(t, st, 1, "nobody")
			if n := count(storedCounters(t, st, 1, "late"), checkout); n != 0 {
				t.Errorf("an event before its person counted %d times, want 0", n)
			}

			// Redelivered in a later batch, a person update in between.
			e.publish(t, pu(1, "P1", 2, nil, map[string]string{"plan": `"team"`}, nil), ingest.Protobuf)
			e.publish(t, ev(1, "a", "checkout", "c1", now.Add(-2*time.Minute), nil), ingest.Protobuf)
			e.publish(t, ev(1, "a", "checkout", "c3", now, nil), ingest.Protobuf)
			e.waitApplied(t, projector.DefaultDurable)
			assertRow(t, st, 1, "a", "P1", `{"plan":"team"}`)
			if n := count(storedCounters(t, st, 1, "a"), checkout); n != 3 {
				t.Errorf("checkouts after a redelivery and one more: %d, want 3", n)
			}
		})
	}
}
