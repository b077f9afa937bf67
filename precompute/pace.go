package precompute

import (
	"sync/atomic"
	"time"
)

// pacer shares the CPU between the worker's computations and the requests
// the node answers. With one P (a server pinned to one core, GOMAXPROCS=1)
// a goroutine computing rows keeps the P until the scheduler preempts it,
// and the runtime polls the network only when nothing else is runnable, or
// from sysmon once 10 ms passed: the requests sent meanwhile wait unread
// in their sockets for a whole batch of rows (runtime traces of
// bench-peers.sh, BENCHMARKS.md). runtime.Gosched does not help: the
// yielding goroutine goes to the global run queue, which the scheduler
// takes before it polls the network.
//
// So every computing goroutine calls step between two units of work. Once
// a slice of work has passed, and requests came in within the last
// paceWindow (Config.Arrivals moved), every one of them sleeps until the
// pause ends: with none of them runnable, the scheduler polls the network
// and runs the requests that were waiting. The pause goes on, in steps,
// while requests keep coming in, up to paceMaxPause: a closed loop of
// clients sends its next request only once the last one was answered, so
// one step would let only one request per client through. A node without
// requests never pauses.
type pacer struct {
	slice, pause, maxPause, window time.Duration
	arrivals                       func() uint64
	now                            func() time.Time
	sleep                          func(time.Duration)
	// paused counts the pauses taken (a metric; nil: none).
	paused func()

	// until is the end of the current pause step, and sliceStart the
	// start of the slice of work after it, in Unix nanoseconds; pausing
	// is set from the pause's first step to its last.
	until, sliceStart atomic.Int64
	pausing           atomic.Bool
	// seen is the arrivals count last read and seenAt (Unix nanoseconds)
	// when it last moved. Only the goroutine that won the slice's end
	// (sliceStart's compare-and-swap) touches them.
	seen   uint64
	seenAt int64
}

// The pacing of background computations: slices of paceSlice; after each,
// when requests came in within paceWindow, a pause in steps of pacePause
// for as long as requests keep coming in, up to paceMaxPause. A step is a
// sleep, which an idle P stretches to about a millisecond (the runtime's
// network poller waits whole milliseconds for a timer) and an arriving
// request interrupts. Under a steady request load a computation thus gets
// at least a fifth of the P and a request waits behind it for about one
// slice; on an idle node it runs at full speed.
const (
	paceSlice    = time.Millisecond
	pacePause    = 50 * time.Microsecond
	paceMaxPause = 4 * time.Millisecond
	paceWindow   = 100 * time.Millisecond
)

func newPacer(arrivals func() uint64, paused func()) *pacer {
	p := &pacer{slice: paceSlice, pause: pacePause, maxPause: paceMaxPause, window: paceWindow, arrivals: arrivals,
		now: time.Now, sleep: time.Sleep, paused: paused}
	p.sliceStart.Store(p.now().UnixNano())
	return p
}

// step is called by a computing goroutine between two units of work.
func (p *pacer) step() {
	if p.arrivals == nil {
		return
	}
	now := p.now().UnixNano()
	for p.pausing.Load() {
		// Another goroutine is pausing: join it to its end, so that
		// nothing of the worker runs in between its steps.
		d := time.Duration(p.until.Load() - now)
		if d <= 0 {
			d = p.pause // between two steps
		}
		p.sleep(d)
		now = p.now().UnixNano()
	}
	start := p.sliceStart.Load()
	if now-start < int64(p.slice) || !p.sliceStart.CompareAndSwap(start, now+int64(p.maxPause)) {
		return
	}
	p.moved(now)
	if now-p.seenAt >= int64(p.window) {
		p.sliceStart.Store(now)
		return // nobody to make room for
	}
	begin := now
	p.pausing.Store(true)
	for {
		p.until.Store(now + int64(p.pause))
		p.sleep(p.pause)
		now = p.now().UnixNano()
		if !p.moved(now) || now-begin >= int64(p.maxPause) {
			break
		}
	}
	p.pausing.Store(false)
	p.sliceStart.Store(now)
	if p.paused != nil {
		p.paused()
	}
}

// moved reads the arrivals count and reports whether it moved since the
// last read.
func (p *pacer) moved(now int64) bool {
	a := p.arrivals()
	if a == p.seen {
		return false
	}
	p.seen, p.seenAt = a, now
	return true
}
