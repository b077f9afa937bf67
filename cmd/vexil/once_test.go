package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/memcatalog"
)

// Eight nodes start at once on one catalog: the job runs once and every
// node gets its result.
func TestClusterOnceRunsOnce(t *testing.T) {
	cat := memcatalog.New(memcatalog.Config{})
	t.Cleanup(func() { _ = cat.Close() })
	var runs atomic.Int32
	const nodes = 8
	results := make([]string, nodes)
	ran := make([]bool, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			o := newClusterOnce(cat, "test/once", time.Hour)
			o.poll = time.Millisecond
			o.node = fmt.Sprintf("node-%d", i)
			raw, r, err := o.do(t.Context(), func(context.Context) (json.RawMessage, error) {
				runs.Add(1)
				return json.RawMessage(fmt.Sprintf(`{"by":%d}`, i)), nil
			})
			results[i], ran[i], errs[i] = string(raw), r, err
		})
	}
	wg.Wait()
	if n := runs.Load(); n != 1 {
		t.Fatalf("the job ran %d times, want once", n)
	}
	winners := 0
	for i := range nodes {
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i, errs[i])
		}
		if results[i] != results[0] {
			t.Errorf("node %d got %s, node 0 got %s", i, results[i], results[0])
		}
		if ran[i] {
			winners++
		}
	}
	if winners != 1 {
		t.Errorf("%d nodes say they ran the job, want 1", winners)
	}
	m, err := cat.GetMarker(t.Context(), "test/once")
	if err != nil {
		t.Fatal(err)
	}
	var st onceState
	if err := json.Unmarshal(m.Value, &st); err != nil || st.State != onceDone || string(st.Result) != results[0] {
		t.Fatalf("marker %s (%v)", m.Value, err)
	}
}

// A failed job is run again by the next start; one whose node died is
// taken over once it is stale, and not before.
func TestClusterOnceRetries(t *testing.T) {
	cat := memcatalog.New(memcatalog.Config{})
	t.Cleanup(func() { _ = cat.Close() })
	o := newClusterOnce(cat, "test/retry", time.Minute)
	boom := errors.New("boom")
	if _, ran, err := o.do(t.Context(), func(context.Context) (json.RawMessage, error) { return nil, boom }); !errors.Is(err, boom) || !ran {
		t.Fatalf("failing job: ran %v, err %v", ran, err)
	}
	raw, ran, err := o.do(t.Context(), func(context.Context) (json.RawMessage, error) { return json.RawMessage(`2`), nil })
	if err != nil || !ran || string(raw) != "2" {
		t.Fatalf("after a failure: %s %v %v", raw, ran, err)
	}

	// A node claimed the job and died: its claim is an hour old.
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	dead, _ := json.Marshal(onceState{State: onceRunning, Node: "dead", Since: now.Add(-time.Hour)})
	if _, err := cat.PutMarker(t.Context(), catalog.Marker{Name: "test/stale", Value: dead}); err != nil {
		t.Fatal(err)
	}
	fresh := newClusterOnce(cat, "test/stale", 2*time.Hour)
	fresh.poll = time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	var calls atomic.Int32
	go func() {
		// Cancel once the waiting node has read the claim's age.
		for calls.Load() < 1 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	fresh.now = func() time.Time { calls.Add(1); return now }
	if _, ran, err := fresh.do(ctx, func(context.Context) (json.RawMessage, error) {
		t.Error("a job claimed an hour ago, stale after two, was taken over")
		return nil, nil
	}); !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("waiting on a live claim: ran %v, err %v", ran, err)
	}
	stale := newClusterOnce(cat, "test/stale", 30*time.Minute)
	stale.now = func() time.Time { return now }
	raw, ran, err = stale.do(t.Context(), func(context.Context) (json.RawMessage, error) { return json.RawMessage(`"taken over"`), nil })
	if err != nil || !ran || string(raw) != `"taken over"` {
		t.Fatalf("stale claim: %s %v %v", raw, ran, err)
	}
}
