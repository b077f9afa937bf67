package admission

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestAgeClosesTheGate: requests that waited in front of a busy node
// (their age at admission over half their class's target) close the rate
// gate with the scheduler gate off, and not when the process was half
// idle; while it is closed a late request is
// refused at once and a fresh one admitted; a late request before the
// gate closed (one pause) is admitted; and the gate opens again once the
// requests arrive fresh.
func TestAgeClosesTheGate(t *testing.T) {
	busy := 0.5
	c, clk := newController(t, Config{InitialLimit: 4096, MinLimit: 8, MaxLimit: 4096,
		SchedDelay: func() (time.Duration, float64) { return 0, busy }})
	serve := func(n int, over, age time.Duration) (refused int) {
		step := over / time.Duration(n)
		for range n {
			clk.advance(step)
			tk, err := c.AcquireAged(Evaluate, age)
			if err != nil {
				if !errors.Is(err, ErrOverloaded) {
					t.Fatal(err)
				}
				refused++
				continue
			}
			tk.Done()
		}
		return refused
	}
	// 3ms old: over half the 5ms target, but the process's Ps were half
	// idle: the wait is another process's doing, and the gate stays open.
	if r := serve(1000, 100*time.Millisecond, 3*time.Millisecond); r != 0 || !math.IsInf(c.Rate(), 1) {
		t.Fatalf("late requests on a half-idle process: %d refused, rate %v; want none and the gate open", r, c.Rate())
	}
	// Busy: all admitted (the gate is open), and the window closes the
	// gate to 9,000/s (served 10,000/s).
	busy = 0.97
	if r := serve(1000, 100*time.Millisecond, 3*time.Millisecond); r != 0 {
		t.Fatalf("%d late requests refused while the gate was open, want none", r)
	}
	if got := c.Rate(); math.Abs(got-9000) > 1 {
		t.Fatalf("rate %v after a window of late requests at 10,000/s, want 9,000", got)
	}
	clk.advance(time.Second) // a full bucket: only age refuses
	if _, err := c.AcquireAged(Evaluate, 3*time.Millisecond); !errors.Is(err, ErrOverloaded) {
		t.Errorf("a late request while the gate is closed: %v, want ErrOverloaded", err)
	}
	tk, err := c.AcquireAged(Evaluate, 2*time.Millisecond)
	if err != nil {
		t.Errorf("a request within half the target while the gate is closed: %v, want admitted", err)
	}
	tk.Done()
	if l, r := testutil.ToFloat64(c.m.refused[Evaluate][reasonLate]), testutil.ToFloat64(c.m.refused[Evaluate][reasonRate]); l != 1 || r != 0 {
		t.Errorf("refusals: %v late, %v for want of a token; want 1 and 0", l, r)
	}
	// Management's target is 250ms: 3ms is fresh for it.
	if tk, err := c.AcquireAged(Management, 3*time.Millisecond); err != nil {
		t.Errorf("a management call 3ms old: %v, want admitted", err)
	} else {
		tk.Done()
	}
	// Fresh requests: calm windows open the gate again (by a tenth each,
	// then wide once the load is under half of it). The probes above ended
	// up in a late window: the gate starts from MinRate.
	for i := 0; i < 100 && !math.IsInf(c.Rate(), 1); i++ {
		serve(200, 100*time.Millisecond, 0)
	}
	if got := c.Rate(); !math.IsInf(got, 1) {
		t.Fatalf("rate %v after calm windows, want the gate open", got)
	}
	if tk, err := c.AcquireAged(Evaluate, time.Second); err != nil {
		t.Errorf("a late request with the gate open again: %v, want admitted", err)
	} else {
		tk.Done()
	}
}

// TestStampListener: a request's age comes from the kernel's receive
// timestamp of its bytes, through an http.Server with ConnContext: the
// stamp lies between the client's write and the handler's start, and the
// stamped connection reads and ends as a TCP connection does (EOF, a
// deadline is a timeout).
func TestStampListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	type seen struct {
		stamp, start time.Time
	}
	got := make(chan seen, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		got <- seen{now.Add(-Age(r.Context(), now)), now}
	}), ConnContext: ConnContext}
	go func() { _ = srv.Serve(StampListener(ln)) }()
	defer srv.Close()
	// The kernel turns timestamps on in the background: the first
	// requests may come unstamped (age 0). Up to 100 tries.
	var s seen
	var before time.Time
	for range 100 {
		before = time.Now()
		res, err := http.Post("http://"+ln.Addr().String()+"/", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if s = <-got; !s.stamp.Equal(s.start) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s.stamp.Equal(s.start) || s.stamp.Before(before) || s.stamp.After(s.start) {
		t.Errorf("receive stamp %v, want after the client's start %v and before the handler's %v (age not 0)", s.stamp, before, s.start)
	}
	// Without ConnContext (or a stamped connection), the age is 0.
	if a := Age(context.Background(), time.Now()); a != 0 {
		t.Errorf("age without a stamped connection: %v", a)
	}

	// The connection itself.
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := StampListener(raw)
	defer sl.Close()
	client, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := sl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := conn.(stamped); !ok {
		t.Fatalf("accepted %T, want a stamped connection", conn)
	}
	_ = conn.SetReadDeadline(time.Now().Add(-time.Second))
	var ne net.Error
	if _, err := conn.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("read past the deadline: %v, want a timeout", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	_, _ = client.Write([]byte("hello"))
	client.Close()
	b, err := io.ReadAll(conn)
	if err != nil || string(b) != "hello" {
		t.Errorf("read %q, %v, want hello and EOF", b, err)
	}
}

// TestSlowHandlersDoNotHoldTheGate: the gate answers to the queue, the
// limit to handler latency. Once the queue is gone, windows of slow
// handlers lower the limit but open the gate again (a closed gate once
// stayed at MinRate under half the node's capacity because its handlers,
// on one P behind hundreds of connections' goroutines, were slow).
func TestSlowHandlersDoNotHoldTheGate(t *testing.T) {
	c, clk := newController(t, Config{InitialLimit: 64, MinLimit: 8, MaxLimit: 4096,
		SchedDelay: func() (time.Duration, float64) { return 0, 0.97 }})
	// A window of 1,000 requests 3ms old: a queue of 30; the gate closes.
	for range 1000 {
		clk.advance(100 * time.Microsecond)
		tk, err := c.AcquireAged(Evaluate, 3*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		tk.Done()
	}
	if math.IsInf(c.Rate(), 1) {
		t.Fatal("the gate stayed open behind a queue of 30")
	}
	// Fresh requests whose handlers take 10ms (over the 5ms target).
	limit := c.Limit()
	for i := 0; i < 100 && !math.IsInf(c.Rate(), 1); i++ {
		for range 200 {
			clk.advance(500 * time.Microsecond)
			tk, err := c.AcquireAged(Evaluate, 0)
			if err != nil {
				continue
			}
			tk.start = clk.t.Add(-10 * time.Millisecond)
			tk.Done()
		}
	}
	if got := c.Rate(); !math.IsInf(got, 1) {
		t.Errorf("rate %v after fresh requests with slow handlers, want the gate open", got)
	}
	if got := c.Limit(); got >= limit {
		t.Errorf("limit %d after slow handlers, want under %d", got, limit)
	}
}
