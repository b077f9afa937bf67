package projector_test

import (
	"context"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/flags/counters"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/ingest"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
	"github.com/vexil-dev/vexil/store"
)

// groupEventSet compiles a team with a flag that targets companies
// performing checkout at least twice in 5 minutes.
func groupEventSet(t testing.TB) *flags.Set {
	t.Helper()
	defs, err := flags.ParseDefinitions([]byte(`{"group_type_mapping": {"0": "company"},
	  "cohorts": {"1": {"type": "AND", "values": [{"key": "checkout", "type": "behavioral", "value": "performed_event_multiple",
	    "operator": "gte", "operator_value": 2, "time_value": 5, "time_interval": "minute"}]}},
	  "flags": [{"id": 1, "key": "busy-company", "active": true, "filters": {"aggregation_group_type_index": 0,
	    "groups": [{"properties": [{"key": "id", "type": "cohort", "value": 1}], "rollout_percentage": 100}]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	set, err := flags.Compile(defs)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func storedGroupCounters(t testing.TB, st store.Store, team int64, typeIndex int, key string) *counters.Row {
	t.Helper()
	g, err := st.GetGroup(context.Background(), team, typeIndex, key)
	if err != nil {
		t.Fatalf("GetGroup %q: %v", key, err)
	}
	r, err := counters.Decode(g.Counters)
	if err != nil {
		t.Fatalf("counters of group %q: %v", key, err)
	}
	return r
}

func groupUpdate(team int64, typeIndex int32, key string, version int64) *ingestv1.Envelope {
	return &ingestv1.Envelope{Kind: &ingestv1.Envelope_GroupUpdate{GroupUpdate: &ingestv1.GroupUpdate{
		Team: team, GroupTypeIndex: typeIndex, GroupKey: key, Set: map[string]string{"name": `"` + key + `"`}, Version: i64(version)}}}
}

// TestGroupEventsCounted: an event counts on the group row of its $groups
// for the group types a group-aggregated condition reads the pair under,
// from any member, once under duplicates and redelivery; a group without a
// record, an event without $groups and a group update keep the rules.
func TestGroupEventsCounted(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			e := startNATS(t)
			st := be.open(t)
			set := groupEventSet(t)
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
			acme := map[string]string{"$groups": `{"company": "acme"}`}
			e.publish(t, groupUpdate(1, 0, "acme", 1), ingest.Protobuf)
			e.publish(t, pu(1, "P1", 1, []string{"a"}, nil, nil), ingest.Protobuf)
			e.publish(t, pu(1, "P2", 1, []string{"b"}, nil, nil), ingest.Protobuf)
			e.publish(t, ev(1, "a", "checkout", "c1", now.Add(-2*time.Minute), acme), ingest.Protobuf)
			e.publish(t, ev(1, "b", "checkout", "c2", now.Add(-time.Minute), acme), ingest.JSON)
			e.publish(t, ev(1, "a", "checkout", "c1", now.Add(-2*time.Minute), acme), ingest.Protobuf) // duplicate
			e.publish(t, ev(1, "a", "checkout", "g1", now, map[string]string{"$groups": `{"company": "ghost"}`}), ingest.Protobuf)
			e.publish(t, ev(1, "b", "checkout", "n1", now, nil), ingest.Protobuf) // no $groups: b's row only
			r := run(p)
			defer r.stop()
			e.waitApplied(t, projector.DefaultDurable)

			checkout := flags.PairID("checkout", nil)
			g := storedGroupCounters(t, st, 1, 0, "acme")
			if n := count(g, checkout); n != 2 {
				t.Errorf("acme's checkouts %d, want 2", n)
			}
			if f, ok := g.FirstEvent(checkout); !ok || f != now.Add(-2*time.Minute).Unix() {
				t.Errorf("acme's first checkout %d %v", f, ok)
			}
			if n := count(storedCounters(t, st, 1, "b"), checkout); n != 2 {
				t.Errorf("b's checkouts %d, want 2 (the person's row counts too)", n)
			}
			if _, err := st.GetGroup(context.Background(), 1, 0, "ghost"); err == nil {
				t.Error("an event made the group ghost")
			}

			// Redelivered in a later batch, a group update in between: the
			// update keeps the counters.
			e.publish(t, groupUpdate(1, 0, "acme", 2), ingest.Protobuf)
			e.publish(t, ev(1, "b", "checkout", "c2", now.Add(-time.Minute), acme), ingest.Protobuf)
			e.publish(t, ev(1, "b", "checkout", "c3", now, acme), ingest.Protobuf)
			e.waitApplied(t, projector.DefaultDurable)
			if n := count(storedGroupCounters(t, st, 1, 0, "acme"), checkout); n != 3 {
				t.Errorf("acme's checkouts after a redelivery and one more: %d, want 3", n)
			}
			if g, err := st.GetGroup(context.Background(), 1, 0, "acme"); err != nil || g.Version != 2 {
				t.Errorf("acme after its update: %+v, %v", g, err)
			}
		})
	}
}
