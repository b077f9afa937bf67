// Package loadtest is Vexil's load generator: open-loop runs at a fixed
// rate, whose latencies are measured from each request's scheduled start so
// a slow server cannot hide its queueing (no coordinated omission), and
// closed-loop runs with a fixed number of connections for peak throughput.
// It sends only to the target it is given; callers keep that on loopback.
package loadtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes one run.
type Config struct {
	// URL receives a POST of each body.
	URL string
	// Bodies are sent in turn (round robin), so nothing can cache one
	// answer. Required.
	Bodies [][]byte
	// ContentType of the bodies. Default application/json.
	ContentType string
	// Header is added to every request.
	Header http.Header
	// Rate is the open-loop request rate per second; 0 runs closed-loop.
	Rate float64
	// Connections bounds the connections (closed loop: the workers, each
	// sending back to back; open loop: the requests in flight). Default 16.
	Connections int
	// Warmup is run first and not measured. Duration is measured.
	Warmup, Duration time.Duration
	// Timeout bounds one request. Default 5s.
	Timeout time.Duration
	// Client defaults to one with a transport sized for Connections.
	Client *http.Client
	// TLS configures the default Client's TLS (an https URL); nil:
	// Go's defaults.
	TLS *tls.Config
	// Do, when set, replaces the HTTP POST: it sends request number i
	// (another protocol, such as gRPC) and reports whether it succeeded and
	// how many bytes the answer had. URL and Bodies are then not used.
	Do func(ctx context.Context, i uint64) (ok bool, bytes int)
	// Raw sends with a minimal HTTP/1.1 client instead of net/http's (see
	// rawClient): an http:// URL, kept-alive connections, Client unused.
	Raw bool
}

// Result is what a run measured.
type Result struct {
	Mode     string      `json:"mode"` // "open" or "closed"
	Target   float64     `json:"target_rate,omitempty"`
	Requests int         `json:"requests"`
	Errors   int         `json:"errors"`
	ByStatus map[int]int `json:"by_status"`
	// ByStatusLatency splits the latencies by status (0: no answer), so
	// that admitted (200) and refused (503) requests are seen apart.
	ByStatusLatency map[int]Latency `json:"by_status_latency"`
	Elapsed         time.Duration   `json:"elapsed_ns"`
	Rate            float64         `json:"achieved_rate"`
	P50             time.Duration   `json:"p50_ns"`
	P90             time.Duration   `json:"p90_ns"`
	P99             time.Duration   `json:"p99_ns"`
	Max             time.Duration   `json:"max_ns"`
	Dropped         int             `json:"dropped"` // open loop: no connection free at the scheduled time (counted as errors)
	MeanBytes       int             `json:"mean_response_bytes"`
}

// Latency is the distribution of a set of latencies.
type Latency struct {
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

// latencyOf summarizes sorted latencies (at least one).
func latencyOf(sorted []time.Duration) Latency {
	pct := func(p float64) time.Duration { return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))] }
	return Latency{P50: pct(0.50), P99: pct(0.99), Max: sorted[len(sorted)-1]}
}

// Availability is the share of requests answered with a 2xx.
func (r Result) Availability() float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(r.Requests-r.Errors) / float64(r.Requests)
}

func (r Result) String() string {
	return fmt.Sprintf("%s: %d requests in %v (%.0f req/s), availability %.4f, p50 %v p90 %v p99 %v max %v, statuses %v",
		r.Mode, r.Requests, r.Elapsed.Round(time.Millisecond), r.Rate, r.Availability(),
		r.P50.Round(time.Microsecond), r.P90.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond), r.ByStatus)
}

// Validate checks the config.
func (c *Config) Validate() error {
	switch {
	case c.Do == nil && c.URL == "":
		return errors.New("loadtest: URL is required")
	case c.Do == nil && len(c.Bodies) == 0:
		return errors.New("loadtest: at least one body is required")
	case c.Rate < 0 || c.Connections < 0 || c.Duration <= 0 || c.Warmup < 0:
		return errors.New("loadtest: rate, connections and warmup must not be negative, duration must be positive")
	}
	return nil
}

type sample struct {
	latency time.Duration
	status  int // 0: transport error
	bytes   int
}

// Run executes the run described by cfg.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if cfg.Connections == 0 {
		cfg.Connections = 16
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.ContentType == "" {
		cfg.ContentType = "application/json"
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{
			MaxIdleConns: cfg.Connections, MaxIdleConnsPerHost: cfg.Connections, MaxConnsPerHost: cfg.Connections,
			DisableCompression: true, IdleConnTimeout: time.Minute, TLSClientConfig: cfg.TLS}}
	}
	r := &runner{cfg: cfg}
	if cfg.Raw && cfg.Do == nil {
		rc, err := newRawClient(cfg)
		if err != nil {
			return Result{}, err
		}
		defer rc.close()
		r.raw = rc
	}
	if cfg.Warmup > 0 {
		r.phase(ctx, cfg.Warmup, nil)
	}
	var mu sync.Mutex
	samples := make([]sample, 0, 1<<16)
	start := time.Now()
	dropped := r.phase(ctx, cfg.Duration, func(s sample) {
		mu.Lock()
		samples = append(samples, s)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	return summarize(cfg, samples, dropped, elapsed), ctx.Err()
}

type runner struct {
	cfg  Config
	next atomic.Uint64
	raw  *rawClient // Config.Raw
}

func (r *runner) body() []byte {
	return r.cfg.Bodies[int(r.next.Add(1)-1)%len(r.cfg.Bodies)]
}

func (r *runner) do(ctx context.Context) sample {
	if r.cfg.Do != nil {
		ok, n := r.cfg.Do(ctx, r.next.Add(1)-1)
		if !ok {
			return sample{bytes: n}
		}
		return sample{status: http.StatusOK, bytes: n}
	}
	if r.raw != nil {
		return r.raw.do(r.next.Add(1) - 1)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.URL, bytes.NewReader(r.body()))
	if err != nil {
		return sample{}
	}
	req.Header.Set("Content-Type", r.cfg.ContentType)
	for k, vs := range r.cfg.Header {
		req.Header[k] = vs
	}
	res, err := r.cfg.Client.Do(req)
	if err != nil {
		return sample{}
	}
	n, _ := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return sample{status: res.StatusCode, bytes: int(n)}
}

// phase runs for d, reporting each measured sample to record (nil: warm-up)
// and returning how many open-loop requests were dropped.
func (r *runner) phase(ctx context.Context, d time.Duration, record func(sample)) int {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	if r.cfg.Rate == 0 {
		for range r.cfg.Connections {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					t0 := time.Now()
					s := r.do(context.WithoutCancel(ctx))
					s.latency = time.Since(t0)
					if record != nil && ctx.Err() == nil {
						record(s)
					}
				}
			}()
		}
		wg.Wait()
		return 0
	}
	// Open loop: request i is due at start + i/rate, whatever happened to
	// the others; its latency counts from that instant.
	interval := time.Duration(float64(time.Second) / r.cfg.Rate)
	slots := make(chan struct{}, r.cfg.Connections)
	dropped := 0
	start := time.Now()
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case slots <- struct{}{}:
		default:
			dropped++
			if record != nil {
				record(sample{latency: time.Since(due)})
			}
			continue
		}
		wg.Add(1)
		go func(due time.Time) {
			defer wg.Done()
			defer func() { <-slots }()
			s := r.do(context.WithoutCancel(ctx))
			s.latency = time.Since(due)
			if record != nil {
				record(s)
			}
		}(due)
	}
	wg.Wait()
	return dropped
}

func summarize(cfg Config, samples []sample, dropped int, elapsed time.Duration) Result {
	res := Result{Mode: "closed", ByStatus: map[int]int{}, ByStatusLatency: map[int]Latency{}, Elapsed: elapsed, Dropped: dropped,
		Requests: len(samples)}
	if cfg.Rate > 0 {
		res.Mode, res.Target = "open", cfg.Rate
	}
	if len(samples) == 0 {
		return res
	}
	lat := make([]time.Duration, len(samples))
	total := 0
	byStatus := map[int][]time.Duration{}
	for i, s := range samples {
		lat[i] = s.latency
		byStatus[s.status] = append(byStatus[s.status], s.latency)
		res.ByStatus[s.status]++
		if s.status < 200 || s.status > 299 {
			res.Errors++
		}
		total += s.bytes
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	res.P50, res.P90, res.P99, res.Max = pct(0.50), pct(0.90), pct(0.99), lat[len(lat)-1]
	for status, l := range byStatus {
		slices.Sort(l)
		res.ByStatusLatency[status] = latencyOf(l)
	}
	res.Rate = float64(len(samples)) / elapsed.Seconds()
	res.MeanBytes = total / len(samples)
	return res
}
