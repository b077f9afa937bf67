package usage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/axiomhq/hyperloglog"
	"github.com/cespare/xxhash/v2"

	"github.com/vexil-dev/vexil/store"
)

// Retention of each resolution (rows past it are deleted: TTL on
// ScyllaDB, SweepUsage elsewhere).
const (
	MinuteRetention = 48 * time.Hour
	HourRetention   = 31 * 24 * time.Hour
	DayRetention    = 90 * 24 * time.Hour
)

// Defaults of RecorderConfig.
const (
	DefaultFlushInterval = 10 * time.Second
	DefaultMaxTracked    = 100_000
)

// Eval is one flag's answer to one remote evaluation.
type Eval struct {
	Flag string
	// Value is the variant key, or "true" / "false".
	Value string
	// Stored is set when precomputed results answered.
	Stored bool
	// Failed is set when the flag could not be evaluated.
	Failed bool
}

// RecorderConfig configures a Recorder.
type RecorderConfig struct {
	// Store receives the rows; required.
	Store store.UsageStore
	// Node names this evaluation node's rows; default: host name and a
	// random suffix, new at every start, so a restarted node never
	// overwrites the rows it wrote before.
	Node string
	// FlushInterval is how often the counters go to the store.
	FlushInterval time.Duration
	// MaxTracked bounds the (team, flag) pairs counted between two
	// flushes; evaluations of pairs past it are dropped (Dropped).
	MaxTracked int
	// Now is the clock (tests inject one); default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Yield is called between the steps of a flush, each at most
	// flushStep encodings or merges of a 16 KiB sketch (tens of µs);
	// default pauseFlush. A flush of a team of 54 flags is ~10 ms of CPU:
	// on a node with one P under a CPU quota, run in one go, it held the P
	// for 20-40 ms every 10 s while requests waited behind it.
	Yield func()
}

// Recorder counts evaluations in memory, in shards so that concurrent
// requests rarely meet on a lock, and writes them to the store in batches
// (Run, Flush). Record, RecordAll, Reported and Poll are safe for
// concurrent use and cheap: a hash of the distinct id, one uncontended
// lock, a HyperLogLog insert (per request when it evaluated every flag of
// the team, else per flag) and a few additions per flag, in a table
// indexed by the flag's position when every flag was evaluated
// (slots.go). A nil *Recorder records nothing.
type Recorder struct {
	cfg     RecorderConfig
	shards  []shard
	mask    uint64
	perCap  int
	dropped atomic.Uint64

	flushMu sync.Mutex
	// work counts the sketch steps of the flush in progress since its
	// last yield (guarded by flushMu).
	work int
	// open holds this node's accumulated counts of the current minute,
	// hour and day of each (team, flag) counted in them: every flush
	// rewrites the node's row of each open bucket whole.
	open map[openKey]*openAcc
}

type flagKey struct {
	team int64
	flag string
}

type openKey struct {
	flagKey
	kind byte
}

type openAcc struct {
	bucket  int64
	c       Counts
	dirty   bool
	wroteAt time.Time
}

type shard struct {
	mu    sync.Mutex
	teams map[int64]*teamAcc
	// last is teams[lastTeam] (nil: none yet).
	last     *teamAcc
	lastTeam int64
	// flags counts the flagAccs of every team, against perCap.
	flags int
	_     [24]byte // keep shards' locks on separate cache lines
}

// teamAcc is one team's counts in a shard since the last flush.
type teamAcc struct {
	flags map[string]*flagAcc
	// byPos caches the flagAcc of the i-th Eval of the last request: a
	// request's flags come in the team's order, so the next one's keys
	// (the same strings) usually match and skip the map.
	byPos []*flagAcc
	// The distinct ids of the requests that evaluated every flag of the
	// team go into one sketch for all of them (a flag's uniques are it
	// merged with its own, the ids of requests that evaluated a subset
	// holding it): as hashes in ids, allBuffer of them at a time moved
	// into all, a dense sketch (16 KiB; a sparse one costs hundreds of ns
	// an insert once it holds thousands; in batches the sketch stays in
	// the cache). A quiet team costs a few hashes, a busy one a fixed
	// 16 KiB and 8 KiB of hashes per shard.
	ids   []uint64
	all   *hyperloglog.Sketch
	polls uint64
	// tab counts the all-flags requests by flag position (slots.go).
	tab slotTable
}

// allBuffer is how many all-flags hashes a team keeps per shard before
// it takes a dense sketch.
const allBuffer = 1024

// allSketch is the sketch of the team's all-flags requests (nil: none).
func (ta *teamAcc) allSketch() *hyperloglog.Sketch {
	if len(ta.ids) == 0 {
		return ta.all
	}
	sk := ta.all
	if sk == nil {
		sk = newSketch()
	}
	for _, h := range ta.ids {
		sk.InsertHash(h)
	}
	ta.ids = nil
	return sk
}

// flagAcc is one flag's counts in a shard since the last flush.
type flagAcc struct {
	key         string
	evaluations uint64
	byEndpoint  [numEndpoints]uint64
	stored      uint64
	errors      uint64
	// vals holds the first values seen inline (a boolean flag has two, a
	// multivariate few), next to the counters: no pointer to chase on
	// the request path; more the rest, up to MaxValues-1; past them,
	// other.
	nvals   int
	vals    [inlineValues]valueCount
	more    []valueCount
	other   uint64
	uniques *hyperloglog.Sketch
}

const inlineValues = 4

type valueCount struct {
	value string
	n     uint64
}

// same compares strings by pointer and length before bytes: the keys and
// values of a team's requests are mostly the same strings (the flag set's
// keys and variants, the "true" / "false" constants), so most compares
// never reach the bytes.
func same(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	return unsafe.StringData(a) == unsafe.StringData(b) || a == b
}

func (f *flagAcc) addValue(v string) { f.addValueN(v, 1) }

// addValueN counts n answers of value v.
func (f *flagAcc) addValueN(v string, n uint64) {
	for i := range f.nvals {
		if same(f.vals[i].value, v) {
			f.vals[i].n += n
			return
		}
	}
	if f.nvals < inlineValues {
		f.vals[f.nvals] = valueCount{v, n}
		f.nvals++
		return
	}
	for i := range f.more {
		if same(f.more[i].value, v) {
			f.more[i].n += n
			return
		}
	}
	if inlineValues+len(f.more) >= MaxValues-1 {
		f.other += n
		return
	}
	f.more = append(f.more, valueCount{v, n})
}

// counts turns the accumulator into Counts, its uniques the union of the
// team's all-flags sketch and its own.
func (f *flagAcc) counts(all *hyperloglog.Sketch) *Counts {
	c := &Counts{Evaluations: f.evaluations, ByEndpoint: f.byEndpoint, Stored: f.stored, Errors: f.errors}
	for _, v := range f.vals[:f.nvals] {
		c.addValue(v.value, v.n)
	}
	for _, v := range f.more {
		c.addValue(v.value, v.n)
	}
	if f.other > 0 {
		c.addValue(OtherValue, f.other)
	}
	switch {
	case f.uniques != nil:
		c.uniques = f.uniques
		if all != nil {
			_ = c.uniques.Merge(all)
		}
	case all != nil:
		c.uniques = all.Clone()
	}
	return c
}

// NewRecorder returns a Recorder; call Run to flush it.
func NewRecorder(cfg RecorderConfig) (*Recorder, error) {
	if cfg.Store == nil {
		return nil, errors.New("usage: recorder: Store is required")
	}
	if cfg.FlushInterval < 0 || cfg.FlushInterval > time.Minute {
		return nil, fmt.Errorf("usage: recorder: FlushInterval %v out of range 0..1m (0: %v)", cfg.FlushInterval, DefaultFlushInterval)
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.MaxTracked <= 0 {
		cfg.MaxTracked = DefaultMaxTracked
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Yield == nil {
		cfg.Yield = pauseFlush
	}
	if cfg.Node == "" {
		host, _ := os.Hostname()
		if len(host) > 64 {
			host = host[:64]
		}
		var b [6]byte
		_, _ = rand.Read(b[:])
		cfg.Node = host + "-" + hex.EncodeToString(b[:])
	}
	if len(cfg.Node) > store.MaxUsageNodeBytes {
		return nil, fmt.Errorf("usage: recorder: Node over %d bytes", store.MaxUsageNodeBytes)
	}
	n := 1
	for n < 4*runtime.GOMAXPROCS(0) {
		n *= 2
	}
	r := &Recorder{cfg: cfg, shards: make([]shard, n), mask: uint64(n - 1), perCap: max(1, cfg.MaxTracked/n), open: map[openKey]*openAcc{}}
	for i := range r.shards {
		r.shards[i].teams = map[int64]*teamAcc{}
	}
	return r, nil
}

// Node is the name of this recorder's rows.
func (r *Recorder) Node() string { return r.cfg.Node }

// Dropped is how many flag evaluations were not counted (MaxTracked).
func (r *Recorder) Dropped() uint64 { return r.dropped.Load() }

// Record counts one remote evaluation of a team's flags for distinctID.
// all says that evals holds every flag of the team (no flag_keys subset,
// none left out): the distinct id then goes into one sketch for all of
// them. A caller with a Layout of the team's flags counts such requests
// with RecordAll, which checks the keys once per request instead of per
// flag and counts in the slot table.
func (r *Recorder) Record(team int64, ep Endpoint, distinctID string, all bool, evals []Eval) {
	if r == nil || len(evals) == 0 || ep >= numEndpoints {
		return
	}
	h := xxhash.Sum64String(distinctID)
	sh := &r.shards[h&r.mask]
	sh.mu.Lock()
	ta := sh.team(team)
	for i := range evals {
		e := &evals[i]
		r.count(sh, ta, i, e.Flag, ep, h, all, e.Value, e.Stored, e.Failed)
	}
	if all {
		ta.keepID(h)
	}
	sh.mu.Unlock()
}

// RecordAll counts one remote evaluation of every flag of l's team for
// distinctID: answers[i] is the answer of l's i-th flag, tally what holds
// of all of them. Answers of another length than l's are not counted
// (Dropped).
func (r *Recorder) RecordAll(l *Layout, ep Endpoint, distinctID string, answers []Answer, tally Tally) {
	if r == nil || l == nil || len(answers) == 0 || ep >= numEndpoints {
		return
	}
	if len(answers) != len(l.keys) {
		r.dropped.Add(uint64(len(answers)))
		return
	}
	h := xxhash.Sum64String(distinctID)
	sh := &r.shards[h&r.mask]
	sh.mu.Lock()
	ta := sh.team(l.team)
	if !ta.tab.record(r, sh, ta, l, ep, answers, tally) {
		for i := range answers {
			a := &answers[i]
			r.count(sh, ta, i, l.keys[i], ep, h, true, Value(a.Result), a.Stored, a.Result.Err != nil)
		}
	}
	ta.keepID(h)
	sh.mu.Unlock()
}

// team returns the shard's accumulator of team, created if new; the last
// one asked for is kept beside the map (a shard mostly sees one team).
func (sh *shard) team(team int64) *teamAcc {
	if ta := sh.last; ta != nil && sh.lastTeam == team {
		return ta
	}
	ta := sh.teams[team]
	if ta == nil {
		ta = &teamAcc{flags: map[string]*flagAcc{}}
		sh.teams[team] = ta
	}
	sh.last, sh.lastTeam = ta, team
	return ta
}

// keepID keeps the hash of an all-flags request's distinct id for the
// team's all-flags sketch. The shard is locked.
func (ta *teamAcc) keepID(h uint64) {
	// Buffered, then inserted allBuffer at a time: one insert per request
	// would miss the cache on the 16 KiB sketch each time.
	if len(ta.ids) == allBuffer {
		if ta.all == nil {
			ta.all, _ = hyperloglog.NewSketch(hllPrecision, false)
		}
		for _, x := range ta.ids {
			ta.all.InsertHash(x)
		}
		ta.ids = ta.ids[:0]
	}
	ta.ids = append(ta.ids, h)
}

// count counts one flag's answer, at position i of its request, outside
// the slot table; all: the distinct id goes to the team's all-flags
// sketch (keepID), not to the flag's. The shard is locked.
func (r *Recorder) count(sh *shard, ta *teamAcc, i int, key string, ep Endpoint, h uint64, all bool, value string, stored, failed bool) {
	if i >= len(ta.byPos) {
		ta.byPos = append(ta.byPos, make([]*flagAcc, i+1-len(ta.byPos))...)
	}
	f := ta.byPos[i]
	if f == nil || !same(f.key, key) {
		if f = ta.flags[key]; f == nil {
			if sh.flags >= r.perCap {
				r.dropped.Add(1)
				return
			}
			f = &flagAcc{key: key}
			ta.flags[key] = f
			sh.flags++
		}
		ta.byPos[i] = f
	}
	f.evaluations++
	f.byEndpoint[ep]++
	if stored {
		f.stored++
	}
	if failed {
		f.errors++
	} else {
		f.addValue(value)
	}
	if !all {
		if f.uniques == nil {
			f.uniques = newSketch()
		}
		f.uniques.InsertHash(h)
	}
}

// Reported counts n evaluations of a team's flag that a client made in
// process and reported (EndpointLocal): they carry no distinct id, so
// they add to the counts and values, not to the unique ids.
func (r *Recorder) Reported(team int64, flag, value string, n uint64) {
	if r == nil || n == 0 || flag == "" {
		return
	}
	sh := &r.shards[(uint64(team)^xxhash.Sum64String(flag))&r.mask]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ta := sh.team(team)
	f := ta.flags[flag]
	if f == nil {
		if sh.flags >= r.perCap {
			r.dropped.Add(1)
			return
		}
		f = &flagAcc{key: flag}
		ta.flags[flag] = f
		sh.flags++
	}
	f.evaluations += n
	f.byEndpoint[EndpointLocal] += n
	f.addValueN(value, n)
}

// Poll counts one local-evaluation definitions request of a team.
func (r *Recorder) Poll(team int64) {
	if r == nil {
		return
	}
	sh := &r.shards[uint64(team)&r.mask]
	sh.mu.Lock()
	sh.team(team).polls++
	sh.mu.Unlock()
}

// Run flushes every FlushInterval until ctx is done, then flushes once
// more (under a fresh 5 s deadline) so a clean stop keeps every count.
func (r *Recorder) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := r.Flush(fctx); err != nil {
				r.cfg.Logger.Warn("usage: last flush failed", "err", err)
			}
			return nil
		case <-t.C:
			if err := r.flush(ctx, false); err != nil && ctx.Err() == nil {
				r.cfg.Logger.Warn("usage: flush failed; retried at the next one", "err", err)
			}
		}
	}
}

// bucketStart is the start (Unix seconds) of the bucket of kind holding t.
func bucketStart(kind byte, t time.Time) int64 {
	t = t.UTC()
	switch kind {
	case store.UsageMinute:
		return t.Truncate(time.Minute).Unix()
	case store.UsageHour:
		return t.Truncate(time.Hour).Unix()
	default:
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).Unix()
	}
}

var retention = map[byte]time.Duration{store.UsageMinute: MinuteRetention, store.UsageHour: HourRetention, store.UsageDay: DayRetention}

// bucketKinds are the resolutions every count goes to.
var bucketKinds = []byte{store.UsageMinute, store.UsageHour, store.UsageDay}

// Flush takes the counts out of the shards, adds them to this node's open
// minute, hour and day buckets (the counts since the last flush belong to
// the bucket of the flush's time) and writes every changed bucket's row,
// and the last-evaluated row of each flag counted. A failed write keeps
// the buckets changed, for the next flush.
func (r *Recorder) Flush(ctx context.Context) error { return r.flush(ctx, true) }

// hourRowsEvery: Run writes a changed hour or day row at most this often
// (and when its bucket closes, and at the last flush); minute rows at
// every flush. An hour row holds a sketch of up to 16 KiB: rewriting it
// every 10 s would be most of the usage write volume.
const hourRowsEvery = time.Minute

// pendingTeam is one team's counts taken out of every shard.
type pendingTeam struct {
	// all is the union of the shards' all-flags sketches.
	all   *hyperloglog.Sketch
	flags map[string]*Counts
	polls uint64
}

// flushStep is the most sketch work (merges or encodings of a sketch of
// up to 16 KiB) a flush does between two yields.
const flushStep = 4

// flushPause is how long a flush sleeps between two steps.
const flushPause = 50 * time.Microsecond

// pauseFlush gives the P away for a moment. Not runtime.Gosched: with one
// P, a goroutine that yields goes to the global run queue, which the
// scheduler takes before it polls the network, so requests whose bytes
// had arrived were not woken until the whole flush was done (a runtime
// trace showed the flush's steps back to back). A sleeping goroutine
// leaves nothing runnable, and the scheduler polls the network.
func pauseFlush() { time.Sleep(flushPause) }

// step counts n steps of sketch work and yields the P once flushStep of
// them were done since the last yield: the flush is background work, and
// the requests that arrived meanwhile run first. flushMu is held.
func (r *Recorder) step(n int) {
	r.work += n
	if r.work >= flushStep {
		r.work = 0
		r.cfg.Yield()
	}
}

func (r *Recorder) flush(ctx context.Context, force bool) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.work = 0
	now := r.cfg.Now()
	teams := map[int64]*pendingTeam{}
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		taken := sh.teams
		if len(taken) > 0 {
			sh.teams, sh.flags = make(map[int64]*teamAcc, len(taken)), 0
			sh.last = nil
		}
		sh.mu.Unlock()
		for team, ta := range taken {
			pt := teams[team]
			if pt == nil {
				pt = &pendingTeam{flags: map[string]*Counts{}}
				teams[team] = pt
			}
			if sk := ta.allSketch(); sk != nil {
				if pt.all == nil {
					pt.all = sk
				} else {
					_ = pt.all.Merge(sk)
				}
				r.step(1)
			}
			ta.tab.fold()
			for key, f := range ta.flags {
				if p := pt.flags[key]; p != nil {
					p.Merge(f.counts(nil))
				} else {
					pt.flags[key] = f.counts(nil)
				}
				if f.uniques != nil {
					r.step(1)
				}
			}
			pt.polls += ta.polls
		}
	}
	pending := map[flagKey]*Counts{}
	for team, pt := range teams {
		for key, c := range pt.flags {
			// The team's all-flags sketch is shared by its flags' Counts:
			// only read from here on (Merge clones what it keeps).
			switch {
			case c.uniques == nil:
				c.uniques = pt.all
			case pt.all != nil:
				_ = c.uniques.Merge(pt.all)
				r.step(1)
			}
			pending[flagKey{team, key}] = c
		}
		if pt.polls > 0 {
			pending[flagKey{team, ""}] = &Counts{Polls: pt.polls}
		}
	}
	var rows []store.UsageRow
	var closing []openKey
	var closed []*openAcc
	nowMs := now.UnixMilli()
	for fk, c := range pending {
		c.Last = nowMs
		for _, kind := range bucketKinds {
			b := bucketStart(kind, now)
			ok := openKey{fk, kind}
			a := r.open[ok]
			if a != nil && a.bucket != b && a.dirty {
				closing, closed = append(closing, ok), append(closed, a) // written below, once
			}
			if a == nil || a.bucket != b {
				a = &openAcc{bucket: b}
				r.open[ok] = a
			}
			a.c.Merge(c)
			a.dirty = true
			r.step(1)
		}
		if fk.flag == "" {
			continue // polls: no last-evaluated row
		}
		var last [8]byte
		putInt64(last[:], nowMs)
		rows = append(rows, store.UsageRow{Team: fk.team, Flag: fk.flag, Kind: store.UsageLast, Node: r.cfg.Node,
			Value: last[:], ExpiresAt: now.Add(DayRetention).Unix()})
	}
	row := func(ok openKey, a *openAcc) error {
		r.step(1)
		v, err := a.c.MarshalBinary()
		if err != nil {
			return fmt.Errorf("usage: encode: %w", err)
		}
		rows = append(rows, store.UsageRow{Team: ok.team, Flag: ok.flag, Kind: ok.kind, Bucket: a.bucket, Node: r.cfg.Node,
			Value: v, ExpiresAt: time.Unix(a.bucket, 0).Add(retention[ok.kind]).Unix()})
		return nil
	}
	for i, a := range closed {
		if err := row(closing[i], a); err != nil {
			return err
		}
	}
	var written []*openAcc
	for ok, a := range r.open {
		isClosed := a.bucket != bucketStart(ok.kind, now)
		if !a.dirty {
			if isClosed {
				delete(r.open, ok) // closed and written
			}
			continue
		}
		if ok.kind != store.UsageMinute && !force && !isClosed && now.Sub(a.wroteAt) < hourRowsEvery {
			continue
		}
		if err := row(ok, a); err != nil {
			return err
		}
		written = append(written, a)
	}
	// A row the store would refuse (a flag key or a value past its
	// bounds) is dropped, not allowed to hold up every other row.
	kept := rows[:0]
	for _, row := range rows {
		if err := row.Validate(); err != nil {
			r.dropped.Add(1)
			r.cfg.Logger.Warn("usage: row dropped", "team", row.Team, "flag", row.Flag, "err", err)
			continue
		}
		kept = append(kept, row)
	}
	rows = kept
	if len(rows) == 0 {
		return nil
	}
	if err := r.cfg.Store.PutUsage(ctx, rows); err != nil {
		return fmt.Errorf("usage: flush %d rows: %w", len(rows), err)
	}
	for _, a := range written {
		a.dirty, a.wroteAt = false, now
	}
	return nil
}

func putInt64(b []byte, v int64) {
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

func getInt64(b []byte) (int64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	var v int64
	for _, x := range b {
		v = v<<8 | int64(x)
	}
	return v, true
}
