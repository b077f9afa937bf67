// Package backfill runs cohort backfills (projector.Backfill) as jobs with
// a state the management API reports: a behavioural cohort created or
// imported after its events were published gets their counts from the
// events the ingest stream retains, while live traffic continues
// (docs/cohorts.md, Backfill).
//
// A job's state is a JetStream key-value entry per team and cohort, so it
// survives the process: a job still "backfilling" when its process ended
// is resumed by the next Run, and resuming is exact because each row's
// merge is idempotent.
package backfill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/projector"
)

// States of a job.
const (
	Backfilling = "backfilling"
	Done        = "done"
	Failed      = "failed"
)

// Errors of Start.
var (
	// ErrNotBehavioral: the cohort counts no events (or is unknown to
	// the projector's set of the team yet).
	ErrNotBehavioral = errors.New("backfill: the cohort counts no events")
	// ErrUnavailable: the state cannot be read or written (NATS away).
	ErrUnavailable = errors.New("backfill: state unavailable")
)

// State is a job's state.
type State struct {
	Team   int64  `json:"team"`
	Cohort int64  `json:"cohort"`
	State  string `json:"state"`
	// Progress is the share done, 0..1.
	Progress   float64   `json:"progress"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// Events counted and rows merged so far.
	Events int    `json:"events"`
	Rows   int    `json:"rows"`
	Error  string `json:"error,omitempty"`
}

// Projector is what a job needs of the projector (*projector.Projector).
type Projector interface {
	Backfill(ctx context.Context, team int64, pairs []uint64, opt projector.BackfillOptions) error
}

// Config configures Jobs.
type Config struct {
	JetStream jetstream.JetStream
	Namespace namespace.Name
	Projector Projector
	// Events is the projector's Config.Events: the pairs of a cohort are
	// those its set tracks.
	Events func(team int64) *flags.Set
	Logger *slog.Logger
	// Now is the clock of started_at and finished_at. Default time.Now.
	Now func() time.Time
	// Options are passed to each backfill (tests make chunks small).
	Options projector.BackfillOptions
}

// Bucket is the key-value bucket of the job states in ns.
func Bucket(ns namespace.Name) string { return ns.Bucket("backfills") }

// Jobs starts, runs and reports backfills. Run must be running for a
// started job to proceed.
type Jobs struct {
	cfg Config
	mu  sync.Mutex
	kv  jetstream.KeyValue
	// running: jobs of this process, by key; queue: jobs to start.
	running map[string]bool
	queue   chan State
}

// New returns Jobs; nothing is opened until first use.
func New(cfg Config) *Jobs {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Jobs{cfg: cfg, running: map[string]bool{}, queue: make(chan State, 64)}
}

func key(team, cohort int64) string {
	return strconv.FormatInt(team, 10) + "." + strconv.FormatInt(cohort, 10)
}

func (j *Jobs) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.kv != nil {
		return j.kv, nil
	}
	name := Bucket(j.cfg.Namespace)
	kv, err := j.cfg.JetStream.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: name,
		Description: "Vexil cohort backfill states", Storage: jetstream.FileStorage})
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = j.cfg.JetStream.KeyValue(ctx, name)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: bucket %s: %w", ErrUnavailable, name, err)
	}
	j.kv = kv
	return kv, nil
}

// Get returns the state of team's cohort; ok is false when it was never
// backfilled.
func (j *Jobs) Get(ctx context.Context, team, cohort int64) (State, bool, error) {
	kv, err := j.bucket(ctx)
	if err != nil {
		return State{}, false, err
	}
	e, err := kv.Get(ctx, key(team, cohort))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var s State
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return State{}, false, fmt.Errorf("backfill: state %s: %w", e.Key(), err)
	}
	return s, true, nil
}

func (j *Jobs) put(ctx context.Context, s State) error {
	kv, err := j.bucket(ctx)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(s)
	if _, err := kv.Put(ctx, key(s.Team, s.Cohort), b); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// Start starts the backfill of team's cohort and returns its state: a job
// already backfilling is returned as is; a done or failed one is started
// again (a second backfill counts nothing twice).
func (j *Jobs) Start(ctx context.Context, team, cohort int64) (State, error) {
	set := j.cfg.Events(team)
	if set == nil || len(set.CohortPairs(cohort)) == 0 {
		return State{}, ErrNotBehavioral
	}
	s, ok, err := j.Get(ctx, team, cohort)
	if err != nil {
		return State{}, err
	}
	if ok && s.State == Backfilling {
		j.enqueue(s) // resumed here if its process ended
		return s, nil
	}
	s = State{Team: team, Cohort: cohort, State: Backfilling, StartedAt: j.cfg.Now().UTC()}
	if err := j.put(ctx, s); err != nil {
		return State{}, err
	}
	j.enqueue(s)
	return s, nil
}

func (j *Jobs) enqueue(s State) {
	j.mu.Lock()
	k := key(s.Team, s.Cohort)
	if j.running[k] {
		j.mu.Unlock()
		return
	}
	j.running[k] = true
	j.mu.Unlock()
	select {
	case j.queue <- s:
	default:
		// Full: the job stays "backfilling" and is resumed by the next
		// Start or Run.
		j.mu.Lock()
		delete(j.running, k)
		j.mu.Unlock()
	}
}

// Run resumes the jobs left backfilling by an ended process, then runs
// started jobs, one at a time (they share the projector's one writer),
// until ctx ends.
func (j *Jobs) Run(ctx context.Context) error {
	if err := j.resume(ctx); err != nil && ctx.Err() == nil {
		j.cfg.Logger.Warn("backfills not resumed", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-j.queue:
			j.run(ctx, s)
			j.mu.Lock()
			delete(j.running, key(s.Team, s.Cohort))
			j.mu.Unlock()
		}
	}
}

func (j *Jobs) resume(ctx context.Context) error {
	kv, err := j.bucket(ctx)
	if err != nil {
		return err
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil
		}
		return err
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	for _, k := range keys {
		team, cohort, ok := parseKey(k)
		if !ok {
			continue
		}
		if s, ok, err := j.Get(ctx, team, cohort); err == nil && ok && s.State == Backfilling {
			j.cfg.Logger.Info("resuming a backfill", "team", team, "cohort", cohort)
			j.enqueue(s)
		}
	}
	return nil
}

func parseKey(k string) (int64, int64, bool) {
	a, b, ok := strings.Cut(k, ".")
	team, err1 := strconv.ParseInt(a, 10, 64)
	cohort, err2 := strconv.ParseInt(b, 10, 64)
	return team, cohort, ok && err1 == nil && err2 == nil
}

// run runs one job to its end, writing its progress.
func (j *Jobs) run(ctx context.Context, s State) {
	log := j.cfg.Logger.With("team", s.Team, "cohort", s.Cohort)
	var pairs []uint64
	if set := j.cfg.Events(s.Team); set != nil {
		pairs = set.CohortPairs(s.Cohort)
	}
	var err error
	if len(pairs) == 0 {
		err = ErrNotBehavioral // deleted or changed since it started
	} else {
		opt := j.cfg.Options
		user := opt.Progress
		opt.Progress = func(p projector.BackfillProgress) {
			s.Progress, s.Events, s.Rows = p.Fraction(), p.Events, p.Rows
			if perr := j.put(ctx, s); perr != nil {
				log.Warn("backfill progress not written", "err", perr)
			}
			if user != nil {
				user(p)
			}
		}
		err = j.cfg.Projector.Backfill(ctx, s.Team, pairs, opt)
	}
	if ctx.Err() != nil {
		return // the process ends: the job stays backfilling and resumes
	}
	s.FinishedAt = j.cfg.Now().UTC()
	if err != nil {
		s.State, s.Error = Failed, err.Error()
		log.Warn("backfill failed", "err", err)
	} else {
		s.State, s.Progress = Done, 1
		log.Info("backfill done", "events", s.Events, "rows", s.Rows)
	}
	if perr := j.put(context.WithoutCancel(ctx), s); perr != nil {
		log.Warn("backfill state not written", "err", perr)
	}
}
