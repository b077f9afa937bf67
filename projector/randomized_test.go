package projector_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/ingest"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/storetest"
)

// projectClean publishes setup and msgs in order and projects them with
// one uninterrupted projector run counting events (eventsOf); it returns
// the store's digest.
func projectClean(t *testing.T, st store.Store, atomic bool, setup, msgs []*ingestv1.Envelope) [32]byte {
	t.Helper()
	e := startNATS(t)
	for _, m := range slices.Concat(setup, msgs) {
		e.publish(t, m, ingest.Protobuf)
	}
	p, err := projector.New(projector.Config{Conn: e.nc, Store: st, AtomicStore: atomic, Logger: testLogger(t), Events: eventsOf(t)})
	if err != nil {
		t.Fatal(err)
	}
	r := run(p)
	e.waitApplied(t, projector.DefaultDurable)
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return digest(t, st)
}

// errCrash is what crashingStore returns for the Apply it "crashes" in.
var errCrash = errors.New("test: crashed")

// crashingStore wraps a store to kill the projector run in the middle of
// its work: on the armed Apply call it cancels the run and returns an
// error, having written nothing, the whole batch (the ack is lost) or, for
// a store that is not atomic, a random part of the batch (as a ScyllaDB
// write cut short does).
type crashingStore struct {
	store.Store
	atomic bool

	mu struct {
		sync.Mutex
		// mode and part, when set, replace the random choice of how to
		// crash and of which writes of a "mid write" crash land.
		mode    string
		part    func(*store.Batch) *store.Batch
		r       *rand.Rand
		applies int
		crashAt int // 0: disarmed
		cancel  context.CancelFunc
		crashed chan struct{}
		crashes map[string]int // mode → count
	}
}

func newCrashingStore(st store.Store, atomic bool, seed uint64) *crashingStore {
	c := &crashingStore{Store: st, atomic: atomic}
	c.mu.r = rand.New(rand.NewPCG(seed, 11))
	c.mu.crashes = map[string]int{}
	return c
}

// arm makes the n-th Apply from now crash the run cancel stops; the
// returned channel is closed when it happened.
func (c *crashingStore) arm(n int, cancel context.CancelFunc) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.applies, c.mu.crashAt, c.mu.cancel = 0, n, cancel
	c.mu.crashed = make(chan struct{})
	return c.mu.crashed
}

func (c *crashingStore) Apply(ctx context.Context, b *store.Batch) error {
	c.mu.Lock()
	c.mu.applies++
	if c.mu.applies != c.mu.crashAt {
		c.mu.Unlock()
		return c.Store.Apply(ctx, b)
	}
	modes := []string{"before write", "after write"}
	if !c.atomic {
		modes = append(modes, "mid write")
	}
	mode := modes[c.mu.r.IntN(len(modes))]
	if c.mu.mode != "" {
		mode = c.mu.mode
	}
	var part *store.Batch
	if mode == "mid write" {
		if c.mu.part != nil {
			part = c.mu.part(b)
		} else {
			part = partOf(b, c.mu.r)
		}
	}
	c.mu.crashes[mode]++
	c.mu.crashAt = 0
	cancel, crashed := c.mu.cancel, c.mu.crashed
	c.mu.Unlock()

	var err error
	switch mode {
	case "after write":
		err = c.Store.Apply(ctx, b)
	case "mid write":
		err = c.Store.Apply(ctx, part)
	}
	if err != nil {
		return err
	}
	cancel()
	close(crashed)
	return errCrash
}

// partOf returns a random subset of b's writes.
func partOf(b *store.Batch, r *rand.Rand) *store.Batch {
	var p store.Batch
	keep := func() bool { return r.IntN(2) == 0 }
	for _, x := range b.Persons() {
		if keep() {
			p.PutPerson(x)
		}
	}
	for _, x := range b.Mappings() {
		if keep() {
			p.PutMapping(x)
		}
	}
	for _, x := range b.Index() {
		if keep() {
			if x.Delete {
				p.DeleteIndex(x.Entry)
			} else {
				p.PutIndex(x.Entry)
			}
		}
	}
	for _, x := range b.Rows() {
		if keep() {
			switch {
			case x.Delete:
				p.DeleteRow(x.Team, x.DistinctID)
			case x.Put != nil:
				p.PutRow(x.Put)
			}
		}
		if x.SetCounters && keep() {
			p.SetCounters(x.Team, x.DistinctID, x.Counters)
		}
	}
	for _, x := range b.Groups() {
		if keep() {
			p.PutGroup(x)
		}
	}
	for _, x := range b.GroupTypes() {
		if keep() {
			p.PutGroupType(x)
		}
	}
	return &p
}

// projectMessy projects setup with a clean run, then publishes msgs with
// 20% duplicates, shuffled, in both encodings, in chunks; after each chunk
// a projector run starts and is killed in the middle of its work
// (crashingStore), with what it had not acknowledged redelivered to the
// next run. A last run drains the stream. Every run counts events
// (eventsOf). It returns the store's digest.
func projectMessy(t *testing.T, inner store.Store, atomic bool, setup, msgs []*ingestv1.Envelope, seed uint64, runs int) [32]byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	e := startNATS(t)
	st := newCrashingStore(inner, atomic, seed)
	stream := messy(seed, msgs, 0.2)
	chunk := len(stream)/runs + 1
	cfg := projector.Config{
		Conn: e.nc, Store: st, AtomicStore: atomic, Logger: testLogger(t),
		// At least four batches per chunk, so that each run reaches the
		// Apply it is armed to crash in.
		BatchSize: 1 + r.IntN(min(200, chunk/4)),
		// Short, so that what a killed run left unacknowledged comes back
		// soon; no run is slow enough to see it expire while alive.
		AckWait: 300 * time.Millisecond,
		Events:  eventsOf(t),
	}
	published := len(stream) + len(setup)
	var applied float64
	runOnce := func(crashAt int) *projector.Projector {
		reg := prometheus.NewRegistry()
		cfg.Registerer = reg
		p, err := projector.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		crashed := st.arm(crashAt, cancel)
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		if crashAt > 0 {
			// Wait for the crash, or for the run to have applied all
			// (then the next run crashes instead).
			waitCrashOrApplied(t, e, crashed)
		} else {
			e.waitApplied(t, projector.DefaultDurable)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		applied += metricSum(t, reg, "vexil_projector_applied_total")
		return p
	}
	for _, m := range setup {
		e.publish(t, m, ingest.Protobuf)
	}
	runOnce(0)
	for len(stream) > 0 {
		n := min(chunk, len(stream))
		for _, m := range stream[:n] {
			enc := ingest.Protobuf
			if r.IntN(3) == 0 {
				enc = ingest.JSON
			}
			e.publish(t, m, enc)
		}
		stream = stream[n:]
		runOnce(1 + r.IntN(3))
	}
	// After a clean run every batch prepared was written: the index
	// cache must match the store.
	if err := projector.CheckIndexCache(context.Background(), runOnce(0), inner); err != nil {
		t.Fatal(err)
	}
	// Every message is valid, so each was applied at least once; more
	// means redeliveries after crashes.
	if applied < float64(published) {
		t.Fatalf("%v messages applied, fewer than the %d published", applied, published)
	}
	st.mu.Lock()
	crashes := st.mu.crashes
	st.mu.Unlock()
	total := 0
	for _, n := range crashes {
		total += n
	}
	if total < runs/2 {
		t.Fatalf("only %d of %d runs crashed: the test does not test much", total, runs)
	}
	t.Logf("%d messages published (%d distinct), %v applied; crashes %v", published, len(msgs), applied, crashes)
	return digest(t, inner)
}

// waitCrashOrApplied waits until crashed is closed or the durable consumer
// acknowledged the whole stream.
func waitCrashOrApplied(t *testing.T, e *natsEnv, crashed <-chan struct{}) {
	t.Helper()
	applied := make(chan struct{})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(applied)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if e.allAcked() {
				return
			}
		}
	}()
	select {
	case <-crashed:
	case <-applied:
	case <-time.After(2 * time.Minute): // a hang guard, not a timing assertion
		t.Fatal("run neither crashed nor applied the stream")
	}
}

func digest(t testing.TB, st store.Store) [32]byte {
	t.Helper()
	d, err := storetest.Digest(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRandomizedStreamConverges is the proof that the projector loses
// nothing: a random stream (persons with $set/$set_once/$unset, merges,
// deletes, groups, events) applied once cleanly, and once with 20%
// duplicates, shuffled delivery and the projector killed mid-batch and
// restarted many times, gives stores with the same digest, on every
// backend; and the clean digests agree across backends.
func TestRandomizedStreamConverges(t *testing.T) {
	n, runs := 3000, 12
	if testing.Short() {
		n, runs = 800, 6
	}
	var variants []backend
	for _, be := range backends(t) {
		variants = append(variants, be)
		if be.name == "memstore" {
			// Also the two-phase writes with partial crashes, as on ScyllaDB.
			variants = append(variants, backend{"memstore-split", be.open, false})
		}
	}
	for _, seed := range []uint64{1, 2, 3} {
		setup, msgs := genSetup(), genStream(seed, n)
		var (
			mu   sync.Mutex
			want = map[[32]byte]string{}
		)
		for _, v := range variants {
			t.Run(fmt.Sprintf("%s/seed=%d", v.name, seed), func(t *testing.T) {
				cleanSt := v.open(t)
				clean := projectClean(t, cleanSt, v.atomic, setup, msgs)
				checkCounted(t, cleanSt, msgs)
				mu.Lock()
				if len(want) > 0 && want[clean] == "" {
					t.Errorf("clean digest on %s %x differs from %v", v.name, clean, want)
				}
				want[clean] = v.name
				mu.Unlock()
				messySt := v.open(t)
				got := projectMessy(t, messySt, v.atomic, setup, msgs, seed, runs)
				if got != clean {
					t.Errorf("messy digest %x, clean %x", got, clean)
					diffStores(t, cleanSt, messySt)
				}
			})
		}
	}
}

// eventsOf is the projector's Config.Events of the randomized tests: both
// teams count checkouts and purchases over 100 (eventSet).
func eventsOf(t testing.TB) func(int64) *flags.Set {
	set := eventSet(t)
	return func(int64) *flags.Set { return set }
}

// checkCounted checks that every shopper's row counts each tracked event
// of msgs sent to it exactly once: checkouts, and purchases over 100.
func checkCounted(t *testing.T, st store.Store, msgs []*ingestv1.Envelope) {
	t.Helper()
	set := eventSet(t)
	pairs := map[string]uint64{}
	for _, p := range set.EventPairs() {
		pairs[p.Event] = p.ID
	}
	type key struct {
		team  int64
		did   string
		event string
	}
	want := map[key]int64{}
	for _, m := range msgs {
		ev := m.GetEvent()
		if ev == nil || pairs[ev.Event] == 0 {
			continue
		}
		if ev.Event == "purchase" {
			if amount, _ := strconv.Atoi(ev.Properties["amount"]); amount <= 100 {
				continue
			}
		}
		want[key{ev.Team, ev.DistinctId, ev.Event}]++
	}
	total := int64(0)
	for _, team := range []int64{1, 2} {
		for i := range shoppers {
			c := storedCounters(t, st, team, shopperID(i))
			for event, id := range pairs {
				k := key{team, shopperID(i), event}
				if got := count(c, id); got != want[k] {
					t.Errorf("%d/%s: %d %s events counted, %d sent", team, k.did, got, event, want[k])
				}
				total += want[k]
			}
		}
	}
	if total == 0 {
		t.Fatal("no tracked event in the stream: the test does not test counting")
	}
	t.Logf("%d tracked events counted", total)
}

// diffStores logs the entities one store holds and the other does not.
func diffStores(t testing.TB, clean, messy store.Store) {
	t.Helper()
	dump := func(s store.Store) map[string]bool {
		out := map[string]bool{}
		err := s.Dump(context.Background(), func(e store.Entity) error {
			switch {
			case e.Person != nil:
				out[fmt.Sprintf("person %+v", *e.Person)] = true
			case e.Mapping != nil:
				out[fmt.Sprintf("mapping %+v", *e.Mapping)] = true
			case e.Index != nil:
				out[fmt.Sprintf("index %+v", *e.Index)] = true
			case e.Row != nil:
				r := *e.Row
				out[fmt.Sprintf("row %d/%s person=%s v=%d props=%s counters=%x", r.Team, r.DistinctID, r.PersonID, r.PersonVersion, r.Properties, r.Counters)] = true
			case e.Group != nil:
				out[fmt.Sprintf("group %d/%d/%s v=%d props=%s", e.Group.Team, e.Group.TypeIndex, e.Group.Key, e.Group.Version, e.Group.Properties)] = true
			case e.GroupType != nil:
				out[fmt.Sprintf("grouptype %+v", *e.GroupType)] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	dc, dm := dump(clean), dump(messy)
	var lines []string
	for k := range dc {
		if !dm[k] {
			lines = append(lines, "clean only: "+k)
		}
	}
	for k := range dm {
		if !dc[k] {
			lines = append(lines, "messy only: "+k)
		}
	}
	slices.Sort(lines)
	if len(lines) > 30 {
		lines = lines[:30]
	}
	for _, l := range lines {
		t.Log(l)
	}
}
