package projector_test

import (
	"context"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/ingest"
	"github.com/vexil-dev/vexil/store"
)

// TestMergeBeforePersonExists: a distinct id merged into a person nobody
// updated yet must show the person's properties once they are set.
func TestMergeBeforePersonExists(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			e := startNATS(t)
			st := be.open(t)
			p, err := projector.New(projector.Config{Conn: e.nc, Store: st, AtomicStore: be.atomic, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			r := run(p)
			defer r.stop()
			e.publish(t, merge(1, "P", 1, "d1"), ingest.Protobuf)
			e.waitApplied(t, projector.DefaultDurable)
			assertRow(t, st, 1, "d1", "P", `{}`)
			e.publish(t, pu(1, "P", 2, []string{"d2"}, map[string]string{"x": "1"}, nil), ingest.Protobuf)
			e.waitApplied(t, projector.DefaultDurable)
			assertRow(t, st, 1, "d1", "P", `{"x":1}`)
			assertRow(t, st, 1, "d2", "P", `{"x":1}`)
		})
	}
}

// TestCrashBetweenSourceWrites covers a non-atomic store (ScyllaDB) whose
// write of a batch's sources was cut short: the mapping of a merge landed,
// the person record it created did not. A later update of that person,
// applied before the merge is redelivered, must still reach the merged
// distinct id's row.
func TestCrashBetweenSourceWrites(t *testing.T) {
	e := startNATS(t)
	inner := newMemStore(t)
	st := newCrashingStore(inner, false, 1)
	st.mu.mode = "mid write"
	st.mu.part = func(b *store.Batch) *store.Batch {
		var p store.Batch
		for _, m := range b.Mappings() {
			p.PutMapping(m)
		}
		return &p // persons left out
	}
	cfg := projector.Config{Conn: e.nc, Store: st, AtomicStore: false, Logger: testLogger(t), AckWait: time.Minute}

	// Run 1: the merge's derived writes land (Apply 1), its sources only
	// partly (Apply 2 crashes).
	e.publish(t, merge(1, "P", 1, "d1"), ingest.Protobuf)
	p, err := projector.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	crashed := st.arm(2, cancel)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	<-crashed
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := inner.GetPerson(context.Background(), 1, "P"); err == nil {
		t.Fatal("the crash was meant to lose the person record")
	}

	// Run 2: the update arrives; the merge stays unacknowledged (AckWait
	// of a minute) so it is not redelivered during this test.
	e.publish(t, pu(1, "P", 2, nil, map[string]string{"x": "1"}, nil), ingest.Protobuf)
	p, err = projector.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := run(p)
	defer r.stop()
	waitRow(t, inner, 1, "d1", `{"x":1}`)
}

// waitRow waits until the row of (team, distinctID) has props.
func waitRow(t *testing.T, st store.Store, team int64, distinctID, props string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute) // a hang guard, not a timing assertion
	for {
		row, err := st.GetRow(context.Background(), team, distinctID)
		if err == nil && string(row.Properties) == props {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("row %d/%q = %+v, %v; want properties %s", team, distinctID, row, err, props)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
