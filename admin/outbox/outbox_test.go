package outbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vexil-dev/vexil/polltest"
)

// sender is an in-memory Sender that fails while down is set.
type sender struct {
	mu   sync.Mutex
	down bool
	got  []string // "subject data"
	// fails counts refused sends.
	fails int
}

var errDown = errors.New("sender down")

func (s *sender) Publish(_ context.Context, subject string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		s.fails++
		return errDown
	}
	s.got = append(s.got, subject+" "+string(data))
	return nil
}

func (s *sender) setDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

func (s *sender) sent() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

func (s *sender) failures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fails
}

func open(t *testing.T, dir string, s Sender, reg prometheus.Registerer, max int) *Outbox {
	t.Helper()
	o, err := Open(Config{Dir: dir, Sender: s, MaxMessages: max, MaxMessageBytes: 64,
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close() })
	return o
}

// run runs o until the test ends and waits for Run to return.
func run(t *testing.T, o *Outbox) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitSent(t *testing.T, s *sender, want []string) {
	t.Helper()
	polltest.Eventually(t, 30*time.Second, func() error {
		if got := s.sent(); !slices.Equal(got, want) {
			return fmt.Errorf("sent %q, want %q", got, want)
		}
		return nil
	})
}

func TestOutboxSendsAfterOutage(t *testing.T) {
	s := &sender{down: true}
	reg := prometheus.NewRegistry()
	o := open(t, t.TempDir(), s, reg, 0)
	run(t, o)
	var want []string
	for i := range 5 {
		if err := o.Publish(context.Background(), "vexil.changes.1", fmt.Appendf(nil, "n%d", i)); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("vexil.changes.1 n%d", i))
	}
	// Run retries the oldest while the sender is down: nothing is lost.
	polltest.Eventually(t, 30*time.Second, func() error {
		if f := s.failures(); f < 3 {
			return fmt.Errorf("%d failed sends", f)
		}
		return nil
	})
	if p := o.Pending(); p != 5 {
		t.Fatalf("pending %d during the outage, want 5", p)
	}
	if got := s.sent(); len(got) != 0 {
		t.Fatalf("sent %q while down", got)
	}
	s.setDown(false)
	waitSent(t, s, want)
	polltest.Eventually(t, 30*time.Second, func() error {
		if p := o.Pending(); p != 0 {
			return fmt.Errorf("pending %d", p)
		}
		return nil
	})
	if v := testutil.ToFloat64(o.metrics.pending); v != 0 {
		t.Errorf("vexil_outbox_pending %v, want 0", v)
	}
	if v := testutil.ToFloat64(o.metrics.sends.WithLabelValues("ok")); v != 5 {
		t.Errorf("ok sends %v, want 5", v)
	}
	if v := testutil.ToFloat64(o.metrics.appended); v != 5 {
		t.Errorf("appended %v, want 5", v)
	}
	if n, err := testutil.GatherAndCount(reg, "vexil_outbox_pending", "vexil_outbox_sends_total"); err != nil || n != 3 {
		t.Errorf("gathered %d series (%v), want 3", n, err)
	}
}

// The queue survives a restart: what was not sent is sent by the next
// process, in order, and new messages queue after it.
func TestOutboxSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := &sender{down: true}
	o := open(t, dir, s, nil, 0)
	stop := run(t, o)
	for _, d := range []string{"a", "b", "c"} {
		if err := o.Publish(context.Background(), "vexil.changes.2", []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := o.Publish(context.Background(), "vexil.changes.2", []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v, want ErrClosed", err)
	}

	s2 := &sender{}
	o2 := open(t, dir, s2, nil, 0)
	if p := o2.Pending(); p != 3 {
		t.Fatalf("pending after reopen %d, want 3", p)
	}
	if err := o2.Publish(context.Background(), "vexil.changes.2", []byte("d")); err != nil {
		t.Fatal(err)
	}
	run(t, o2)
	waitSent(t, s2, []string{"vexil.changes.2 a", "vexil.changes.2 b", "vexil.changes.2 c", "vexil.changes.2 d"})
}

func TestOutboxBounds(t *testing.T) {
	s := &sender{down: true}
	o := open(t, t.TempDir(), s, nil, 2)
	ctx := context.Background()
	for i := range 2 {
		if err := o.Publish(ctx, "s", []byte{byte('0' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Publish(ctx, "s", []byte("2")); !errors.Is(err, ErrFull) {
		t.Errorf("third message: %v, want ErrFull", err)
	}
	if err := o.Publish(ctx, "s", []byte(strings.Repeat("x", 64))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("65 bytes: %v, want ErrTooLarge", err)
	}
	if err := o.Publish(ctx, "", []byte("x")); !errors.Is(err, ErrTooLarge) {
		t.Errorf("empty subject: %v, want ErrTooLarge", err)
	}
	if v := testutil.ToFloat64(o.metrics.refused.WithLabelValues("full")); v != 1 {
		t.Errorf("refused full %v, want 1", v)
	}
	if v := testutil.ToFloat64(o.metrics.refused.WithLabelValues("too_large")); v != 2 {
		t.Errorf("refused too_large %v, want 2", v)
	}
	s.setDown(false)
	run(t, o)
	waitSent(t, s, []string{"s 0", "s 1"})
	polltest.Eventually(t, 30*time.Second, func() error {
		if err := o.Publish(ctx, "s", []byte("2")); err != nil {
			return err
		}
		return nil
	})
	waitSent(t, s, []string{"s 0", "s 1", "s 2"})
}

func TestConfigValidate(t *testing.T) {
	s := &sender{}
	cases := []struct {
		name string
		cfg  Config
	}{
		{"no dir", Config{Sender: s}},
		{"no sender", Config{Dir: "d"}},
		{"negative bound", Config{Dir: "d", Sender: s, MaxMessages: -1}},
		{"negative size", Config{Dir: "d", Sender: s, MaxMessageBytes: -1}},
		{"negative timeout", Config{Dir: "d", Sender: s, SendTimeout: -1}},
		{"backoff order", Config{Dir: "d", Sender: s, MinBackoff: time.Second, MaxBackoff: time.Millisecond}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.cfg.Validate(); err == nil {
				t.Error("Validate accepted it")
			}
			if _, err := Open(c.cfg); err == nil {
				t.Error("Open accepted it")
			}
		})
	}
	if err := (&Config{Dir: "d", Sender: s}).Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
}
