package polltest_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/polltest"
)

// TestEventuallyHolds: Eventually returns once the condition holds, after
// exactly the calls it took, and does not call it again.
func TestEventuallyHolds(t *testing.T) {
	calls := 0
	polltest.Eventually(t, time.Minute, func() error {
		calls++
		if calls < 3 {
			return fmt.Errorf("call %d", calls)
		}
		return nil
	})
	if calls != 3 {
		t.Errorf("%d calls, want 3", calls)
	}
}

// recorder is a testing.TB whose Fatalf records the message and ends the
// goroutine, as testing.T's does.
type recorder struct {
	testing.TB
	fatal string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestEventuallyFails: a condition that never holds fails the test with its
// last error and the number of attempts.
func TestEventuallyFails(t *testing.T) {
	rec := &recorder{TB: t}
	calls := 0
	returned := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		polltest.Eventually(rec, 20*time.Millisecond, func() error {
			calls++
			return fmt.Errorf("not yet, call %d", calls)
		})
		returned = true
	}()
	<-done
	if returned {
		t.Fatal("Eventually returned without the condition holding")
	}
	if calls < 1 {
		t.Fatalf("%d calls", calls)
	}
	want := fmt.Sprintf("not within 20ms (%d attempts): not yet, call %d", calls, calls)
	if rec.fatal != want {
		t.Errorf("failed with %q, want %q", rec.fatal, want)
	}
}

// TestEventuallyConditionFatal: a condition may fail the test itself; the
// polling stops there.
func TestEventuallyConditionFatal(t *testing.T) {
	rec := &recorder{TB: t}
	calls := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		polltest.Eventually(rec, time.Minute, func() error {
			calls++
			if calls == 2 {
				rec.Fatalf("broken: %v", errors.New("store closed"))
			}
			return errors.New("not yet")
		})
	}()
	<-done
	if calls != 2 || !strings.Contains(rec.fatal, "store closed") {
		t.Errorf("%d calls, failure %q; want 2 calls and the condition's own failure", calls, rec.fatal)
	}
}

// TestEventuallyBadArguments: no timeout, or no condition, fails at once.
func TestEventuallyBadArguments(t *testing.T) {
	calls := 0
	cond := func() error { calls++; return nil }
	cases := []struct {
		name    string
		timeout time.Duration
		cond    func() error
		want    string
	}{
		{"zero timeout", 0, cond, "got 0s"},
		{"negative timeout", -time.Second, cond, "got -1s"},
		{"nil condition", time.Minute, nil, "nil: true"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				polltest.Eventually(rec, c.timeout, c.cond)
			}()
			<-done
			if !strings.Contains(rec.fatal, c.want) {
				t.Errorf("failed with %q, want it to contain %q", rec.fatal, c.want)
			}
		})
	}
	if calls != 0 {
		t.Errorf("the condition was called %d times", calls)
	}
}
