package projector

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// heldMsg stands for a delivered message; holding only compares them.
type heldMsg struct {
	jetstream.Msg
	id int
}

func TestHoldingTicks(t *testing.T) {
	h := newHolding()
	a, b, c := &heldMsg{id: 1}, &heldMsg{id: 2}, &heldMsg{id: 3}
	h.add(a)
	if due := h.tick(); len(due) != 0 {
		t.Fatalf("tick 1: %d due, want none (held less than %d ticks)", len(due), progressTicks)
	}
	h.add(b)
	if due := h.tick(); len(due) != 1 || due[0] != a {
		t.Fatalf("tick 2: due %v, want a", due)
	}
	h.add(c)
	if due := h.tick(); len(due) != 1 || due[0] != b {
		t.Fatalf("tick 3: due %v, want b", due)
	}
	h.release([]item{{msg: c}})
	if due := h.tick(); len(due) != 1 || due[0] != a {
		t.Fatalf("tick 4: due %v, want a again (c released)", due)
	}
	h.release([]item{{msg: a}, {msg: b}})
	if n := h.len(); n != 0 {
		t.Fatalf("%d held after releasing all", n)
	}
	if due := h.tick(); len(due) != 0 {
		t.Fatalf("tick 5: %d due, want none", len(due))
	}
}
