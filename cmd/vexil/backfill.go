package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/backfill"
)

func init() {
	register(&command{
		name:    "cohorts",
		summary: "backfill a behavioural cohort from the events the ingest stream retains, through a running node's API",
		run:     runCohorts,
	})
}

// backfills adapts package backfill's jobs to the management API.
type backfills struct{ jobs *backfill.Jobs }

func (b backfills) StartBackfill(ctx context.Context, team, cohort int64) (admin.BackfillState, error) {
	s, err := b.jobs.Start(ctx, team, cohort)
	return backfillState(s), backfillErr(err)
}

func (b backfills) Backfill(ctx context.Context, team, cohort int64) (admin.BackfillState, bool, error) {
	s, ok, err := b.jobs.Get(ctx, team, cohort)
	return backfillState(s), ok, backfillErr(err)
}

func backfillState(s backfill.State) admin.BackfillState {
	return admin.BackfillState{State: s.State, Progress: s.Progress, StartedAt: s.StartedAt, FinishedAt: s.FinishedAt,
		Events: s.Events, Rows: s.Rows, Error: s.Error}
}

func backfillErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, backfill.ErrNotBehavioral):
		return errcode.New(errcode.FailedPrecondition, "the cohort counts no events here: it has no behavioural filter, or the projector has not seen its last change yet (retry in a moment)")
	case errors.Is(err, backfill.ErrUnavailable):
		return errcode.New(errcode.Unavailable, "backfill state unavailable: %v", err)
	}
	return err
}

// newBackfills builds the node's backfill jobs on its projector.
func newBackfills(n *node) *backfill.Jobs {
	return backfill.New(backfill.Config{JetStream: n.js, Namespace: n.ns, Projector: n.proj, Events: n.events.Set,
		Logger: n.log.With("role", "backfill")})
}

var _ backfill.Projector = (*projector.Projector)(nil)

// cohortBackfillJSON is a backfill as the REST API shows it.
type cohortBackfillJSON struct {
	State      string    `json:"state"`
	Progress   float64   `json:"progress"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Events     int64     `json:"events"`
	Rows       int64     `json:"rows"`
	Error      string    `json:"error"`
}

func runCohorts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, "Usage: vexil cohorts backfill|status --url http://HOST:PORT --key phx_... --team N --cohort ID")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "  backfill  start the cohort's backfill (cohort:write) and, with -wait (default), print its")
		fmt.Fprintln(stderr, "            progress until it is done; exits 1 when it failed")
		fmt.Fprintln(stderr, "  status    print the state of the cohort's last backfill (cohort:read)")
	}
	sub, args, err := subcommand(args, usage, "backfill or status")
	if sub == "" {
		return err
	}
	if sub != "backfill" && sub != "status" {
		usage()
		return &usageError{msg: fmt.Sprintf("unknown subcommand %q", sub)}
	}
	fs := newFlagSet("cohorts "+sub, stderr)
	api := bindAPIFlags(fs)
	team := fs.Int64("team", 0, "team id")
	cohort := fs.Int64("cohort", 0, "cohort id")
	wait := fs.Bool("wait", true, "backfill: wait until it is done, printing the progress")
	interval := fs.Duration("interval", time.Second, "backfill -wait: how often to read the progress (100ms..1m)")
	if err := fs.Parse(args); err != nil {
		return &usageError{msg: err.Error()}
	}
	switch {
	case *api.url == "":
		return &usageError{msg: "-url is required: backfills run in a running node"}
	case *team <= 0:
		return &usageError{msg: "-team is required (a positive team id)"}
	case *cohort <= 0:
		return &usageError{msg: "-cohort is required (a positive cohort id)"}
	case *interval < 100*time.Millisecond || *interval > time.Minute:
		return &usageError{msg: "-interval is 100ms..1m"}
	}
	c, err := api.client()
	if err != nil {
		return err
	}
	path := "/api/projects/" + strconv.FormatInt(*team, 10) + "/cohorts/" + strconv.FormatInt(*cohort, 10) + "/backfill"
	var st cohortBackfillJSON
	if sub == "status" {
		if err := c.do(ctx, "GET", path, nil, &st); err != nil {
			return err
		}
		printBackfill(stdout, st)
		return backfillFailed(st)
	}
	if err := c.do(ctx, "POST", path, map[string]any{}, &st); err != nil {
		return err
	}
	printBackfill(stdout, st)
	for *wait && st.State == backfill.Backfilling {
		t := time.NewTimer(*interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		if err := c.do(ctx, "GET", path, nil, &st); err != nil {
			return err
		}
		printBackfill(stdout, st)
	}
	return backfillFailed(st)
}

func printBackfill(w io.Writer, st cohortBackfillJSON) {
	fmt.Fprintf(w, "%s %5.1f%% events=%d rows=%d", st.State, 100*st.Progress, st.Events, st.Rows)
	if st.Error != "" {
		fmt.Fprintf(w, " error=%q", st.Error)
	}
	fmt.Fprintln(w)
}

func backfillFailed(st cohortBackfillJSON) error {
	if st.State == backfill.Failed {
		return fmt.Errorf("backfill failed: %s", st.Error)
	}
	return nil
}
