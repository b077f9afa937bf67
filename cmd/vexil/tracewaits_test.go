package main

import (
	"testing"
	"time"

	"golang.org/x/exp/trace"
)

// TestTraceWaitsAccounting: P time is summed by goroutine name within a
// window (clipped at its edges, the HTTP server's left out on request),
// and long request waits starting within 50 ms of each other form one
// episode.
func TestTraceWaitsAccounting(t *testing.T) {
	ms := func(n int) trace.Time { return trace.Time(time.Duration(n) * time.Millisecond) }
	tr := &traceRuns{
		start: 0, end: ms(1000),
		names: map[trace.GoID]string{1: "net/http.(*conn).serve", 2: "usage.(*Recorder).Run", 3: "runtime.gcBgMarkWorker"},
		slices: []runSlice{
			{g: 2, from: ms(90), to: ms(130)}, // 10 ms in [0,100), 30 in [100,200)
			{g: 1, from: ms(130), to: ms(140)},
			{g: 3, from: ms(150), to: ms(160)},
			{g: 2, from: ms(500), to: ms(505)},
		},
		waits: []runSlice{
			{g: 1, from: ms(100), to: ms(140)}, {g: 1, from: ms(170), to: ms(200)}, // one episode, 100-200
			{g: 1, from: ms(200), to: ms(210)}, // short: not a long wait
			{g: 1, from: ms(400), to: ms(430)}, // another episode
		},
	}
	got := tr.byName(ms(100), ms(200), isRequest)
	want := []nameTime{{"usage.(*Recorder).Run", 30 * time.Millisecond}, {"runtime.gcBgMarkWorker", 10 * time.Millisecond}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("byName [100,200) without requests = %v, want %v", got, want)
	}
	if got := tr.byName(ms(0), ms(1000), nil); len(got) != 3 || got[0].d != 45*time.Millisecond {
		t.Errorf("byName over the trace = %v, want 3 names, usage first with 45ms", got)
	}
	eps := tr.episodes(20 * time.Millisecond)
	if len(eps) != 2 || eps[0].from != ms(100) || eps[0].to != ms(200) || eps[1].from != ms(400) || eps[1].to != ms(430) {
		t.Errorf("episodes = %+v, want [100,200) and [400,430)", eps)
	}
	if d := tr.overlap([]runSlice{{from: ms(150), to: ms(450)}}, ms(100), ms(200)); d != 50*time.Millisecond {
		t.Errorf("overlap = %v, want 50ms", d)
	}
}
