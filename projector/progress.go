package projector

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// holding is the set of messages delivered to this run and not yet
// acknowledged, from the moment the NATS client hands one over until its
// batch acknowledged it. keepInProgress tells JetStream that these are still
// being worked on, so that a short AckWait redelivers only what a dead run
// held.
type holding struct {
	// mu guards msgs: for each message held, the progress ticks it has
	// been held since it was delivered or last kept in progress.
	mu struct {
		sync.Mutex
		msgs map[jetstream.Msg]int
	}
}

func newHolding() *holding {
	h := &holding{}
	h.mu.msgs = make(map[jetstream.Msg]int)
	return h
}

// add starts holding m.
func (h *holding) add(m jetstream.Msg) {
	h.mu.Lock()
	h.mu.msgs[m] = 0
	h.mu.Unlock()
}

// release stops holding the messages of items.
func (h *holding) release(items []item) {
	h.mu.Lock()
	for i := range items {
		delete(h.mu.msgs, items[i].msg)
	}
	h.mu.Unlock()
}

// len is the number of messages held.
func (h *holding) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.mu.msgs)
}

// progressTicks is how many ticks of keepInProgress a message is held
// before it is kept in progress: with a tick every AckWait/4, an in-progress
// ack goes out between AckWait/4 and AckWait/2 after the delivery or the
// previous one, half an AckWait before JetStream would redeliver.
const progressTicks = 2

// tick counts one more tick for every message held and returns those held
// for progressTicks ticks since their delivery or last progress ack, which
// start counting again.
func (h *holding) tick() []jetstream.Msg {
	h.mu.Lock()
	defer h.mu.Unlock()
	var due []jetstream.Msg
	for m, n := range h.mu.msgs {
		n++
		if n >= progressTicks {
			due = append(due, m)
			n = 0
		}
		h.mu.msgs[m] = n
	}
	return due
}

// progressInterval is the period of keepInProgress for an ack wait.
func progressInterval(ackWait time.Duration) time.Duration {
	return ackWait / 4
}

// keepInProgress sends an in-progress ack for every message held longer
// than a progress interval, every progress interval, until ctx ends. A
// batch slower than AckWait (a slow or retried store write, a long commit
// hook) and the messages queued behind it are therefore not redelivered
// while this run is alive.
func (p *Projector) keepInProgress(ctx context.Context) error {
	t := time.NewTicker(progressInterval(p.cfg.AckWait))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		failed, sent := 0, 0
		var firstErr error
		for _, m := range p.held.tick() {
			err := m.InProgress()
			switch {
			case err == nil:
				sent++
			case errors.Is(err, jetstream.ErrMsgAlreadyAckd):
				// acknowledged meanwhile: nothing to keep
			default:
				failed++
				if firstErr == nil {
					firstErr = err
				}
			}
		}
		p.m.progressAcks.Add(float64(sent))
		if failed > 0 && ctx.Err() == nil {
			p.log.Warn("in-progress acks failed", "failed", failed, "err", firstErr)
		}
	}
}
