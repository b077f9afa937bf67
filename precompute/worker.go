package precompute

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/changes"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/precompute/results"
	"github.com/vexil-dev/vexil/signals"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/streams"
)

// Worker materialises flag results into the store. Any number of workers
// share the work through NATS. It is safe for concurrent use.
type Worker struct {
	cfg  Config
	js   jetstream.JetStream
	runs runs
	pub  *Publisher
	// rec derives cohort membership signals (nil: Config.NoSignals, or
	// before Run).
	rec   *signals.Recorder
	names Names
	m     *metrics
	clock hlc

	mu   sync.Mutex
	defs map[int64]*teamDefs

	// runLimit paces the pages of runs (nil: unbounded).
	runLimit *rate.Limiter
	// pace makes room for requests between rows.
	pace *pacer

	scratch sync.Pool // *results.Scratch
}

// teamDefs is a team's compiled definitions and plan.
type teamDefs struct {
	set  *flags.Set
	plan *results.Plan
	// watched is the cohorts whose membership changes are signalled
	// (Set.BehavioralCohorts).
	watched []int64
	// groupWatched is, per group type, the cohorts whose membership
	// changes are signalled for groups (Set.GroupBehavioralCohorts).
	groupWatched map[int][]int64
	loaded       time.Time
	stale        atomic.Bool
	// digest identifies the definitions compiled (definitionsDigest).
	digest uint64
}

// definitionsDigest hashes the definitions a teamDefs is compiled from:
// reconcile and the ReloadInterval reload read every team's definitions
// again, and compiling unchanged ones took the only P of a one-core node
// for a millisecond or more each time (evalsvc's BenchmarkReload).
func definitionsDigest(defs flags.Definitions) (uint64, error) {
	h := xxhash.New()
	if err := json.NewEncoder(h).Encode(defs); err != nil {
		return 0, err
	}
	return h.Sum64(), nil
}

// New returns a Worker; Run starts it.
func New(cfg Config) (*Worker, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(c.Conn)
	if err != nil {
		return nil, fmt.Errorf("precompute: jetstream: %w", err)
	}
	w := &Worker{cfg: c, js: js, pub: NewPublisher(js, c.Namespace), names: NamesOf(c.Namespace), m: newMetrics(c.Registry), defs: map[int64]*teamDefs{}}
	w.scratch.New = func() any { return new(results.Scratch) }
	w.pace = newPacer(c.Arrivals, w.m.pauses.Inc)
	if err := c.Registry.Register(newBacklogCollector(js, c.Namespace)); err != nil {
		return nil, fmt.Errorf("precompute: backlog metric: %w", err)
	}
	if c.RunRowsPerSecond > 0 {
		w.runLimit = rate.NewLimiter(rate.Limit(c.RunRowsPerSecond), max(c.RunRowsPerSecond, c.PageSize))
	}
	return w, nil
}

// EnsureStreams creates the work stream, the change-notice stream and the
// run bucket of ns when missing. Existing streams keep their configuration; log
// (nil: slog.Default()) is warned of settings that differ from these
// defaults (streams.Ensure).
func EnsureStreams(ctx context.Context, js jetstream.JetStream, ns namespace.Name, log *slog.Logger) (jetstream.KeyValue, error) {
	n := NamesOf(ns)
	for _, sc := range []jetstream.StreamConfig{
		{Name: n.Stream, Description: "Vexil precompute work: row triggers and run pages",
			Subjects: []string{n.RowSubjectPrefix + ">", n.PageSubjectPrefix + ">"}, Storage: jetstream.FileStorage,
			Retention: jetstream.WorkQueuePolicy, MaxAge: 24 * time.Hour,
			// Pages carry message ids: a scan resumed from its checkpoint
			// (after AckWait, at most) republishes no page already out.
			Duplicates: pageDedupWindow},
		{Name: n.ChangeStream, Description: "Vexil definition change notices, for precompute runs",
			Subjects: []string{changes.Wildcard(ns)}, Storage: jetstream.FileStorage,
			Retention: jetstream.LimitsPolicy, MaxAge: 24 * time.Hour},
	} {
		if _, err := streams.Ensure(ctx, js, sc, log); err != nil {
			return nil, fmt.Errorf("precompute: %w", err)
		}
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: n.RunBucket, Description: "Vexil precompute run states",
		Storage: jetstream.FileStorage, History: 1})
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.KeyValue(ctx, n.RunBucket)
	}
	if err != nil {
		return nil, fmt.Errorf("precompute: ensure bucket %s: %w", n.RunBucket, err)
	}
	return kv, nil
}

// Publisher returns the worker's trigger publisher (for the projector's
// commit hook and the evaluation service's repairs).
func (w *Worker) Publisher() *Publisher { return w.pub }

// Run runs the worker's roles until ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	kv, err := EnsureStreams(ctx, w.js, w.cfg.Namespace, w.cfg.Logger)
	if err != nil {
		return err
	}
	w.runs = runs{kv}
	if !w.cfg.NoSignals {
		members, err := signals.Ensure(ctx, w.js, w.cfg.Namespace, w.cfg.Logger)
		if err != nil {
			return fmt.Errorf("precompute: %w", err)
		}
		w.rec = signals.NewRecorder(w.cfg.Namespace, w.js, members)
	}
	sub, err := w.cfg.Conn.Subscribe(changes.Wildcard(w.cfg.Namespace), func(msg *nats.Msg) {
		if team, ok := changes.TeamOf(w.cfg.Namespace, msg.Subject); ok {
			w.invalidate(team)
		}
	})
	if err != nil {
		return fmt.Errorf("precompute: subscribe to change notices: %w", err)
	}
	defer sub.Unsubscribe() //nolint:errcheck // best effort on shutdown

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { w.pub.Run(ctx, 50*time.Millisecond); return nil })
	r := w.cfg.Roles
	if !r.NoRows {
		cons, err := w.consumer(ctx, w.names.Stream, "precompute-rows", w.names.RowSubjectPrefix+">", w.cfg.AckWait, 20000)
		if err != nil {
			return err
		}
		g.Go(func() error { return w.rowLoop(ctx, cons) })
	}
	if !r.NoPages {
		cons, err := w.consumer(ctx, w.names.Stream, "precompute-pages", w.names.PageSubjectPrefix+">", w.cfg.AckWait, 4*w.cfg.Concurrency)
		if err != nil {
			return err
		}
		for range max(1, w.cfg.Concurrency/2) {
			g.Go(func() error { return w.pageLoop(ctx, cons) })
		}
	}
	if !r.NoRuns {
		cons, err := w.consumer(ctx, w.names.ChangeStream, "precompute-runs", changes.Wildcard(w.cfg.Namespace), w.cfg.AckWait, 2*noticeConcurrency)
		if err != nil {
			return err
		}
		g.Go(func() error { return w.noticeLoop(ctx, cons) })
		g.Go(func() error {
			for {
				if err := w.reconcile(ctx); err != nil && ctx.Err() == nil {
					w.cfg.Logger.Warn("precompute reconcile", "err", err)
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(w.cfg.ReloadInterval):
				}
			}
		})
	}
	if !r.NoExpiry {
		g.Go(func() error { return w.expiryLoop(ctx) })
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (w *Worker) consumer(ctx context.Context, stream, durable, filter string, ackWait time.Duration, maxPending int) (jetstream.Consumer, error) {
	deliver := jetstream.DeliverAllPolicy // a work queue's consumers take everything
	if stream == w.names.ChangeStream {
		deliver = jetstream.DeliverNewPolicy // older notices are covered by reconcile
	}
	c, err := w.js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: durable, FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: ackWait, MaxAckPending: maxPending, DeliverPolicy: deliver,
	})
	if err != nil {
		return nil, fmt.Errorf("precompute: consumer %s: %w", durable, err)
	}
	return c, nil
}

// hlc is the write stamp clock: wall-clock microseconds, strictly
// increasing within the process. A stamp is taken before the reads of a
// computation, so a computation that read newer state carries a larger
// stamp and the store's versioned write keeps it.
type hlc struct{ last atomic.Int64 }

func (c *hlc) stamp() int64 {
	for {
		n := time.Now().UnixMicro()
		l := c.last.Load()
		if n <= l {
			n = l + 1
		}
		if c.last.CompareAndSwap(l, n) {
			return n
		}
	}
}

// errTeamGone says the catalog has no such team: its work is dropped.
var errTeamGone = errors.New("precompute: team not found")

func (w *Worker) invalidate(team int64) {
	w.mu.Lock()
	if d, ok := w.defs[team]; ok {
		d.stale.Store(true)
	}
	w.mu.Unlock()
}

// definitions returns a team's compiled definitions, reloading them when a
// change notice marked them stale or they are older than ReloadInterval.
func (w *Worker) definitions(ctx context.Context, team int64) (*teamDefs, error) {
	w.mu.Lock()
	d, ok := w.defs[team]
	w.mu.Unlock()
	if ok && !d.stale.Load() && time.Since(d.loaded) < w.cfg.ReloadInterval {
		return d, nil
	}
	return w.reload(ctx, team)
}

func (w *Worker) reload(ctx context.Context, team int64) (*teamDefs, error) {
	snap, err := w.cfg.Catalog.Snapshot(ctx, team)
	if errors.Is(err, catalog.ErrNotFound) {
		w.mu.Lock()
		delete(w.defs, team)
		w.mu.Unlock()
		return nil, errTeamGone
	}
	if err != nil {
		return nil, fmt.Errorf("precompute: load team %d: %w", team, err)
	}
	digest, err := definitionsDigest(snap.Definitions)
	if err != nil {
		return nil, fmt.Errorf("precompute: digest of team %d: %w", team, err)
	}
	w.mu.Lock()
	cur, ok := w.defs[team]
	w.mu.Unlock()
	var d *teamDefs
	if ok && cur.digest == digest {
		// Unchanged: the same compiled set and plan, trusted anew.
		d = &teamDefs{set: cur.set, plan: cur.plan, watched: cur.watched, groupWatched: cur.groupWatched, loaded: time.Now(), digest: digest}
		w.m.reloadsUnchanged.Inc()
	} else {
		set, _ := flags.Compile(snap.Definitions) // problems are per flag: the plan keeps such flags live
		d = &teamDefs{set: set, plan: results.NewPlan(snap.Definitions, set, w.cfg.Plan), watched: set.BehavioralCohorts(),
			groupWatched: set.GroupBehavioralCohorts(), loaded: time.Now(), digest: digest}
	}
	w.mu.Lock()
	w.defs[team] = d
	w.mu.Unlock()
	return d, nil
}

// computed is one subject's new results.
type computed struct {
	typ        int
	key        string
	res        []byte
	validUntil time.Time
	// memberUntil is when a watched cohort's membership may change by
	// time alone: the worker wakes then to signal it.
	memberUntil time.Time
}

// compute computes one subject. old is its stored results (kept for the
// flags outside only).
func (w *Worker) compute(d *teamDefs, s results.Subject, props []byte, only []string, old []byte) (computed, error) {
	sc := w.scratch.Get().(*results.Scratch)
	defer w.scratch.Put(sc)
	m, err := decodeProps(s.Key, props)
	if err != nil {
		return computed{}, err
	}
	s.Props = m
	res, vu, _ := results.Compute(nil, d.set, d.plan, s, w.cfg.Now(), only, old, sc)
	return computed{typ: s.Type, key: s.Key, res: res, validUntil: vu}, nil
}

func decodeProps(key string, props []byte) (map[string]any, error) {
	m := map[string]any{}
	if len(props) > 0 {
		dec := json.NewDecoder(bytes.NewReader(props))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("%w: properties of %q: %w", store.ErrCorrupt, key, err)
		}
	}
	return m, nil
}

// observe computes a row's memberships of the team's watched cohorts at
// now and hands them to the recorder, which publishes the transitions. It
// returns when the memberships may change by time alone.
func (w *Worker) observe(ctx context.Context, team int64, d *teamDefs, row *store.Row, now time.Time) (time.Time, error) {
	m, err := decodeProps(row.DistinctID, row.Properties)
	if err != nil {
		return time.Time{}, err
	}
	c := &flags.Context{DistinctID: row.DistinctID, PersonProperties: m, Events: results.RowEvents(row.Counters), Now: now}
	o := signals.Observation{Team: team, DistinctID: row.DistinctID, PersonID: row.PersonID, Properties: row.Revision,
		Counters: results.RowRevision(0, row.Counters), Now: now, Members: make([]signals.Membership, 0, len(d.watched))}
	var until time.Time
	for _, id := range d.watched {
		member, known, vu := d.set.InCohort(c, id)
		if !known {
			continue // an inconclusive answer is no transition
		}
		o.Members = append(o.Members, signals.Membership{Cohort: id, Member: member, ValidUntil: vu})
		if !vu.IsZero() && (until.IsZero() || vu.Before(until)) {
			until = vu
		}
	}
	out, err := w.rec.Observe(ctx, o)
	if err != nil {
		return time.Time{}, err
	}
	for _, s := range out {
		w.m.signals.WithLabelValues(string(s.Direction)).Inc()
	}
	return until, nil
}

// observeGroup is observe for a group's row and the cohorts watched on
// its type: the group's memberships, decided from its counters as a
// condition aggregating on its type decides them.
func (w *Worker) observeGroup(ctx context.Context, team int64, d *teamDefs, grp *store.Group, now time.Time) (time.Time, error) {
	m, err := decodeProps(grp.Key, grp.Properties)
	if err != nil {
		return time.Time{}, err
	}
	watched := d.groupWatched[grp.TypeIndex]
	groups := make([]flags.Group, grp.TypeIndex+1)
	groups[grp.TypeIndex] = flags.Group{Key: grp.Key, Properties: m, Events: results.RowEvents(grp.Counters)}
	c := &flags.Context{Groups: groups, Now: now}
	name, _ := d.set.GroupTypeName(grp.TypeIndex)
	o := signals.Observation{Team: team, GroupTypeIndex: grp.TypeIndex, GroupType: name, GroupKey: grp.Key, Properties: grp.Revision,
		Counters: results.RowRevision(0, grp.Counters), Now: now, Members: make([]signals.Membership, 0, len(watched))}
	var until time.Time
	for _, id := range watched {
		member, known, vu := d.set.InGroupCohort(c, grp.TypeIndex, id)
		if !known {
			continue
		}
		o.Members = append(o.Members, signals.Membership{Cohort: id, Member: member, ValidUntil: vu})
		if !vu.IsZero() && (until.IsZero() || vu.Before(until)) {
			until = vu
		}
	}
	out, err := w.rec.Observe(ctx, o)
	if err != nil {
		return time.Time{}, err
	}
	for _, s := range out {
		w.m.signals.WithLabelValues(string(s.Direction)).Inc()
	}
	return until, nil
}

// expiryTarget names a subject in the expiry index.
func expiryTarget(typ int, key string) string {
	if typ == results.Persons {
		return "r:" + key
	}
	return "g:" + strconv.Itoa(typ) + ":" + key
}

func parseExpiryTarget(t string) (int, string, bool) {
	if k, ok := strings.CutPrefix(t, "r:"); ok {
		return results.Persons, k, true
	}
	rest, ok := strings.CutPrefix(t, "g:")
	if !ok {
		return 0, "", false
	}
	i := strings.IndexByte(rest, ':')
	if i < 0 {
		return 0, "", false
	}
	typ, err := strconv.Atoi(rest[:i])
	if err != nil {
		return 0, "", false
	}
	return typ, rest[i+1:], true
}

// write stores computed results with one stamp, and their expiries.
func (w *Worker) write(ctx context.Context, team int64, stamp int64, out []computed) error {
	var b store.Batch
	for _, c := range out {
		if !c.memberUntil.IsZero() {
			b.PutExpiry(store.Expiry{Team: team, At: c.memberUntil.UnixMilli(), Target: expiryTarget(c.typ, c.key)})
		}
		if c.res == nil {
			continue
		}
		if c.typ == results.Persons {
			b.SetResults(team, c.key, c.res, stamp)
		} else {
			b.SetGroupResults(team, c.typ, c.key, c.res, stamp)
		}
		if !c.validUntil.IsZero() {
			b.PutExpiry(store.Expiry{Team: team, At: c.validUntil.UnixMilli(), Target: expiryTarget(c.typ, c.key)})
		}
	}
	if b.Len() == 0 {
		return nil
	}
	// Results are derived: a crash that loses them leaves older stamps,
	// which the read path treats as stale (live, then repaired).
	b.SetDerived()
	if err := w.cfg.Store.Apply(ctx, &b); err != nil {
		return fmt.Errorf("precompute: write results: %w", err)
	}
	return nil
}

// recompute recomputes the named rows and groups of a team from the store,
// all flags, and writes them.
func (w *Worker) recompute(ctx context.Context, team int64, rows []string, groups []TriggerGroup, trigger string) error {
	d, err := w.definitions(ctx, team)
	if err != nil {
		return err
	}
	personFlags := len(d.plan.Keys(results.Persons)) > 0
	watch := w.rec != nil && len(d.watched) > 0
	stamp := w.clock.stamp() // before the reads: see hlc
	now := w.cfg.Now()
	out := make([]computed, len(rows)+len(groups))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(w.cfg.Concurrency)
	if personFlags || watch {
		for i, did := range rows {
			g.Go(func() error {
				defer w.pace.step()
				row, err := w.cfg.Store.GetRow(gctx, team, did)
				if errors.Is(err, store.ErrNotFound) {
					return nil
				}
				if err != nil {
					return err
				}
				var c computed
				if personFlags {
					c, err = w.compute(d, results.Subject{Type: results.Persons, Key: did, Version: row.PersonVersion,
						Revision: results.RowRevision(row.Revision, row.Counters), Events: results.RowEvents(row.Counters)}, row.Properties, nil, nil)
					if err != nil {
						w.cfg.Logger.Warn("row not computed", "team", team, "distinct_id", did, "err", err)
						return nil
					}
				}
				if watch {
					// A failure fails the batch: its triggers are redelivered
					// and the observation redone, publishing the same IDs.
					c.typ, c.key = results.Persons, did
					if c.memberUntil, err = w.observe(gctx, team, d, row, now); errors.Is(err, store.ErrCorrupt) {
						w.cfg.Logger.Warn("memberships not observed", "team", team, "distinct_id", did, "err", err)
					} else if err != nil {
						return err
					}
				}
				out[i] = c
				return nil
			})
		}
	}
	for j, tg := range groups {
		groupFlags := len(d.plan.Keys(tg.Type)) > 0
		watchGroup := w.rec != nil && len(d.groupWatched[tg.Type]) > 0
		if !groupFlags && !watchGroup {
			continue
		}
		g.Go(func() error {
			defer w.pace.step()
			grp, err := w.cfg.Store.GetGroup(gctx, team, tg.Type, tg.Key)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			var c computed
			if groupFlags {
				c, err = w.compute(d, results.Subject{Type: tg.Type, Key: tg.Key, Version: grp.Version,
					Revision: results.RowRevision(grp.Revision, grp.Counters), Events: results.RowEvents(grp.Counters)}, grp.Properties, nil, nil)
				if err != nil {
					w.cfg.Logger.Warn("group not computed", "team", team, "type", tg.Type, "key", tg.Key, "err", err)
					return nil
				}
			}
			if watchGroup {
				// As for rows: a failure fails the batch, which is redone.
				c.typ, c.key = tg.Type, tg.Key
				if c.memberUntil, err = w.observeGroup(gctx, team, d, grp, now); errors.Is(err, store.ErrCorrupt) {
					w.cfg.Logger.Warn("group memberships not observed", "team", team, "type", tg.Type, "key", tg.Key, "err", err)
				} else if err != nil {
					return err
				}
			}
			out[len(rows)+j] = c
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("precompute: read: %w", err)
	}
	if err := w.write(ctx, team, stamp, out); err != nil {
		return err
	}
	n := 0
	for _, c := range out {
		if c.res != nil {
			n++
		}
	}
	w.m.computed.WithLabelValues(trigger).Add(float64(n))
	return nil
}

// rowLoop consumes row triggers: it waits for one, gathers more for
// Coalesce, recomputes each named row once, and acknowledges them after the
// write.
func (w *Worker) rowLoop(ctx context.Context, cons jetstream.Consumer) error {
	for ctx.Err() == nil {
		first, err := streams.Next(ctx, cons, streams.IdlePoll)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.cfg.Logger.Warn("fetch row triggers", "err", err)
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		if first == nil {
			continue
		}
		msgs := []jetstream.Msg{first}
		// Coalescing counts from the first trigger: the rest of the batch
		// is what arrives within Coalesce of it.
		if rest, err := cons.Fetch(rowBatch-1, jetstream.FetchMaxWait(w.cfg.Coalesce)); err != nil {
			w.cfg.Logger.Warn("fetch row triggers", "err", err)
		} else {
			for msg := range rest.Messages() {
				msgs = append(msgs, msg)
			}
		}
		type keys struct {
			rows     map[string]struct{}
			groups   map[TriggerGroup]struct{}
			triggers int // keys named, repeats included
		}
		byTeam := map[int64]*keys{}
		for _, msg := range msgs {
			w.pace.step()
			var t Trigger
			if err := json.Unmarshal(msg.Data(), &t); err != nil {
				w.cfg.Logger.Warn("dropping an undecodable row trigger", "subject", msg.Subject(), "err", err)
				continue
			}
			k, ok := byTeam[t.Team]
			if !ok {
				k = &keys{rows: map[string]struct{}{}, groups: map[TriggerGroup]struct{}{}}
				byTeam[t.Team] = k
			}
			for _, r := range t.Rows {
				k.rows[r] = struct{}{}
			}
			for _, g := range t.Groups {
				k.groups[g] = struct{}{}
			}
			k.triggers += len(t.Rows) + len(t.Groups)
		}
		start := time.Now()
		failed := false
		for team, k := range byTeam {
			rows := make([]string, 0, len(k.rows))
			for r := range k.rows {
				rows = append(rows, r)
			}
			groups := make([]TriggerGroup, 0, len(k.groups))
			for g := range k.groups {
				groups = append(groups, g)
			}
			if err := w.recompute(ctx, team, rows, groups, "write"); err != nil && !errors.Is(err, errTeamGone) {
				w.cfg.Logger.Warn("recompute rows", "team", team, "err", err)
				failed = true
			}
			w.m.coalesced.Add(float64(k.triggers - len(rows) - len(groups)))
		}
		for _, msg := range msgs {
			if failed {
				_ = msg.NakWithDelay(time.Second) // redelivered; a recompute is idempotent
			} else {
				_ = msg.Ack()
			}
		}
		w.m.batchSeconds.Observe(time.Since(start).Seconds())
	}
	return nil
}

// rowBatch is the most row triggers one recompute takes.
const rowBatch = 1000

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// expiryLoop turns due valid_until entries into row triggers.
func (w *Worker) expiryLoop(ctx context.Context) error {
	t := time.NewTicker(w.cfg.ExpiryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for ctx.Err() == nil {
			due, err := w.cfg.Store.DueExpiries(ctx, w.cfg.Now().UnixMilli(), 1000)
			if err != nil {
				w.cfg.Logger.Warn("read due expiries", "err", err)
				break
			}
			if len(due) == 0 {
				break
			}
			var rows []store.DistinctKey
			var groups []store.GroupKey
			var del store.Batch
			for _, e := range due {
				del.DeleteExpiry(e)
				typ, key, ok := parseExpiryTarget(e.Target)
				if !ok {
					continue
				}
				if typ == results.Persons {
					rows = append(rows, store.DistinctKey{Team: e.Team, DistinctID: key})
				} else {
					groups = append(groups, store.GroupKey{Team: e.Team, TypeIndex: typ, Key: key})
				}
			}
			if err := w.pub.Publish(ctx, rows, groups); err != nil {
				w.cfg.Logger.Warn("publish expiry triggers", "err", err)
				break
			}
			del.SetDerived()
			if err := w.cfg.Store.Apply(ctx, &del); err != nil {
				w.cfg.Logger.Warn("delete due expiries", "err", err)
				break
			}
			w.m.expired.Add(float64(len(due)))
			if len(due) < 1000 {
				break
			}
		}
	}
}
