//go:build measure

package snapshot_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vexil-dev/vexil/snapshot"
	"github.com/vexil-dev/vexil/store/pebblestore"
)

// TestMeasureSnapshot is a measurement, not a check, built only with the
// measure tag (so the suite neither runs nor skips it): it publishes
// VEXIL_SNAPSHOT_MEASURE (default 100,000) N persons (one distinct id, five
// properties each) through the ingest stream into a Pebble store with the
// projector, then times snapshot create (with the peak Go heap while it
// runs), verify, restore and a replay of the whole stream into an empty
// store. scripts/bench-snapshot.sh runs it; BENCHMARKS.md has the numbers.
func TestMeasureSnapshot(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("VEXIL_SNAPSHOT_MEASURE"))
	if n <= 0 {
		n = 100_000
	}
	ctx := context.Background()
	b := pebbleBackend()
	prod := startProduction(t, b)
	js := prod.ns.JetStream
	ingestStart := time.Now()
	for i := range n {
		body, _ := json.Marshal(map[string]any{"type": "person_update", "team": 1, "person_id": fmt.Sprintf("person-%07d", i),
			"distinct_ids": []string{fmt.Sprintf("user-%07d", i)}, "version": 1,
			"$set": map[string]any{"email": fmt.Sprintf("user%d@example.com", i), "plan": []string{"free", "pro"}[i%2],
				"country": []string{"FR", "DE", "US", "GB"}[i%4], "seats": i % 50, "signed_up": "2026-11-25"}})
		m := nats.NewMsg("vexil.persons.1")
		m.Data = body
		m.Header.Set("Content-Type", "application/json")
		if _, err := js.PublishMsgAsync(m); err != nil {
			t.Fatal(err)
		}
		if i%2048 == 0 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
	last := prod.caughtUp(t)
	ingestTime := time.Since(ingestStart)

	dir := filepath.Join(t.TempDir(), "snap")
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	peak, stop := heapPeak()
	start := time.Now()
	cpu0 := cpuTime(t)
	m, err := snapshot.Create(ctx, snapshot.Options{Store: prod.store, Dir: dir})
	createCPU := cpuTime(t) - cpu0
	createTime := time.Since(start)
	stop()
	if err != nil {
		t.Fatal(err)
	}
	var bytes int64
	for _, tb := range m.Tables {
		for _, p := range tb.Parts {
			bytes += p.Bytes
		}
	}
	// The same snapshot from a Pebble checkpoint: what taking it costs in
	// time and in disk (bytes of files copied rather than hard-linked).
	ps := prod.store.(*pebblestore.Store)
	cpDir := filepath.Join(t.TempDir(), "checkpoint")
	var cpTime time.Duration
	var linked, copied int64
	peak2, stop2 := heapPeak()
	start = time.Now()
	cpu0 = cpuTime(t)
	if _, err := snapshot.Create(ctx, snapshot.Options{Store: prod.store, Dir: filepath.Join(t.TempDir(), "snap-cp"),
		Checkpoint: func(context.Context, string) (*snapshot.Frozen, error) {
			t0 := time.Now()
			cp, err := ps.OpenCheckpoint(cpDir, nil)
			cpTime = time.Since(t0)
			if err != nil {
				return nil, err
			}
			linked, copied = linkedBytes(t, cpDir)
			return &snapshot.Frozen{Store: cp, Path: cpDir, Release: func(bool) error { return errors.Join(cp.Close(), os.RemoveAll(cpDir)) }}, nil
		}}); err != nil {
		t.Fatal(err)
	}
	createCPTime := time.Since(start)
	createCPCPU := cpuTime(t) - cpu0
	stop2()
	start = time.Now()
	if _, err := snapshot.Verify(ctx, dir); err != nil {
		t.Fatal(err)
	}
	verifyTime := time.Since(start)
	restored := b.open(t)
	start = time.Now()
	if _, err := snapshot.Restore(ctx, dir, restored, snapshot.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	restoreTime := time.Since(start)
	empty := b.open(t)
	start = time.Now()
	res, err := snapshot.Replay(ctx, snapshot.ReplayOptions{JetStream: js, From: 0, Store: empty, AtomicStore: true})
	replayTime := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	rate := float64(res.Messages) / replayTime.Seconds()
	fmt.Printf("persons %d, records %d, parquet bytes %d\n", n, m.Rows(), bytes)
	fmt.Printf("create  %v (%.0f records/s), Go heap %.1f MiB before, peak %.1f MiB during\n", createTime.Round(time.Millisecond), float64(m.Rows())/createTime.Seconds(), float64(base)/(1<<20), float64(peak.Load())/(1<<20))
	fmt.Printf("create CPU (user+system, the whole process) through the live store's iterator %v, from a checkpoint %v\n", createCPU.Round(time.Millisecond), createCPCPU.Round(time.Millisecond))
	fmt.Printf("create from a checkpoint %v (checkpoint taken and opened in %v; %d bytes hard-linked, %d bytes copied), peak Go heap %.1f MiB\n",
		createCPTime.Round(time.Millisecond), cpTime.Round(time.Millisecond), linked, copied, float64(peak2.Load())/(1<<20))
	fmt.Printf("verify  %v\n", verifyTime.Round(time.Millisecond))
	fmt.Printf("restore %v (%.0f records/s)\n", restoreTime.Round(time.Millisecond), float64(m.Rows())/restoreTime.Seconds())
	fmt.Printf("ingest  %d messages published and projected by the production projector in %v: %.0f events/s (the same process, for comparison)\n", last, ingestTime.Round(time.Millisecond), float64(last)/ingestTime.Seconds())
	fmt.Printf("replay  %d messages in %v: %.0f events/s; 1M persons extrapolated: %.0f s\n", res.Messages, replayTime.Round(time.Millisecond), rate, 1e6/rate)
}

// cpuTime is the process's user and system CPU time so far: unlike wall
// time, other processes on the machine do not inflate it.
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// linkedBytes sums the sizes of dir's files that share their inode with
// another name (hard links into the live store) and of the others (copies).
func linkedBytes(t *testing.T, dir string) (linked, copied int64) {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			linked += fi.Size()
		} else {
			copied += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return linked, copied
}

// heapPeak samples the live Go heap every 10 ms until stop is called.
func heapPeak() (*atomic.Uint64, func()) {
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return &peak, func() { close(done); <-finished }
}
