package usage_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/memstore"
	"github.com/vexil-dev/vexil/store/pebblestore"
	"github.com/vexil-dev/vexil/usage"
)

// clock is an injected clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// lister is a FlagLister over fixed records.
type lister map[int64][]catalog.FlagRecord

func (l lister) ListFlags(_ context.Context, team int64) ([]catalog.FlagRecord, error) {
	return l[team], nil
}

var t0 = time.Date(2026, 12, 6, 10, 0, 30, 0, time.UTC)

func newRecorder(t *testing.T, st store.UsageStore, c *clock, node string) *usage.Recorder {
	t.Helper()
	r, err := usage.NewRecorder(usage.RecorderConfig{Store: st, Now: c.Now, Node: node})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newService(t *testing.T, st store.UsageStore, c *clock, l lister) *usage.Service {
	t.Helper()
	s, err := usage.New(usage.Config{Store: st, Flags: l, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// traffic records n evaluations of team 1's flags "bool" and "mv" for
// distinct ids prefix0..prefix(ids-1) round robin: "bool" is true for even
// i, "mv" answers "x" for i%3 == 0 else "y"; every 4th answer came from
// stored results; every 10th "mv" failed; endpoints rotate.
func traffic(r *usage.Recorder, prefix string, n, ids int) {
	for i := range n {
		ev := []usage.Eval{
			{Flag: "bool", Value: fmt.Sprint(i%2 == 0), Stored: i%4 == 0},
			{Flag: "mv", Value: map[bool]string{true: "x", false: "y"}[i%3 == 0], Stored: i%4 == 0, Failed: i%10 == 0},
		}
		if i%10 == 0 {
			ev[1].Value = ""
		}
		r.Record(1, usage.Endpoint(i%3), fmt.Sprintf("%s%d", prefix, i%ids), i%2 == 0, ev)
	}
}

func flush(t *testing.T, r *usage.Recorder) {
	t.Helper()
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func series(t *testing.T, s *usage.Service, flag string, res usage.Resolution, from, to time.Time) *usage.Series {
	t.Helper()
	out, err := s.FlagUsage(context.Background(), 1, flag, res, from, to)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func within(got, want uint64, rel float64) bool {
	return math.Abs(float64(got)-float64(want)) <= rel*float64(want)
}

// TestRecorderCountsExactly: every count is exact (evaluations, by
// endpoint, by value, stored share, errors, polls); uniques within the
// sketch's error; the same at minute, hour and day.
func TestRecorderCountsExactly(t *testing.T) {
	st := memstore.New()
	c := &clock{t: t0}
	r := newRecorder(t, st, c, "n1")
	traffic(r, "u", 1200, 500)
	for range 7 {
		r.Poll(1)
	}
	r.Poll(2)
	flush(t, r)
	s := newService(t, st, c, nil)
	for _, res := range []usage.Resolution{usage.Minute, usage.Hour, usage.Day} {
		b := series(t, s, "bool", res, t0.Add(-time.Hour), t0.Add(time.Minute)).Total
		if b.Evaluations != 1200 || b.Values["true"] != 600 || b.Values["false"] != 600 || b.Errors != 0 || b.PrecomputedShare != 0.25 {
			t.Errorf("%s bool: %+v", res, b)
		}
		if b.ByEndpoint["flags"] != 400 || b.ByEndpoint["decide"] != 400 || b.ByEndpoint["grpc"] != 400 {
			t.Errorf("%s bool by endpoint: %v", res, b.ByEndpoint)
		}
		if b.LocalEvaluationPolls != 7 {
			t.Errorf("%s polls = %d, want 7 (team 2's one is not team 1's)", res, b.LocalEvaluationPolls)
		}
		if !within(b.UniqueUsers, 500, 0.02) {
			t.Errorf("%s uniques = %d, want 500 ± 2%%", res, b.UniqueUsers)
		}
		m := series(t, s, "mv", res, t0.Add(-time.Hour), t0.Add(time.Minute)).Total
		if m.Evaluations != 1200 || m.Errors != 120 || m.Values["x"]+m.Values["y"] != 1080 || m.Values["x"] != 360 || m.ErrorRate != 0.1 {
			t.Errorf("%s mv: %+v", res, m)
		}
	}
	last, ok, err := s.LastEvaluated(context.Background(), 1, "bool")
	if err != nil || !ok || !last.Equal(t0) {
		t.Errorf("LastEvaluated = %v %v %v, want %v", last, ok, err, t0)
	}
	if _, ok, _ := s.LastEvaluated(context.Background(), 1, "never"); ok {
		t.Error("a flag never evaluated has a last evaluation")
	}
}

// TestRecorderBuckets: counts go to the bucket of the flush; a flush in a
// new minute opens a new minute row and adds to the same hour and day
// rows; a flush with nothing new writes nothing.
func TestRecorderBuckets(t *testing.T) {
	st := memstore.New()
	c := &clock{t: t0}
	r := newRecorder(t, st, c, "n1")
	s := newService(t, st, c, nil)
	traffic(r, "u", 100, 100)
	flush(t, r)
	c.Add(10 * time.Second)
	traffic(r, "u", 50, 100) // same minute: the row is rewritten whole
	flush(t, r)
	c.Add(time.Minute)
	traffic(r, "v", 30, 30)
	flush(t, r)
	flush(t, r)
	min := series(t, s, "bool", usage.Minute, t0.Add(-time.Hour), t0.Add(time.Hour))
	if len(min.Points) != 2 || min.Points[0].Evaluations != 150 || min.Points[1].Evaluations != 30 {
		t.Fatalf("minute points: %+v", min.Points)
	}
	if !min.Points[0].Bucket.Equal(t0.Truncate(time.Minute)) || !min.Points[1].Bucket.Equal(t0.Truncate(time.Minute).Add(time.Minute)) {
		t.Errorf("minute buckets %v, %v", min.Points[0].Bucket, min.Points[1].Bucket)
	}
	if !within(min.Points[0].UniqueUsers, 100, 0.02) || !within(min.Total.UniqueUsers, 130, 0.02) {
		t.Errorf("uniques %d then total %d, want 100 and 130", min.Points[0].UniqueUsers, min.Total.UniqueUsers)
	}
	hour := series(t, s, "bool", usage.Hour, t0.Add(-time.Hour), t0.Add(time.Hour))
	if len(hour.Points) != 1 || hour.Points[0].Evaluations != 180 {
		t.Errorf("hour points: %+v", hour.Points)
	}
}

// TestNodesSum: two evaluation nodes on one store each write their rows;
// readers add the counts and union the sketches (ids both nodes saw are
// counted once).
func TestNodesSum(t *testing.T) {
	st := memstore.New()
	c := &clock{t: t0}
	a, b := newRecorder(t, st, c, "a"), newRecorder(t, st, c, "b")
	traffic(a, "u", 3000, 2000) // u0..u1999
	traffic(b, "u", 1000, 1000) // u0..u999, all seen by a too
	traffic(b, "w", 1000, 1000)
	flush(t, a)
	flush(t, b)
	s := newService(t, st, c, nil)
	got := series(t, s, "bool", usage.Day, t0.Add(-time.Hour), t0.Add(time.Hour)).Total
	if got.Evaluations != 5000 {
		t.Errorf("evaluations = %d, want 5000", got.Evaluations)
	}
	if !within(got.UniqueUsers, 3000, 0.03) {
		t.Errorf("uniques = %d, want 3000 ± 3%% (the union, not the sum 4000)", got.UniqueUsers)
	}
}

// TestRestartPebble: counts written before a restart stay, and the
// restarted node's (a new node name) add to them.
func TestRestartPebble(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: t0}
	st, err := pebblestore.Open(pebblestore.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder(t, st, c, "")
	traffic(r, "u", 400, 400)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	cancel() // Run's last flush writes the counts
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = pebblestore.Open(pebblestore.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r2 := newRecorder(t, st, c, "")
	if r2.Node() == r.Node() {
		t.Fatalf("a restarted recorder reuses node %q", r.Node())
	}
	traffic(r2, "u", 100, 100)
	flush(t, r2)
	s := newService(t, st, c, nil)
	got := series(t, s, "bool", usage.Minute, t0.Add(-time.Minute), t0.Add(time.Minute)).Total
	if got.Evaluations != 500 || !within(got.UniqueUsers, 400, 0.02) {
		t.Errorf("after restart: %d evaluations, %d uniques; want 500 and 400", got.Evaluations, got.UniqueUsers)
	}
}

// TestRecorderBounds: past MaxTracked (team, flag) pairs the rest is
// dropped and counted; values past MaxValues fold into $other.
func TestRecorderBounds(t *testing.T) {
	st := memstore.New()
	c := &clock{t: t0}
	r, err := usage.NewRecorder(usage.RecorderConfig{Store: st, Now: c.Now, Node: "n", MaxTracked: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		r.Record(1, usage.EndpointFlags, "u", false, []usage.Eval{{Flag: fmt.Sprintf("f%d", i), Value: "true"}})
	}
	if r.Dropped() != 99 {
		t.Errorf("dropped = %d, want 99", r.Dropped())
	}
	r2 := newRecorder(t, st, c, "m")
	for i := range usage.MaxValues + 10 {
		r2.Record(1, usage.EndpointFlags, "u", false, []usage.Eval{{Flag: "many", Value: fmt.Sprintf("v%d", i)}})
	}
	flush(t, r2)
	got := series(t, newService(t, st, c, nil), "many", usage.Minute, t0.Add(-time.Minute), t0.Add(time.Minute)).Total
	if len(got.Values) != usage.MaxValues || got.Values[usage.OtherValue] != 11 {
		t.Errorf("%d values, %d under %s; want %d and 11", len(got.Values), got.Values[usage.OtherValue], usage.OtherValue, usage.MaxValues)
	}
	// A row the store would refuse is dropped; the others are written.
	r3 := newRecorder(t, st, c, "k")
	long := string(make([]byte, store.MaxUsageFlagBytes+1))
	r3.Record(1, usage.EndpointFlags, "u", false, []usage.Eval{{Flag: long, Value: "true"}, {Flag: "short", Value: "true"}})
	flush(t, r3)
	if got := series(t, newService(t, st, c, nil), "short", usage.Minute, t0.Add(-time.Minute), t0.Add(time.Minute)).Total; got.Evaluations != 1 || r3.Dropped() == 0 {
		t.Errorf("beside an over-long key: %d evaluations, %d dropped; want 1 and some", got.Evaluations, r3.Dropped())
	}
	if _, err := usage.NewRecorder(usage.RecorderConfig{Store: st, FlushInterval: time.Hour}); err == nil {
		t.Error("a flush interval of an hour is accepted")
	}
}

var _ = flags.Flag{}

// TestUniquesBusyTeam: a team busy enough that its all-flags ids go into
// dense sketches (past 1,024 per shard): uniques stay within the
// sketch's error, and a flag also asked for alone unions both kinds.
func TestUniquesBusyTeam(t *testing.T) {
	st := memstore.New()
	c := &clock{t: t0}
	r := newRecorder(t, st, c, "n")
	both := []usage.Eval{{Flag: "a", Value: "true"}, {Flag: "b", Value: "false"}}
	for i := range 40000 {
		r.Record(1, usage.EndpointFlags, fmt.Sprintf("u%d", i%20000), true, both)
	}
	for i := range 5000 { // ids v0..v4999, only flag b
		r.Record(1, usage.EndpointFlags, fmt.Sprintf("v%d", i), false, both[1:])
	}
	flush(t, r)
	s := newService(t, st, c, nil)
	a := series(t, s, "a", usage.Minute, t0.Add(-time.Minute), t0.Add(time.Minute)).Total
	b := series(t, s, "b", usage.Minute, t0.Add(-time.Minute), t0.Add(time.Minute)).Total
	if a.Evaluations != 40000 || b.Evaluations != 45000 || b.Values["false"] != 45000 {
		t.Errorf("evaluations a %d, b %d (false %d); want 40000, 45000", a.Evaluations, b.Evaluations, b.Values["false"])
	}
	if !within(a.UniqueUsers, 20000, 0.03) || !within(b.UniqueUsers, 25000, 0.03) {
		t.Errorf("uniques a %d, b %d; want 20000 and 25000 ± 3%%", a.UniqueUsers, b.UniqueUsers)
	}
}

// TestSeriesToWithinBucketSecond: a series read in the first second of a
// bucket (to = its start + 0.5 s) holds that bucket.
func TestSeriesToWithinBucketSecond(t *testing.T) {
	st := memstore.New()
	start := time.Date(2026, 12, 6, 10, 1, 0, 0, time.UTC)
	c := &clock{t: start.Add(200 * time.Millisecond)}
	r := newRecorder(t, st, c, "n")
	r.Record(1, usage.EndpointFlags, "u", false, []usage.Eval{{Flag: "f", Value: "true"}})
	flush(t, r)
	got := series(t, newService(t, st, c, nil), "f", usage.Minute, start.Add(-time.Hour), start.Add(500*time.Millisecond))
	if got.Total.Evaluations != 1 {
		t.Errorf("read at %v: %d evaluations, want the bucket of %v", start.Add(500*time.Millisecond), got.Total.Evaluations, start)
	}
}

// TestRecorderReported: evaluations a client made in process and reported
// add to the flag's counts under the "local" endpoint, with their values,
// beside the server's own; OFREP has its own endpoint.
func TestRecorderReported(t *testing.T) {
	st := memstore.New()
	c := &clock{t: t0}
	r := newRecorder(t, st, c, "n1")
	r.Record(1, usage.EndpointOFREP, "u1", false, []usage.Eval{{Flag: "bool", Value: "true"}})
	r.Reported(1, "bool", "true", 40)
	r.Reported(1, "bool", "false", 2)
	r.Reported(1, "bool", "false", 0) // nothing
	r.Reported(2, "bool", "true", 5)  // another team's
	flush(t, r)
	s := newService(t, st, c, nil)
	b := series(t, s, "bool", usage.Minute, t0.Add(-time.Hour), t0.Add(time.Minute)).Total
	if b.Evaluations != 43 || b.ByEndpoint["local"] != 42 || b.ByEndpoint["ofrep"] != 1 {
		t.Errorf("counts %d, by endpoint %v; want 43 with local 42 and ofrep 1", b.Evaluations, b.ByEndpoint)
	}
	if b.Values["true"] != 41 || b.Values["false"] != 2 {
		t.Errorf("values %v, want true 41, false 2", b.Values)
	}
}
