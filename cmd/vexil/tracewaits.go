package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

func init() {
	register(&command{
		name:    "tracewaits",
		summary: "read a runtime trace of a node (/debug/pprof/trace): what held the P while requests waited",
		run:     runTraceWaits,
	})
}

// A node with one P (GOMAXPROCS=1 under a CPU quota) answers a request
// late when something else holds the P: GC, a periodic flush, a
// compaction. A runtime trace records which goroutine ran when, whatever
// the machine's load, so it tells those apart where latencies cannot.
// tracewaits prints the P's time by goroutine (named by the outermost
// function of its stack), the 100 ms windows in which goroutines other
// than the HTTP server's held it for more than -background, and the
// episodes of requests that waited runnable for more than -wait, with
// what ran meanwhile.

// runSlice is a goroutine's stretch on a P: from running to not.
type runSlice struct {
	g        trace.GoID
	from, to trace.Time
}

// traceRuns is what tracewaits reads from a trace.
type traceRuns struct {
	start, end trace.Time
	slices     []runSlice
	// names are the goroutines' outermost functions.
	names map[trace.GoID]string
	// waits are the runnable stretches of the HTTP server's goroutines.
	waits []runSlice
	// marks are the GC mark phases.
	marks []runSlice
	// idle are the stretches in which a P ran nothing.
	idle []runSlice
}

// isRequest tells the goroutines of net/http's server, and of the fast
// path below it (package h1fast), by name.
func isRequest(name string) bool {
	return strings.HasPrefix(name, "net/http.(*conn).serve") || strings.HasPrefix(name, "net/http.(*connReader).backgroundRead") ||
		strings.HasPrefix(name, "github.com/vexil-dev/vexil/h1fast.(*conn).serve")
}

func readTraceRuns(r io.Reader) (*traceRuns, error) {
	tr, err := trace.NewReader(r)
	if err != nil {
		return nil, err
	}
	out := &traceRuns{names: map[trace.GoID]string{}}
	running, runnable := map[trace.GoID]trace.Time{}, map[trace.GoID]trace.Time{}
	idleSince := map[trace.ProcID]trace.Time{}
	var markStart trace.Time
	for {
		ev, err := tr.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if out.start == 0 {
			out.start = ev.Time()
		}
		out.end = ev.Time()
		switch ev.Kind() {
		case trace.EventRangeBegin:
			if rg := ev.Range(); rg.Scope.Kind == trace.ResourceNone && strings.HasPrefix(rg.Name, "GC concurrent mark") {
				markStart = ev.Time()
			}
		case trace.EventRangeEnd:
			if rg := ev.Range(); rg.Scope.Kind == trace.ResourceNone && strings.HasPrefix(rg.Name, "GC concurrent mark") && markStart != 0 {
				out.marks = append(out.marks, runSlice{from: markStart, to: ev.Time()})
			}
		case trace.EventStateTransition:
			st := ev.StateTransition()
			if st.Resource.Kind == trace.ResourceProc {
				p := st.Resource.Proc()
				from, to := st.Proc()
				if to == trace.ProcIdle {
					idleSince[p] = ev.Time()
				} else if t, ok := idleSince[p]; ok && from == trace.ProcIdle {
					out.idle = append(out.idle, runSlice{from: t, to: ev.Time()})
					delete(idleSince, p)
				}
			}
			if st.Resource.Kind != trace.ResourceGoroutine {
				continue
			}
			g := st.Resource.Goroutine()
			from, to := st.Goroutine()
			if outer := outermost(st.Stack); outer != "" && (from == trace.GoRunning || out.names[g] == "") {
				out.names[g] = outer
			}
			if to == trace.GoRunnable && from != trace.GoRunnable {
				runnable[g] = ev.Time()
			}
			if to == trace.GoRunning {
				running[g] = ev.Time()
				if t, ok := runnable[g]; ok {
					out.waits = append(out.waits, runSlice{g: g, from: t, to: ev.Time()})
					delete(runnable, g)
				}
			}
			if from == trace.GoRunning {
				if t, ok := running[g]; ok {
					out.slices = append(out.slices, runSlice{g: g, from: t, to: ev.Time()})
					delete(running, g)
				}
			}
		}
	}
	kept := out.waits[:0]
	for _, w := range out.waits {
		if isRequest(out.names[w.g]) {
			kept = append(kept, w)
		}
	}
	out.waits = kept
	return out, nil
}

// outermost names a goroutine by the outermost function of its stack,
// below an errgroup's wrapper (which starts most of a node's loops).
func outermost(s trace.Stack) string {
	var fs []string
	for f := range s.Frames() {
		fs = append(fs, f.Func)
	}
	for i := len(fs) - 1; i >= 0; i-- {
		if !strings.HasPrefix(fs[i], "golang.org/x/sync/errgroup.") || i == 0 {
			return fs[i]
		}
	}
	return ""
}

// byName sums the P time of the slices within [from, to) by goroutine
// name, largest first; skip leaves some names out.
func (t *traceRuns) byName(from, to trace.Time, skip func(string) bool) []nameTime {
	m := map[string]time.Duration{}
	for _, s := range t.slices {
		a, b := max(s.from, from), min(s.to, to)
		if b <= a || skip != nil && skip(t.names[s.g]) {
			continue
		}
		m[t.names[s.g]] += b.Sub(a)
	}
	out := make([]nameTime, 0, len(m))
	for n, d := range m {
		out = append(out, nameTime{n, d})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].d > out[j].d || out[i].d == out[j].d && out[i].name < out[j].name })
	return out
}

// sortedTimes lists m largest first.
func sortedTimes(m map[string]time.Duration) []nameTime {
	out := make([]nameTime, 0, len(m))
	for n, d := range m {
		out = append(out, nameTime{n, d})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].d > out[j].d || out[i].d == out[j].d && out[i].name < out[j].name })
	return out
}

type nameTime struct {
	name string
	d    time.Duration
}

func (t *traceRuns) overlap(iv []runSlice, from, to trace.Time) time.Duration {
	var d time.Duration
	for _, s := range iv {
		if a, b := max(s.from, from), min(s.to, to); b > a {
			d += b.Sub(a)
		}
	}
	return d
}

// episodes groups the request waits over min that start within 50 ms of
// the previous one's end.
func (t *traceRuns) episodes(min time.Duration) []runSlice {
	var long []runSlice
	for _, w := range t.waits {
		if w.to.Sub(w.from) > min {
			long = append(long, w)
		}
	}
	sort.Slice(long, func(i, j int) bool { return long[i].from < long[j].from })
	var out []runSlice
	for _, w := range long {
		if n := len(out); n > 0 && w.from < out[n-1].to+trace.Time(50*time.Millisecond) {
			out[n-1].to = max(out[n-1].to, w.to)
			continue
		}
		out = append(out, runSlice{from: w.from, to: w.to})
	}
	return out
}

// stalls are the stretches longer than min between two slices of
// request goroutines in which the P ran other goroutines (idle under a
// tenth of the stretch): requests that arrived then waited in the
// netpoller, unseen, since the scheduler polls the network only when no
// goroutine is runnable. Under a closed loop that keeps the P busy they
// set the tail (a generator that corrects for coordinated omission, as
// wrk does, counts every request that should have been sent meanwhile).
// Each stall is named by the goroutine that held the P longest in it.
func (t *traceRuns) stalls(min time.Duration) []stall {
	sl := slices.Clone(t.slices)
	sort.Slice(sl, func(i, j int) bool { return sl[i].from < sl[j].from })
	var out []stall
	var last trace.Time
	seen := false
	for _, s := range sl {
		if !isRequest(t.names[s.g]) {
			continue
		}
		if seen && s.from.Sub(last) > min && t.overlap(t.idle, last, s.from) < s.from.Sub(last)/10 {
			if l := t.byName(last, s.from, isRequest); len(l) > 0 {
				out = append(out, stall{from: last, d: s.from.Sub(last), by: l[0].name})
			}
		}
		if s.to > last {
			last = s.to
		}
		seen = true
	}
	return out
}

type stall struct {
	from trace.Time
	d    time.Duration
	by   string
}

func short(name string) string {
	return strings.TrimPrefix(strings.TrimPrefix(name, "github.com/"), "golang.org/x/")
}

func top(l []nameTime, n int) string {
	var b strings.Builder
	for i, x := range l {
		if i == n {
			break
		}
		fmt.Fprintf(&b, " [%v %s]", x.d.Round(100*time.Microsecond), short(x.name))
	}
	return b.String()
}

func runTraceWaits(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tracewaits", stderr)
	wait := fs.Duration("wait", 20*time.Millisecond, "report episodes of requests waiting runnable longer than this")
	stallMin := fs.Duration("stall", 300*time.Microsecond, "report stalls: stretches longer than this in which the P ran goroutines other than requests while requests were due")
	background := fs.Duration("background", 15*time.Millisecond, "report 100 ms windows in which other goroutines held the P longer than this")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &usageError{msg: "tracewaits: give one trace file (curl -o FILE 'http://NODE/debug/pprof/trace?seconds=20')"}
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	t, err := readTraceRuns(f)
	if err != nil {
		return fmt.Errorf("tracewaits: %w", err)
	}
	span := t.end.Sub(t.start)
	fmt.Fprintf(stdout, "trace of %v: P time by goroutine\n", span.Round(time.Millisecond))
	for i, x := range t.byName(t.start, t.end, nil) {
		if i == 15 {
			break
		}
		fmt.Fprintf(stdout, "  %10v %5.1f%%  %s\n", x.d.Round(100*time.Microsecond), 100*x.d.Seconds()/span.Seconds(), short(x.name))
	}
	for _, m := range t.marks {
		fmt.Fprintf(stdout, "GC mark phase at %.3fs for %v\n", m.from.Sub(t.start).Seconds(), m.to.Sub(m.from).Round(100*time.Microsecond))
	}
	fmt.Fprintf(stdout, "100 ms windows in which goroutines other than the HTTP server's held the P over %v\n", *background)
	const win = 100 * time.Millisecond
	for w := t.start; w < t.end; w += trace.Time(win) {
		l := t.byName(w, w+trace.Time(win), isRequest)
		var sum time.Duration
		for _, x := range l {
			sum += x.d
		}
		if sum > *background {
			fmt.Fprintf(stdout, "  %6.1fs %v:%s\n", w.Sub(t.start).Seconds(), sum.Round(time.Millisecond), top(l, 3))
		}
	}
	var ws []time.Duration
	for _, w := range t.waits {
		ws = append(ws, w.to.Sub(w.from))
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i] < ws[j] })
	if n := len(ws); n > 0 {
		fmt.Fprintf(stdout, "requests' runnable waits: %d, p50 %v, p99 %v, max %v\n", n, ws[n/2], ws[n*99/100], ws[n-1])
	}
	st := t.stalls(*stallMin)
	var total time.Duration
	by := map[string]time.Duration{}
	for _, x := range st {
		total += x.d
		by[x.by] += x.d
	}
	fmt.Fprintf(stdout, "stalls over %v (the P busy with other goroutines between two request slices): %d, %v, %.2f%% of the trace\n",
		*stallMin, len(st), total.Round(100*time.Microsecond), 100*total.Seconds()/span.Seconds())
	for _, x := range sortedTimes(by) {
		fmt.Fprintf(stdout, "  %10v  %s\n", x.d.Round(100*time.Microsecond), short(x.name))
	}
	fmt.Fprintf(stdout, "episodes of requests waiting over %v (GC: overlap with a mark phase)\n", *wait)
	for _, e := range t.episodes(*wait) {
		fmt.Fprintf(stdout, "  %.3fs for %v, GC %v:%s\n", e.from.Sub(t.start).Seconds(), e.to.Sub(e.from).Round(time.Millisecond),
			t.overlap(t.marks, e.from, e.to).Round(time.Millisecond), top(t.byName(e.from, e.to, nil), 4))
	}
	return nil
}
