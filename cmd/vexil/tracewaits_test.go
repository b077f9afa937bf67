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

// TestTraceStalls: a stall is a stretch between two request slices that
// other goroutines kept busy; an idle P (the requests were not there
// yet) or a short gap is none.
func TestTraceStalls(t *testing.T) {
	us := func(n int) trace.Time { return trace.Time(time.Duration(n) * time.Microsecond) }
	tr := &traceRuns{
		start: 0, end: us(10_000),
		names: map[trace.GoID]string{1: "net/http.(*conn).serve", 2: "github.com/vexil-dev/vexil/h1fast.(*conn).serve", 3: "runtime.bgsweep", 4: "runtime.gcBgMarkWorker"},
		slices: []runSlice{
			{g: 1, from: us(0), to: us(50)},
			{g: 3, from: us(50), to: us(1_050)}, // a 1 ms sweep: a stall
			{g: 2, from: us(1_050), to: us(1_100)},
			{g: 4, from: us(1_100), to: us(1_300)}, // 200 us: under the minimum
			{g: 1, from: us(1_300), to: us(1_350)},
			{g: 1, from: us(3_350), to: us(3_400)}, // 2 ms idle before: the generator, not a stall
			{g: 4, from: us(3_400), to: us(3_900)},
			{g: 3, from: us(3_900), to: us(4_000)},
			{g: 2, from: us(4_000), to: us(4_050)}, // 600 us, the mark worker's most
		},
		idle: []runSlice{{from: us(1_350), to: us(3_350)}},
	}
	got := tr.stalls(300 * time.Microsecond)
	want := []stall{{us(50), time.Millisecond, "runtime.bgsweep"}, {us(3_400), 600 * time.Microsecond, "runtime.gcBgMarkWorker"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("stalls = %+v, want %+v", got, want)
	}
}
