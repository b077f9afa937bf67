package projector_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/ingest"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
	"github.com/vexil-dev/vexil/store"
)

// assertRow checks the visible row of (team, distinctID).
func assertRow(t testing.TB, st store.Store, team int64, distinctID, person, props string) {
	t.Helper()
	row, err := st.GetRow(context.Background(), team, distinctID)
	if err != nil {
		t.Errorf("GetRow(%d, %q): %v", team, distinctID, err)
		return
	}
	if row.PersonID != person || string(row.Properties) != props || row.Revision != store.Revision(row.Properties) {
		t.Errorf("row %d/%q = person %q props %s revision %x; want person %q props %s revision %x",
			team, distinctID, row.PersonID, row.Properties, row.Revision, person, props, store.Revision([]byte(props)))
	}
}

func assertNoRow(t testing.TB, st store.Store, team int64, distinctID string) {
	t.Helper()
	row, err := st.GetRow(context.Background(), team, distinctID)
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetRow(%d, %q) = %+v, %v; want ErrNotFound", team, distinctID, row, err)
	}
}

func assertDistinctIDs(t testing.TB, st store.Store, team int64, person string, want ...string) {
	t.Helper()
	got, err := st.DistinctIDs(context.Background(), team, person)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("DistinctIDs(%d, %q) = %q, want %q", team, person, got, want)
	}
}

func pu(team int64, person string, version int64, ids []string, set, once map[string]string, unset ...string) *ingestv1.Envelope {
	return &ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonUpdate{PersonUpdate: &ingestv1.PersonUpdate{
		Team: team, PersonId: person, DistinctIds: ids, Set: set, SetOnce: once, Unset: unset, Version: i64(version),
	}}}
}

func merge(team int64, person string, version int64, ids ...string) *ingestv1.Envelope {
	return &ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonMerge{PersonMerge: &ingestv1.PersonMerge{
		Team: team, PersonId: person, DistinctIds: ids, Version: i64(version), MergeKind: ingestv1.MergeKind_MERGE_KIND_IDENTIFY,
	}}}
}

func del(team int64, person string, version int64) *ingestv1.Envelope {
	return &ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonDelete{PersonDelete: &ingestv1.PersonDelete{
		Team: team, PersonId: person, Version: i64(version),
	}}}
}

func TestApplyEachKind(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			e := startNATS(t)
			st := be.open(t)
			reg := prometheus.NewRegistry()
			p, err := projector.New(projector.Config{Conn: e.nc, Store: st, AtomicStore: be.atomic, Logger: testLogger(t), Registerer: reg, LagInterval: 10e6})
			if err != nil {
				t.Fatal(err)
			}
			// Several messages for one person before the projector starts:
			// they arrive in one batch and must compose.
			e.publish(t, pu(1, "P1", 1, []string{"a", "b"}, map[string]string{"plan": `"pro"`, "seats": "5.0"}, map[string]string{"ref": `"hn"`}), ingest.Protobuf)
			e.publish(t, pu(1, "P1", 2, nil, map[string]string{"plan": `"enterprise"`}, map[string]string{"ref": `"later"`}), ingest.JSON)
			e.publish(t, pu(1, "P1", 3, nil, nil, nil, "seats"), ingest.Protobuf)
			e.publish(t, pu(1, "P2", 1, []string{"c"}, map[string]string{"country": `"FR"`}, nil), ingest.Protobuf)
			r := run(p)
			defer r.stop()
			e.waitApplied(t, projector.DefaultDurable)

			const p1 = `{"plan":"enterprise","ref":"hn"}`
			assertRow(t, st, 1, "a", "P1", p1)
			assertRow(t, st, 1, "b", "P1", p1)
			assertRow(t, st, 1, "c", "P2", `{"country":"FR"}`)
			row, _ := st.GetRow(ctx, 1, "a")
			if row.PersonVersion != 3 {
				t.Errorf("PersonVersion %d, want 3", row.PersonVersion)
			}
			assertDistinctIDs(t, st, 1, "P1", "a", "b")

			// A stale $set (version below the stored register) changes nothing.
			e.publish(t, pu(1, "P1", 1, nil, map[string]string{"plan": `"free"`}, nil), ingest.Protobuf)
			e.waitApplied(t, projector.DefaultDurable)
			assertRow(t, st, 1, "a", "P1", p1)

			// Identify: c moves from P2 to P1 and shows P1's properties.
			e.publish(t, merge(1, "P1", 4, "c"), ingest.JSON)
			e.waitApplied(t, projector.DefaultDurable)
			assertRow(t, st, 1, "c", "P1", p1)
			assertDistinctIDs(t, st, 1, "P1", "a", "b", "c")
			assertDistinctIDs(t, st, 1, "P2")
			if m, err := st.GetMapping(ctx, 1, "c"); err != nil || m.PersonID != "P1" || m.Version != 4 {
				t.Errorf("mapping of c = %+v, %v", m, err)
			}
			// An older merge back to P2 loses.
			e.publish(t, merge(1, "P2", 2, "c"), ingest.Protobuf)
			e.waitApplied(t, projector.DefaultDurable)
			assertRow(t, st, 1, "c", "P1", p1)

			// A property change fans out to every distinct id of the person.
			e.publish(t, pu(1, "P1", 5, nil, map[string]string{"beta": "true"}, nil), ingest.Protobuf)
			e.waitApplied(t, projector.DefaultDurable)
			for _, d := range []string{"a", "b", "c"} {
				assertRow(t, st, 1, d, "P1", `{"beta":true,"plan":"enterprise","ref":"hn"}`)
			}

			// Delete: every row of the person disappears; other teams untouched.
			e.publish(t, pu(2, "P1", 1, []string{"a"}, map[string]string{"team": "2"}, nil), ingest.Protobuf)
			e.publish(t, del(1, "P1", 6), ingest.JSON)
			e.waitApplied(t, projector.DefaultDurable)
			for _, d := range []string{"a", "b", "c"} {
				assertNoRow(t, st, 1, d)
			}
			assertRow(t, st, 2, "a", "P1", `{"team":2}`)
			if per, err := st.GetPerson(ctx, 1, "P1"); err != nil || !per.Deleted || per.DeleteVersion != 6 {
				t.Errorf("person after delete = %+v, %v", per, err)
			}
			// A write newer than the delete brings the person back with only the newer data.
			e.publish(t, pu(1, "P1", 7, []string{"a"}, map[string]string{"plan": `"free"`}, nil), ingest.Protobuf)
			e.waitApplied(t, projector.DefaultDurable)
			assertRow(t, st, 1, "a", "P1", `{"plan":"free"}`)
			assertNoRow(t, st, 1, "b")

			// Groups and group types.
			e.publish(t, &ingestv1.Envelope{Kind: &ingestv1.Envelope_GroupTypeMapping{GroupTypeMapping: &ingestv1.GroupTypeMapping{Team: 1, GroupTypeIndex: 0, Name: "company"}}}, ingest.JSON)
			e.publish(t, &ingestv1.Envelope{Kind: &ingestv1.Envelope_GroupUpdate{GroupUpdate: &ingestv1.GroupUpdate{
				Team: 1, GroupTypeIndex: 0, GroupKey: "acme", Set: map[string]string{"employees": "250", "name": `"Acme"`, "old": "1"}, Version: i64(1)}}}, ingest.Protobuf)
			e.publish(t, &ingestv1.Envelope{Kind: &ingestv1.Envelope_GroupUpdate{GroupUpdate: &ingestv1.GroupUpdate{
				Team: 1, GroupTypeIndex: 0, GroupKey: "acme", Unset: []string{"old"}, Version: i64(2)}}}, ingest.JSON)
			e.publish(t, &ingestv1.Envelope{Kind: &ingestv1.Envelope_Event{Event: &ingestv1.Event{
				Team: 1, DistinctId: "a", Event: "checkout", Uuid: "u1", Timestamp: nowTS()}}}, ingest.Protobuf)
			e.waitApplied(t, projector.DefaultDurable)
			g, err := st.GetGroup(ctx, 1, 0, "acme")
			if err != nil || string(g.Properties) != `{"employees":250,"name":"Acme"}` || g.Version != 2 {
				t.Errorf("group = %+v, %v", g, err)
			}
			if gts, err := st.GetGroupTypes(ctx, 1); err != nil || len(gts) != 1 || gts[0].Name != "company" || gts[0].Index != 0 {
				t.Errorf("group types = %+v, %v", gts, err)
			}
			if err := r.stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := metricValue(t, reg, "vexil_projector_applied_total", map[string]string{"kind": "event"}); got != 1 {
				t.Errorf("applied events %v, want 1", got)
			}
			if got := metricValue(t, reg, "vexil_projector_applied_total", map[string]string{"kind": "person_update"}); got != 8 {
				t.Errorf("applied person updates %v, want 8", got)
			}
			if got := metricValue(t, reg, "vexil_projector_batch_seconds", nil); got < 1 {
				t.Errorf("batch_seconds has %v observations", got)
			}
		})
	}
}
