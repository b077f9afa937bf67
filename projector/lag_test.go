package projector_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/polltest"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/ingest"
	"github.com/vexil-dev/vexil/store"
)

// blockingStore holds every Apply until release is closed.
type blockingStore struct {
	store.Store
	entered chan struct{}
	release chan struct{}
	once    atomic.Bool
}

func (b *blockingStore) Apply(ctx context.Context, batch *store.Batch) error {
	if b.once.CompareAndSwap(false, true) {
		close(b.entered)
	}
	select {
	case <-b.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.Store.Apply(ctx, batch)
}

func TestLagMetrics(t *testing.T) {
	e := startNATS(t)
	st := &blockingStore{Store: newMemStore(t), entered: make(chan struct{}), release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	var now atomic.Pointer[time.Time]
	t0 := time.Now()
	now.Store(&t0)
	p, err := projector.New(projector.Config{
		Conn: e.nc, Store: st, Logger: testLogger(t), Registerer: reg,
		BatchSize: 1, LagInterval: 10 * time.Millisecond,
		Now: func() time.Time { return *now.Load() },
	})
	if err != nil {
		t.Fatal(err)
	}
	seq := e.publish(t, pu(1, "p", 1, []string{"a"}, map[string]string{"x": "1"}, nil), ingest.Protobuf)
	e.publish(t, pu(1, "p", 2, nil, map[string]string{"x": "2"}, nil), ingest.Protobuf)
	e.publish(t, pu(1, "p", 3, nil, map[string]string{"x": "3"}, nil), ingest.Protobuf)
	s, err := e.js.Stream(context.Background(), projector.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.GetMsg(context.Background(), seq)
	if err != nil {
		t.Fatal(err)
	}

	r := run(p)
	defer r.stop()
	<-st.entered
	if err := p.Run(context.Background()); !errors.Is(err, projector.ErrRunning) {
		t.Fatalf("a second Run = %v, want ErrRunning", err)
	}
	// The first batch is stuck in the store: its message is 5s old by the
	// injected clock, and all three messages wait.
	later := first.Time.Add(5 * time.Second)
	now.Store(&later)
	if got := metricValue(t, reg, "vexil_projector_lag_seconds", nil); got != 5 {
		t.Errorf("lag_seconds = %v, want 5", got)
	}
	waitMetric(t, reg, "vexil_projector_lag_messages", 3)

	close(st.release)
	e.waitApplied(t, projector.DefaultDurable)
	assertRow(t, st, 1, "a", "p", `{"x":3}`)
	waitMetric(t, reg, "vexil_projector_lag_messages", 0)
	waitMetric(t, reg, "vexil_projector_lag_seconds", 0)
}

// waitMetric waits until a gauge reaches want (it is refreshed in the
// background).
func waitMetric(t *testing.T, reg *prometheus.Registry, name string, want float64) {
	t.Helper()
	polltest.Eventually(t, time.Minute, func() error {
		if got := metricValue(t, reg, name, nil); got != want {
			return fmt.Errorf("%s = %v, want %v", name, got, want)
		}
		return nil
	})
}
