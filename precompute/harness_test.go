package precompute_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/memcatalog"
	"github.com/vexil-dev/vexil/changes"
	"github.com/vexil-dev/vexil/evalsvc"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/polltest"
	"github.com/vexil-dev/vexil/precompute"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/ingest"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/memstore"
	"github.com/vexil-dev/vexil/store/pebblestore"
	"github.com/vexil-dev/vexil/store/scyllastore/scyllastoretest"
	"github.com/vexil-dev/vexil/streams"
)

// backend opens an empty store of one kind.
type backend struct {
	name   string
	open   func(t testing.TB) store.Store
	atomic bool
}

var backends = []backend{
	{"memstore", func(t testing.TB) store.Store {
		s := memstore.New()
		t.Cleanup(func() { s.Close() })
		return s
	}, true},
	{"pebblestore", func(t testing.TB) store.Store {
		s, err := pebblestore.Open(pebblestore.Config{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}, true},
	// On the Cassandra of VEXIL_TEST_CASSANDRA; skips without it, fails
	// when CI=true.
	{"scyllastore", func(t testing.TB) store.Store { return scyllastoretest.New(t) }, false},
}

// clock is the evaluation clock every component of a test shares.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// env is one complete deployment in process: NATS with JetStream on a temp
// dir, a store, a catalog, the projector (with the precompute commit hook),
// precompute workers, and two evaluation services on the same store and
// catalog: one that uses stored results and one that evaluates everything
// live (the reference).
type env struct {
	t      testing.TB
	ctx    context.Context
	nats   *natstest.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	st     store.Store
	cat    catalog.Catalog
	clock  *clock
	team   int64
	token  string
	pub    *precompute.Publisher
	stored *evalsvc.Service
	live   *evalsvc.Service
	sh, lh http.Handler
	reg    *prometheus.Registry

	mu      sync.Mutex
	workers []*worker
}

const testToken = "phc_precompute_test_token"

func newEnv(t testing.TB, b backend) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ns := natstest.Start(t) // its cleanup runs after the env's below
	nc, js := ns.Conn, ns.JetStream
	e := &env{t: t, ctx: ctx, nats: ns, nc: nc, js: js, st: b.open(t), cat: memcatalog.New(memcatalog.Config{}), clock: &clock{},
		token: testToken, reg: prometheus.NewRegistry()}
	e.clock.ns.Store(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC).UnixNano())
	if _, err := precompute.EnsureStreams(ctx, js, "", quiet()); err != nil {
		t.Fatal(err)
	}
	if _, err := streams.Ensure(ctx, js, projector.IngestStreamConfig(projector.DefaultStream, ""), quiet()); err != nil {
		t.Fatal(err)
	}
	tm, err := e.cat.CreateTeam(ctx, catalog.Team{Name: "precompute", GroupTypes: map[int]string{0: "company"}}, catalog.Change{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	e.team = tm.ID
	h := sha256.Sum256([]byte(testToken))
	if _, err := e.cat.PutKey(ctx, catalog.APIKey{ID: "k1", Kind: catalog.KeyProjectToken, Hash: h[:], Teams: []int64{e.team}}, catalog.Change{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	e.pub = precompute.NewPublisher(js, "")
	pubCtx, pubCancel := context.WithCancel(ctx)
	pubDone := make(chan struct{})
	go func() { defer close(pubDone); e.pub.Run(pubCtx, 10*time.Millisecond) }()

	p, err := projector.New(projector.Config{Conn: nc, Store: e.st, AtomicStore: b.atomic, Logger: quiet(), Now: e.clock.Now,
		Events:   e.eventSet,
		OnCommit: func(ctx context.Context, c projector.Committed) error { return e.pub.Publish(ctx, c.Rows, c.Groups) }})
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(ctx)
	pdone := make(chan struct{})
	go func() { defer close(pdone); _ = p.Run(pctx) }()

	// Long store and evaluation timeouts: the test compares the stored and
	// live paths, not how a loaded machine meets the 50 ms and 250 ms
	// defaults. A store timeout answers in partial mode; the evaluation
	// deadline runs from the request's start, so a request that waited
	// over 250 ms for the CPU or for Cassandra answers every flag it
	// evaluates live failed (deadline_exceeded). Either differs between
	// the two services, which evaluate live different sets of flags.
	e.stored, err = evalsvc.New(evalsvc.Config{Store: e.st, Catalog: e.cat, Now: e.clock.Now, Repair: e.pub.Repair, Registry: e.reg,
		StoreTimeout: time.Minute, EvalTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.live, err = evalsvc.New(evalsvc.Config{Store: e.st, Catalog: e.cat, Now: e.clock.Now, LiveOnly: true,
		StoreTimeout: time.Minute, EvalTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.sh, e.lh = e.stored.Handler(), e.live.Handler()
	t.Cleanup(func() {
		e.stopWorkers()
		pcancel()
		<-pdone
		pubCancel()
		<-pubDone
	})
	return e
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// eventSet is the projector's Config.Events: the team's definitions,
// compiled from the catalog at each event (cmd/vexil caches them).
func (e *env) eventSet(team int64) *flags.Set {
	snap, err := e.cat.Snapshot(e.ctx, team)
	if err != nil {
		return nil
	}
	set, _ := flags.Compile(snap.Definitions)
	return set
}

// worker is one running precompute worker.
type worker struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func (e *env) startWorker(cfg precompute.Config) *worker {
	e.t.Helper()
	cfg.Store = orDefault(cfg.Store, e.st)
	cfg.Catalog, cfg.Conn, cfg.Now = e.cat, e.nc, e.clock.Now
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = 7
	}
	if cfg.Coalesce == 0 {
		cfg.Coalesce = 5 * time.Millisecond
	}
	if cfg.ExpiryInterval == 0 {
		cfg.ExpiryInterval = 10 * time.Millisecond
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 2
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = 2 * time.Second // a killed worker's work moves on quickly
	}
	w, err := precompute.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	r := &worker{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	e.mu.Lock()
	e.workers = append(e.workers, r)
	e.mu.Unlock()
	return r
}

func orDefault(s, d store.Store) store.Store {
	if s == nil {
		return d
	}
	return s
}

// stop kills the worker: whatever it had not acknowledged is redelivered.
func (w *worker) stop(t testing.TB) {
	w.once.Do(func() {
		w.cancel()
		if err := <-w.done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("worker: %v", err)
		}
	})
}

func (e *env) stopWorkers() {
	e.mu.Lock()
	ws := e.workers
	e.workers = nil
	e.mu.Unlock()
	for _, w := range ws {
		w.stop(e.t)
	}
}

// slowStore delays every write: a lagging worker.
type slowStore struct {
	store.Store
	delay time.Duration
}

func (s slowStore) Apply(ctx context.Context, b *store.Batch) error {
	time.Sleep(s.delay)
	return s.Store.Apply(ctx, b)
}

// publish sends ingest messages and waits until the projector applied them
// all (so that both evaluation services read the same state).
func (e *env) ingest(envs ...*ingestv1.Envelope) {
	e.t.Helper()
	var last uint64
	for _, env := range envs {
		subject, err := ingest.SubjectOf("", env)
		if err != nil {
			e.t.Fatal(err)
		}
		data, err := proto.Marshal(env)
		if err != nil {
			e.t.Fatal(err)
		}
		ack, err := e.js.Publish(e.ctx, subject, data)
		if err != nil {
			e.t.Fatal(err)
		}
		last = ack.Sequence
	}
	polltest.Eventually(e.t, 2*time.Minute, func() error {
		c, err := e.js.Consumer(e.ctx, projector.DefaultStream, projector.DefaultDurable)
		if err != nil {
			return fmt.Errorf("projector did not apply up to %d: %w", last, err)
		}
		ci, err := c.Info(e.ctx)
		if err != nil {
			return fmt.Errorf("projector did not apply up to %d: %w", last, err)
		}
		if ci.AckFloor.Stream < last {
			return fmt.Errorf("projector applied up to %d, not %d", ci.AckFloor.Stream, last)
		}
		return nil
	})
}

// notify publishes a change notice as the management API does, and
// refreshes both evaluation services so they answer from the same
// definitions.
func (e *env) notify(kind changes.Kind) {
	e.t.Helper()
	n := changes.Notice{Team: e.team, Kind: kind, Op: "updated"}
	data, err := n.Encode()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.nc.Publish(n.Subject(""), data); err != nil {
		e.t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		e.t.Fatal(err)
	}
	for _, s := range []*evalsvc.Service{e.stored, e.live} {
		if err := s.Refresh(e.ctx, e.team); err != nil {
			e.t.Fatal(err)
		}
	}
}

// flagsResponse posts body to /flags?v=2 on h and returns the decoded
// response without its per-request fields, and the sources header.
func flagsResponse(t testing.TB, h http.Handler, body string, debug bool) (map[string]any, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/flags?v=2", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if debug {
		req.Header.Set(evalsvc.DebugHeader, "1")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("/flags: %d %s", rec.Code, rec.Body.String())
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	delete(m, "requestId")
	delete(m, "evaluatedAt")
	return m, rec.Header().Get(evalsvc.SourcesHeader)
}

// sources parses the sources header into flag key → source.
func sources(h string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(h, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}

// quiet returns nil when every trigger, page and notice was handled and the
// team's latest run finished, and otherwise what is still under way.
func (e *env) quiet() error {
	s, err := e.js.Stream(e.ctx, precompute.NamesOf("").Stream)
	if err != nil {
		return err
	}
	info, err := s.Info(e.ctx)
	if err != nil {
		return err
	}
	if info.State.Msgs != 0 {
		return fmt.Errorf("%d messages in stream %s", info.State.Msgs, precompute.NamesOf("").Stream)
	}
	c, err := e.js.Consumer(e.ctx, precompute.NamesOf("").ChangeStream, "precompute-runs")
	if err != nil {
		return err
	}
	ci, err := c.Info(e.ctx)
	if err != nil {
		return err
	}
	if ci.NumPending != 0 || ci.NumAckPending != 0 {
		return fmt.Errorf("change notices: %d pending, %d unacknowledged", ci.NumPending, ci.NumAckPending)
	}
	st, err := precompute.Status(e.ctx, e.js, "", e.team)
	if err != nil {
		return err
	}
	if st == nil || !st.Finished() {
		return fmt.Errorf("run state %+v", st)
	}
	return nil
}

// waitQuiet waits until the workers caught up (twice in a row, a flush of
// the repair publisher apart).
func (e *env) waitQuiet() {
	e.t.Helper()
	ok := 0 // quiet checks in a row
	polltest.Eventually(e.t, 3*time.Minute, func() error {
		time.Sleep(30 * time.Millisecond) // checks a flush of the repair publisher apart
		if err := e.quiet(); err != nil {
			ok = 0
			return fmt.Errorf("precompute did not catch up: %w", err)
		}
		if ok++; ok < 2 {
			return errors.New("precompute quiet once, not yet twice in a row")
		}
		return nil
	})
}

// Catalog helpers.

func (e *env) createFlag(f flags.Flag) flags.Flag {
	e.t.Helper()
	f.TeamID = e.team
	r, err := e.cat.CreateFlag(e.ctx, catalog.FlagRecord{Flag: f}, catalog.Change{Actor: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
	return r.Flag
}

func (e *env) updateFlag(key string, fn func(*flags.Flag)) {
	e.t.Helper()
	r, err := e.cat.GetFlagByKey(e.ctx, e.team, key)
	if err != nil {
		e.t.Fatal(err)
	}
	fn(&r.Flag)
	if _, err := e.cat.UpdateFlag(e.ctx, r, catalog.Change{Actor: "test"}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) createCohort(c flags.Cohort) int64 {
	e.t.Helper()
	c.TeamID = e.team
	r, err := e.cat.CreateCohort(e.ctx, catalog.CohortRecord{Cohort: c}, catalog.Change{Actor: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
	return r.Cohort.ID
}

func (e *env) updateCohort(id int64, fn func(*flags.Cohort)) {
	e.t.Helper()
	r, err := e.cat.GetCohort(e.ctx, e.team, id)
	if err != nil {
		e.t.Fatal(err)
	}
	fn(&r.Cohort)
	if _, err := e.cat.UpdateCohort(e.ctx, r, catalog.Change{Actor: "test"}); err != nil {
		e.t.Fatal(err)
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func parseFlag(t testing.TB, s string) flags.Flag {
	t.Helper()
	f, err := flags.ParseFlag([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return f
}
