package slo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vexil-dev/vexil/store"
)

// Metric names the Sampler reads (package evalsvc's).
const (
	LatencyMetric  = "vexil_evalsvc_request_seconds"
	RequestsMetric = "vexil_evalsvc_requests_total"
)

// Defaults of SamplerConfig.
const (
	DefaultFlushInterval = 10 * time.Second
	// DefaultRetention keeps a 30-day window and a day more.
	DefaultRetention = 31 * 24 * time.Hour
)

// SamplerConfig configures a Sampler.
type SamplerConfig struct {
	Gatherer prometheus.Gatherer
	Store    store.SLOStore
	// Node names this node's rows; default: host name and 8 random hex
	// digits (a restart is a new node: its counters start from zero).
	Node string
	// FlushInterval is how often Run writes the current minute's rows,
	// 1s to 1m. Default DefaultFlushInterval.
	FlushInterval time.Duration
	// Retention is how long rows are kept, 1h to 400 days. Default
	// DefaultRetention.
	Retention time.Duration
	// Now is the clock; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Sampler turns the evaluation service's cumulative histograms into
// per-minute rows: on each flush it gathers them, adds the difference
// since the last flush to the current minute's rollup of each series and
// writes that minute's rows (a put replaces, so the minute's row grows
// until the minute is over).
type Sampler struct {
	cfg SamplerConfig

	mu     sync.Mutex
	last   map[string]Rollup // cumulative, at the last flush
	minute int64             // the minute acc belongs to
	acc    map[string]Rollup
}

// NewSampler checks cfg and returns a Sampler whose baseline is zero: it
// counts every request since the process started (create it before the
// evaluation service takes traffic, in the same process).
func NewSampler(cfg SamplerConfig) (*Sampler, error) {
	if cfg.Gatherer == nil || cfg.Store == nil {
		return nil, errors.New("slo: sampler: Gatherer and Store are required")
	}
	if cfg.Node == "" {
		host, _ := os.Hostname()
		if len(host) > 64 {
			host = host[:64]
		}
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.Node = host + "-" + hex.EncodeToString(b[:])
	}
	if len(cfg.Node) > store.MaxSLONodeBytes {
		return nil, fmt.Errorf("slo: sampler: Node over %d bytes", store.MaxSLONodeBytes)
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.FlushInterval < time.Second || cfg.FlushInterval > time.Minute {
		return nil, fmt.Errorf("slo: sampler: FlushInterval %s out of range 1s..1m", cfg.FlushInterval)
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Retention < time.Hour || cfg.Retention > 400*24*time.Hour {
		return nil, fmt.Errorf("slo: sampler: Retention %s out of range 1h..9600h", cfg.Retention)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sampler{cfg: cfg, last: map[string]Rollup{}, acc: map[string]Rollup{}}, nil
}

// Node is the name of this sampler's rows.
func (s *Sampler) Node() string { return s.cfg.Node }

// Run flushes every FlushInterval until ctx is done, then once more (so a
// clean stop keeps the last seconds), and sweeps expired rows hourly.
func (s *Sampler) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	sweep := time.NewTicker(time.Hour)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := s.Flush(fctx); err != nil {
				s.cfg.Logger.Warn("slo: last flush failed", "err", err)
			}
			return nil
		case <-t.C:
			if err := s.Flush(ctx); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("slo: flush failed", "err", err)
			}
		case <-sweep.C:
			if _, err := s.cfg.Store.SweepSLO(ctx, s.cfg.Now()); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("slo: sweep failed", "err", err)
			}
		}
	}
}

// Flush gathers the histograms and writes the current minute's rows.
// What was counted since the last flush goes to the minute of now.
func (s *Sampler) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := Gather(s.cfg.Gatherer)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	minute := now.Unix() / 60 * 60
	if minute != s.minute {
		s.minute, s.acc = minute, map[string]Rollup{}
	}
	var rows []store.SLORow
	for _, series := range AllSeries {
		d := cur[series].sub(s.last[series])
		a := s.acc[series]
		a.Add(d)
		if a.Empty() {
			continue
		}
		v, err := a.encode()
		if err != nil {
			return err
		}
		rows = append(rows, store.SLORow{Series: series, Minute: minute, Node: s.cfg.Node, Value: v,
			ExpiresAt: now.Add(s.cfg.Retention).Unix()})
		s.acc[series] = a
	}
	if len(rows) > 0 {
		if err := s.cfg.Store.PutSLO(ctx, rows); err != nil {
			// acc keeps the minute: the next flush of the minute writes it
			// again; last moves on so nothing is counted twice.
			s.last = cur
			return err
		}
	}
	s.last = cur
	return nil
}

// Gather reads the evaluation service's histograms from g, summed by
// series: the cumulative counts since the process started.
func Gather(g prometheus.Gatherer) (map[string]Rollup, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, fmt.Errorf("slo: gather: %w", err)
	}
	out := map[string]Rollup{}
	for _, mf := range mfs {
		switch mf.GetName() {
		case LatencyMetric:
			for _, m := range mf.GetMetric() {
				series := SeriesOf(label(m, "endpoint"))
				if series == "" || m.GetHistogram() == nil {
					continue
				}
				r := out[series]
				r.Add(fromHistogram(m.GetHistogram()))
				out[series] = r
			}
		case RequestsMetric:
			for _, m := range mf.GetMetric() {
				series := SeriesOf(label(m, "endpoint"))
				if series == "" {
					continue
				}
				r := out[series]
				switch n := uint64(m.GetCounter().GetValue()); label(m, "code") {
				case "5xx", "other", "0xx":
					r.Errors += n
				case "4xx":
					r.ClientErrors += n
				}
				out[series] = r
			}
		}
	}
	return out, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// fromHistogram converts Prometheus' cumulative buckets to a Rollup's.
func fromHistogram(h *dto.Histogram) Rollup {
	r := Rollup{Count: h.GetSampleCount(), Sum: h.GetSampleSum()}
	var prev uint64
	for _, b := range h.GetBucket() {
		if len(r.Bounds) == maxBuckets {
			break
		}
		r.Bounds = append(r.Bounds, b.GetUpperBound())
		c := b.GetCumulativeCount()
		r.Buckets = append(r.Buckets, c-min(prev, c))
		prev = c
	}
	r.Buckets = append(r.Buckets, r.Count-min(prev, r.Count))
	if n := len(r.Bounds); n > 0 && r.Bounds[n-1] > 1e300 { // an explicit +Inf bucket
		r.Bounds = r.Bounds[:n-1]
		r.Buckets[n-1] += r.Buckets[n]
		r.Buckets = r.Buckets[:n]
	}
	if !slices.IsSorted(r.Bounds) {
		return Rollup{Count: r.Count, Sum: r.Sum}
	}
	return r
}
