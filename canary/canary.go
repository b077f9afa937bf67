package canary

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Target is one side: a node's base URL and the keys requests carry there.
type Target struct {
	URL string
	// Token and PersonalKey are this side's project token and personal
	// key. The baseline's, found in a request, are replaced by the
	// candidate's (when set) before it goes to the candidate.
	Token       string
	PersonalKey string
}

// Config configures a comparison.
type Config struct {
	Baseline, Candidate Target
	// Share of the source's requests mirrored to both, 0 < Share <= 1
	// (the others are skipped), drawn with Seed.
	Share float64
	Seed  uint64
	// Concurrency is how many requests are compared at once, 1 to 256.
	// Default 4.
	Concurrency int
	// MaxRequests bounds the requests read from the source, 1 to 10⁷.
	// Default 10⁶.
	MaxRequests int
	// MaxExamples is how many divergences are kept with their request,
	// 0 to 10⁴. Default 20.
	MaxExamples int
	// Timeout is each request's, 1ms to 1m. Default 10s.
	Timeout time.Duration
	// Client is the HTTP client; default a new one.
	Client *http.Client
}

// Divergence is one request whose answers differ.
type Divergence struct {
	Request         Request  `json:"request"`
	BaselineStatus  int      `json:"baseline_status"`
	CandidateStatus int      `json:"candidate_status"`
	Diffs           []string `json:"diffs"`
}

// Latency is one side's latency percentiles in milliseconds.
type Latency struct {
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// Result is a comparison's outcome.
type Result struct {
	Read        int          `json:"read"`
	Compared    int          `json:"compared"`
	Diverged    int          `json:"diverged"`
	Failed      int          `json:"failed"` // transport errors (counted as divergences)
	Baseline    Latency      `json:"baseline"`
	Candidate   Latency      `json:"candidate"`
	Divergences []Divergence `json:"divergences"`
	// Lost is how many tapped requests the canary missed, reading slower
	// than the node published them (RunTapped's caller sets it).
	Lost int `json:"lost,omitempty"`
	// NodeErrors is how many tapped requests the node itself answered
	// with a server error (a shed request, a store away): not compared,
	// the candidate did not cause them and is not under the node's load.
	NodeErrors int `json:"node_errors,omitempty"`
}

// Gate is a deploy pipeline's verdict: nil when nothing diverged and the
// candidate's p99 is at most the baseline's by more than both maxRatio
// (0.2: 20% slower) and slack (the noise an idle machine's timings
// carry); otherwise an error saying why.
func (r *Result) Gate(maxRatio float64, slack time.Duration) error {
	var errs []error
	if r.Diverged > 0 {
		errs = append(errs, fmt.Errorf("%d of %d compared requests diverged", r.Diverged, r.Compared))
	}
	if r.Compared == 0 {
		errs = append(errs, errors.New("no request was compared"))
	}
	b, c := r.Baseline.P99, r.Candidate.P99
	if c > b*(1+maxRatio) && c-b > float64(slack)/float64(time.Millisecond) {
		errs = append(errs, fmt.Errorf("p99 regressed: candidate %.3f ms, baseline %.3f ms (more than %.0f%% and %s)", c, b, maxRatio*100, slack))
	}
	return errors.Join(errs...)
}

func (c *Config) validate(baseline bool) error {
	if baseline && c.Baseline.URL == "" || c.Candidate.URL == "" {
		return errors.New("canary: the baseline and the candidate URL are required")
	}
	if c.Share == 0 {
		c.Share = 1
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
	if c.MaxRequests == 0 {
		c.MaxRequests = 1_000_000
	}
	if c.MaxExamples == 0 {
		c.MaxExamples = 20
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	switch {
	case !(c.Share > 0 && c.Share <= 1):
		return fmt.Errorf("canary: share %v out of range (0, 1]", c.Share)
	case c.Concurrency < 1 || c.Concurrency > 256:
		return fmt.Errorf("canary: concurrency %d out of range 1..256", c.Concurrency)
	case c.MaxRequests < 1 || c.MaxRequests > 10_000_000:
		return fmt.Errorf("canary: max requests %d out of range 1..10000000", c.MaxRequests)
	case c.MaxExamples < 0 || c.MaxExamples > 10_000:
		return fmt.Errorf("canary: max examples %d out of range 0..10000", c.MaxExamples)
	case c.Timeout < time.Millisecond || c.Timeout > time.Minute:
		return fmt.Errorf("canary: timeout %s out of range 1ms..1m", c.Timeout)
	}
	if c.Client == nil {
		c.Client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.Concurrency * 2}}
	}
	return nil
}

// maxAnswerBytes bounds an answer read for comparison.
const maxAnswerBytes = 64 << 20

// Run reads requests from next until it ends (or MaxRequests), mirrors
// Share of them to both sides and compares the answers.
func Run(ctx context.Context, cfg Config, next func() (Request, bool, error)) (*Result, error) {
	if err := cfg.validate(true); err != nil {
		return nil, err
	}
	return run(ctx, cfg, func() (Tapped, bool, error) {
		req, ok, err := next()
		return Tapped{Request: req}, ok, err
	})
}

// RunTapped reads requests a running node's tap published, with the
// answers it gave, until next ends (or MaxRequests); it sends Share of
// them to the candidate and compares its answers with the node's. The
// baseline is not asked: Config.Baseline names the keys the requests
// carry, its URL may be empty. The baseline's latency is the node's own
// time in its handler; the candidate's is the canary's round trip, so
// the network between them counts against the candidate.
func RunTapped(ctx context.Context, cfg Config, next func() (Tapped, bool, error)) (*Result, error) {
	if err := cfg.validate(false); err != nil {
		return nil, err
	}
	return run(ctx, cfg, func() (Tapped, bool, error) {
		t, ok, err := next()
		if ok && t.Status == 0 {
			return t, false, errors.New("canary: a tapped request without its answer")
		}
		return t, ok, err
	})
}

// run compares the requests of next; one with a Status carries the
// baseline's answer, which is then not asked.
func run(ctx context.Context, cfg Config, next func() (Tapped, bool, error)) (*Result, error) {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xca9a))
	res := &Result{}
	var mu sync.Mutex
	var lat [2][]time.Duration
	jobs := make(chan Tapped)
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(func() {
			for job := range jobs {
				d, la, lb := compare(ctx, cfg, job)
				mu.Lock()
				res.Compared++
				if la > 0 && lb > 0 {
					lat[0], lat[1] = append(lat[0], la), append(lat[1], lb)
				}
				if d != nil {
					res.Diverged++
					if d.BaselineStatus == 0 || d.CandidateStatus == 0 {
						res.Failed++
					}
					if len(res.Divergences) < cfg.MaxExamples {
						res.Divergences = append(res.Divergences, *d)
					}
				}
				mu.Unlock()
			}
		})
	}
	var err error
	for res.Read < cfg.MaxRequests && ctx.Err() == nil {
		job, ok, nerr := next()
		if nerr != nil || !ok {
			err = nerr
			break
		}
		res.Read++
		if cfg.Share < 1 && rng.Float64() >= cfg.Share {
			continue
		}
		if job.Status >= 500 {
			res.NodeErrors++
			continue
		}
		select {
		case jobs <- job:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	if err == nil {
		err = ctx.Err()
	}
	res.Baseline, res.Candidate = latency(lat[0]), latency(lat[1])
	return res, err
}

// compare sends job's request to both sides at once (only to the
// candidate when job carries the baseline's answer) and compares their
// answers.
func compare(ctx context.Context, cfg Config, job Tapped) (*Divergence, time.Duration, time.Duration) {
	req := job.Request
	type answer struct {
		status int
		body   []byte
		took   time.Duration
		err    error
	}
	var a, b answer
	var wg sync.WaitGroup
	send := func(t Target, r Request, out *answer) {
		start := time.Now()
		out.status, out.body, out.err = do(ctx, cfg, t, r)
		out.took = time.Since(start)
	}
	if job.Status != 0 {
		a = answer{status: job.Status, body: job.Answer, took: time.Duration(job.TookNS)}
	} else {
		wg.Go(func() { send(cfg.Baseline, req, &a) })
	}
	wg.Go(func() { send(cfg.Candidate, forCandidate(cfg, req), &b) })
	wg.Wait()
	d := &Divergence{Request: req, BaselineStatus: a.status, CandidateStatus: b.status}
	switch {
	case a.err != nil || b.err != nil:
		d.Diffs = append(d.Diffs, fmt.Sprintf("transport: baseline %v, candidate %v", a.err, b.err))
		return d, 0, 0
	case a.status != b.status:
		d.Diffs = append(d.Diffs, fmt.Sprintf("status %d != %d", a.status, b.status))
	case a.status != http.StatusOK:
		// Equal refusals: nothing more to compare.
	case req.Kind() == "definitions":
		d.Diffs = compareDefinitions(a.body, b.body)
	default:
		d.Diffs = compareFlags(a.body, b.body)
	}
	if len(d.Diffs) == 0 {
		d = nil
	}
	return d, a.took, b.took
}

// forCandidate replaces the baseline's keys in req by the candidate's.
func forCandidate(cfg Config, req Request) Request {
	replace := func(s string) string {
		if cfg.Candidate.Token != "" && cfg.Baseline.Token != "" {
			s = strings.ReplaceAll(s, cfg.Baseline.Token, cfg.Candidate.Token)
		}
		if cfg.Candidate.PersonalKey != "" && cfg.Baseline.PersonalKey != "" {
			s = strings.ReplaceAll(s, cfg.Baseline.PersonalKey, cfg.Candidate.PersonalKey)
		}
		return s
	}
	out := Request{Method: req.Method, Path: replace(req.Path), Body: []byte(replace(string(req.Body)))}
	if len(req.Body) == 0 {
		out.Body = nil
	}
	if req.Headers != nil {
		out.Headers = make(map[string]string, len(req.Headers))
		for k, v := range req.Headers {
			out.Headers[k] = replace(v)
		}
	}
	// A tap publishes no Authorization: the candidate's personal key (or
	// the baseline's, the same environment) goes with a definitions poll.
	if req.Kind() == "definitions" && !hasHeader(req.Headers, "Authorization") {
		if key := cmp.Or(cfg.Candidate.PersonalKey, cfg.Baseline.PersonalKey); key != "" {
			if out.Headers == nil {
				out.Headers = map[string]string{}
			}
			out.Headers["Authorization"] = "Bearer " + key
		}
	}
	return out
}

// do sends one request. A recorded If-None-Match is dropped: both sides
// answer the whole definitions, to be compared.
func do(ctx context.Context, cfg Config, t Target, req Request) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	var body io.Reader
	if len(req.Body) > 0 {
		body = bytes.NewReader(req.Body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, strings.TrimSuffix(t.URL, "/")+req.Path, body)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range req.Headers {
		if !strings.EqualFold(k, "If-None-Match") {
			hr.Header.Set(k, v)
		}
	}
	if len(req.Body) > 0 && hr.Header.Get("Content-Type") == "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	resp, err := cfg.Client.Do(hr)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	return resp.StatusCode, b, err
}

func hasHeader(h map[string]string, name string) bool {
	for k := range h {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

func latency(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(ds)))) - 1
		return float64(ds[max(i, 0)]) / float64(time.Millisecond)
	}
	return Latency{P50: q(.5), P90: q(.9), P99: q(.99), Max: q(1)}
}
