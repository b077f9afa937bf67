package backfill_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/polltest"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/backfill"
)

// fakeProjector blocks each backfill until release is closed (or ctx
// ends), reporting half the work done first.
type fakeProjector struct {
	mu      sync.Mutex
	calls   int
	release chan struct{}
}

func (f *fakeProjector) Backfill(ctx context.Context, team int64, pairs []uint64, opt projector.BackfillOptions) error {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	if len(pairs) != 1 {
		return errors.New("want the cohort's one pair")
	}
	opt.Progress(projector.BackfillProgress{Pass: 0, Passes: 1, Read: 5, End: 10, Events: 3, Rows: 2})
	select {
	case <-f.release:
		opt.Progress(projector.BackfillProgress{Pass: 0, Passes: 1, Read: 10, End: 10, Events: 6, Rows: 4})
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeProjector) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func cohortSet(t *testing.T) *flags.Set {
	t.Helper()
	defs, err := flags.ParseDefinitions([]byte(`{"flags": [], "cohorts": {"5": {"type": "AND", "values": [
		{"key": "checkout", "type": "behavioral", "value": "performed_event", "time_value": 1, "time_interval": "day"}]},
		"6": {"type": "AND", "values": [{"key": "plan", "type": "person", "value": "pro"}]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	set, err := flags.Compile(defs)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestJobsResume: a job reports backfilling with its progress; a process
// that ends mid-job leaves it backfilling, and the next process's Run
// resumes it to done. A cohort counting no events is refused.
func TestJobsResume(t *testing.T) {
	ns := natstest.Start(t)
	set := cohortSet(t)
	fp := &fakeProjector{release: make(chan struct{})}
	cfg := backfill.Config{JetStream: ns.JetStream, Projector: fp, Events: func(int64) *flags.Set { return set },
		Logger: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	jobs := backfill.New(cfg)
	if _, err := jobs.Start(ctx, 1, 6); !errors.Is(err, backfill.ErrNotBehavioral) {
		t.Fatalf("a property cohort: %v", err)
	}
	if _, ok, err := jobs.Get(ctx, 1, 5); ok || err != nil {
		t.Fatalf("never started: %v %v", ok, err)
	}
	s, err := jobs.Start(ctx, 1, 5)
	if err != nil || s.State != backfill.Backfilling || s.StartedAt.IsZero() {
		t.Fatalf("start: %+v %v", s, err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- jobs.Run(rctx) }()
	polltest.Eventually(t, time.Minute, func() error {
		s, _, err := jobs.Get(ctx, 1, 5)
		if err != nil || s.Progress != 0.5 || s.Events != 3 {
			return errors.New("no progress yet")
		}
		return nil
	})
	stop() // the process ends mid-job
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s, _, _ := jobs.Get(ctx, 1, 5); s.State != backfill.Backfilling || !s.FinishedAt.IsZero() {
		t.Fatalf("after the process ended: %+v", s)
	}

	// The next process resumes it.
	close(fp.release)
	next := backfill.New(cfg)
	rctx, stop = context.WithCancel(ctx)
	defer stop()
	go func() { done <- next.Run(rctx) }()
	polltest.Eventually(t, time.Minute, func() error {
		s, _, err := next.Get(ctx, 1, 5)
		if err != nil || s.State != backfill.Done {
			b, _ := json.Marshal(s)
			return errors.New("not done: " + string(b))
		}
		if s.Progress != 1 || s.Events != 6 || s.Rows != 4 || s.FinishedAt.IsZero() {
			t.Fatalf("done: %+v", s)
		}
		return nil
	})
	if fp.count() != 2 {
		t.Fatalf("%d backfill calls, want 2 (the first, the resumed)", fp.count())
	}
}
