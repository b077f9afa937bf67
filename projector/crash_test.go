package projector_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/polltest"
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
	polltest.Eventually(t, time.Minute, func() error {
		row, err := st.GetRow(context.Background(), team, distinctID)
		if err == nil && string(row.Properties) == props {
			return nil
		}
		return fmt.Errorf("row %d/%q = %+v, %v; want properties %s", team, distinctID, row, err, props)
	})
}

// TestKilledRunRecovers: a run killed (kill -9: its connection gone, no
// ack, no nak) while holding delivered messages leaves them pending on the
// consumer; the next run gets them from JetStream once the ack wait of
// their last delivery expired, which by default is a few seconds, not the
// 30 s it used to be.
func TestKilledRunRecovers(t *testing.T) {
	const persons = 800
	e := startNATS(t)
	inner := newMemStore(t)
	for i := range persons {
		id := strconv.Itoa(i)
		e.publish(t, pu(1, "p"+id, 1, []string{"d" + id}, map[string]string{"n": id}, nil), ingest.Protobuf)
	}

	// Run 1 has its own connection, and a store that never writes: every
	// message is delivered to it and held.
	nc1, err := nats.Connect(e.srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	stuck := &blockingStore{Store: inner, entered: make(chan struct{}), release: make(chan struct{})}
	p1, err := projector.New(projector.Config{Conn: nc1, Store: stuck, AtomicStore: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	done1 := make(chan error, 1)
	go func() { done1 <- p1.Run(ctx1) }()
	<-stuck.entered
	waitConsumer(t, e, "every message delivered to run 1", func(ci *jetstream.ConsumerInfo) bool {
		return ci.NumAckPending == persons
	})

	// Kill run 1: its connection first, so nothing it does afterwards
	// reaches the server.
	nc1.Close()
	killed := time.Now()
	cancel1()
	<-done1
	if _, err := inner.GetRow(context.Background(), 1, "d0"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("run 1 wrote a row (%v); it was meant to die holding everything", err)
	}

	// Run 2, with the defaults, applies everything run 1 held.
	p2, err := projector.New(projector.Config{Conn: e.nc, Store: inner, AtomicStore: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	r := run(p2)
	defer r.stop()
	e.waitApplied(t, projector.DefaultDurable)
	for i := range persons {
		id := strconv.Itoa(i)
		assertRow(t, inner, 1, "d"+id, "p"+id, `{"n":`+id+`}`)
	}
	// A generous bound (expected: DefaultAckWait, 5 s) that the old default
	// would have broken: nothing came back before its 30 s.
	if took := time.Since(killed); took >= 30*time.Second {
		t.Errorf("the persons run 1 held were visible %v after the kill, not before the old 30 s ack wait", took)
	}

	ci := consumerInfo(t, e)
	if ci.Config.AckWait != projector.DefaultAckWait || projector.DefaultAckWait > 5*time.Second {
		t.Errorf("consumer AckWait %v (default %v), want the default of at most 5s", ci.Config.AckWait, projector.DefaultAckWait)
	}
	// Each message was delivered to run 1, then redelivered to run 2.
	if ci.Delivered.Consumer < 2*persons {
		t.Errorf("%d deliveries, want at least %d (each message twice)", ci.Delivered.Consumer, 2*persons)
	}
}

// consumerInfo reads the durable consumer's state.
func consumerInfo(t testing.TB, e *natsEnv) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := e.js.Consumer(context.Background(), projector.DefaultStream, projector.DefaultDurable)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ci
}

// waitConsumer waits until the durable consumer's state satisfies ok.
func waitConsumer(t testing.TB, e *natsEnv, what string, ok func(*jetstream.ConsumerInfo) bool) {
	t.Helper()
	polltest.Eventually(t, time.Minute, func() error {
		c, err := e.js.Consumer(context.Background(), projector.DefaultStream, projector.DefaultDurable)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		ci, err := c.Info(context.Background())
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if !ok(ci) {
			return fmt.Errorf("waiting for %s: consumer %s at %d delivered, %d pending acks", what, projector.DefaultDurable, ci.Delivered.Consumer, ci.NumAckPending)
		}
		return nil
	})
}
