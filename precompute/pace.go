package precompute

import (
	"sync/atomic"
	"time"
)

// pacer shares the CPU between the worker's computations and the requests
// the node answers. With one P (a server pinned to one core, GOMAXPROCS=1)
// a goroutine computing rows keeps the P until the scheduler preempts it,
// and the runtime polls the network only when nothing else is runnable, or
// from sysmon once 10 ms passed: a request whose bytes arrived waited for
// a whole batch of rows, tens of milliseconds (runtime traces of
// bench-peers.sh, BENCHMARKS.md). runtime.Gosched does not help: the
// yielding goroutine goes to the global run queue, which the scheduler
// takes before it polls the network.
//
// So every computing goroutine calls step between two rows. Once a slice
// of work has passed, and Config.Busy says requests came in during it,
// every one of them sleeps until the pause ends: with none of them
// runnable, the scheduler polls the network and runs the requests that
// were waiting. A node without requests pauses never.
type pacer struct {
	slice, pause time.Duration
	busy         func() bool
	now          func() time.Time
	sleep        func(time.Duration)

	// until is the end of the current pause, and sliceStart the start of
	// the slice of work after it, in Unix nanoseconds.
	until, sliceStart atomic.Int64
	// paused counts the pauses taken (a metric; nil: none).
	paused func()
}

// The pacing of background computations: slices of paceSlice, each
// followed by a pause of pacePause when requests came in during it. The
// pause is a sleep, which an idle P turns into about a millisecond (the
// runtime's network poller waits whole milliseconds for a timer) but a
// request arriving ends at once: under a steady request load a run gets
// about half of an otherwise idle P, and a request waits behind it for
// about one slice.
const (
	paceSlice = time.Millisecond
	pacePause = 50 * time.Microsecond
)

func newPacer(busy func() bool, paused func()) *pacer {
	p := &pacer{slice: paceSlice, pause: pacePause, busy: busy, now: time.Now, sleep: time.Sleep, paused: paused}
	p.sliceStart.Store(p.now().UnixNano())
	return p
}

// step is called by a computing goroutine between two units of work.
func (p *pacer) step() {
	if p.busy == nil {
		return
	}
	now := p.now().UnixNano()
	if until := p.until.Load(); now < until {
		// Another goroutine started a pause: join it, so that nothing of
		// the worker stays runnable.
		p.sleep(time.Duration(until - now))
		return
	}
	start := p.sliceStart.Load()
	if now-start < int64(p.slice) || !p.sliceStart.CompareAndSwap(start, now) {
		return
	}
	if !p.busy() {
		return // nobody to make room for: the next slice starts now
	}
	p.until.Store(now + int64(p.pause))
	p.sleep(p.pause)
	p.sliceStart.Store(p.now().UnixNano())
	if p.paused != nil {
		p.paused()
	}
}
