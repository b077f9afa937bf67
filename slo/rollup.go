package slo

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
)

// Series of the objectives.
const (
	Remote = "remote" // /flags, /decide, gRPC Evaluate
	Local  = "local"  // definitions polls (200 and 304)
)

// AllSeries lists the series in display order.
var AllSeries = []string{Remote, Local}

// endpointSeries maps the evaluation service's endpoint labels to series;
// endpoints not listed (WatchDefinitions streams) are in no objective.
var endpointSeries = map[string]string{
	"flags": Remote, "decide": Remote, "evaluate": Remote,
	"definitions": Local,
}

// SeriesOf returns the series of an evaluation endpoint label, "" for none.
func SeriesOf(endpoint string) string { return endpointSeries[endpoint] }

// maxBuckets bounds a rollup's histogram (the stored value's size).
const maxBuckets = 64

// Rollup is one series' requests over a span: a latency histogram and
// the counts by outcome. It is both a minute's stored row and a sum.
type Rollup struct {
	// Bounds are the histogram's finite upper bounds in seconds,
	// ascending; Buckets has one more entry (+Inf), each the count of its
	// bucket alone (not cumulative).
	Bounds  []float64 `json:"b"`
	Buckets []uint64  `json:"c"`
	Count   uint64    `json:"n"`
	Sum     float64   `json:"s"`
	// Errors are server errors (5xx, shed requests among them);
	// ClientErrors are 4xx, not in the objective's total.
	Errors       uint64 `json:"e"`
	ClientErrors uint64 `json:"ce"`
}

// Empty reports whether the rollup counted nothing.
func (r Rollup) Empty() bool { return r.Count == 0 && r.Errors == 0 && r.ClientErrors == 0 }

// Add adds o into r. Histograms of different bounds are merged onto r's
// bounds, each of o's buckets into the first of r's whose bound is at
// least its own (a latency is never reported smaller than it was).
func (r *Rollup) Add(o Rollup) {
	r.Count += o.Count
	r.Sum += o.Sum
	r.Errors += o.Errors
	r.ClientErrors += o.ClientErrors
	if len(o.Buckets) == 0 {
		return
	}
	if len(r.Buckets) == 0 {
		r.Bounds = slices.Clone(o.Bounds)
		r.Buckets = slices.Clone(o.Buckets)
		return
	}
	if slices.Equal(r.Bounds, o.Bounds) {
		for i, c := range o.Buckets {
			r.Buckets[i] += c
		}
		return
	}
	for i, c := range o.Buckets {
		ub := math.Inf(1)
		if i < len(o.Bounds) {
			ub = o.Bounds[i]
		}
		j, _ := slices.BinarySearch(r.Bounds, ub)
		r.Buckets[j] += c
	}
}

// sub returns r - o for cumulative readings of the same counters (o
// earlier); a counter that went backwards (a reset) counts from zero.
func (r Rollup) sub(o Rollup) Rollup {
	d := Rollup{Bounds: slices.Clone(r.Bounds), Buckets: make([]uint64, len(r.Buckets))}
	minus := func(a, b uint64) uint64 {
		if a < b {
			return a
		}
		return a - b
	}
	same := slices.Equal(r.Bounds, o.Bounds)
	for i, c := range r.Buckets {
		if same {
			d.Buckets[i] = minus(c, o.Buckets[i])
		} else {
			d.Buckets[i] = c
		}
	}
	d.Count = minus(r.Count, o.Count)
	d.Sum = r.Sum - o.Sum
	if d.Sum < 0 || d.Count == 0 {
		d.Sum = max(0, d.Sum)
	}
	d.Errors = minus(r.Errors, o.Errors)
	d.ClientErrors = minus(r.ClientErrors, o.ClientErrors)
	return d
}

// Quantile is q's latency in seconds (0 <= q <= 1) as Prometheus'
// histogram_quantile computes it from the buckets; NaN without requests.
func (r Rollup) Quantile(q float64) float64 {
	if len(r.Buckets) < 2 {
		return math.NaN()
	}
	cum := make([]float64, len(r.Buckets))
	var total float64
	for i, c := range r.Buckets {
		total += float64(c)
		cum[i] = total
	}
	if total == 0 {
		return math.NaN()
	}
	rank := q * total
	b, _ := slices.BinarySearchFunc(cum, rank, func(c, rank float64) int {
		if c >= rank {
			return 1 // search for the first c >= rank
		}
		return -1
	})
	if b >= len(r.Bounds) { // the +Inf bucket
		return r.Bounds[len(r.Bounds)-1]
	}
	start, end, count := 0.0, r.Bounds[b], cum[b]
	if b > 0 {
		start = r.Bounds[b-1]
		count -= cum[b-1]
		rank -= cum[b-1]
	}
	if count == 0 {
		return end
	}
	return start + (end-start)*(rank/count)
}

// Within is the number of requests at most d seconds, interpolated
// linearly inside the bucket d falls in (exact when d is a bound).
func (r Rollup) Within(d float64) float64 {
	var n float64
	lower := 0.0
	for i, c := range r.Buckets {
		if i == len(r.Bounds) {
			return n // +Inf: never within a finite latency
		}
		ub := r.Bounds[i]
		if d >= ub {
			n += float64(c)
			lower = ub
			continue
		}
		if d > lower {
			n += float64(c) * (d - lower) / (ub - lower)
		}
		return n
	}
	return n
}

// Valid is the objective's total: every request but client errors.
func (r Rollup) Valid() uint64 {
	if r.ClientErrors > r.Count {
		return 0
	}
	return r.Count - r.ClientErrors
}

// Bad is the number of requests against the objective of latency d
// seconds: server errors plus requests slower than d, at most Valid.
func (r Rollup) Bad(d float64) float64 {
	bad := float64(r.Errors) + float64(r.Count) - r.Within(d)
	return min(max(bad, 0), float64(r.Valid()))
}

func (r Rollup) encode() ([]byte, error) { return json.Marshal(r) }

func decodeRollup(b []byte) (Rollup, error) {
	var r Rollup
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("slo: rollup: %w", err)
	}
	if len(r.Bounds) > maxBuckets || len(r.Buckets) != 0 && len(r.Buckets) != len(r.Bounds)+1 || !slices.IsSorted(r.Bounds) {
		return Rollup{}, fmt.Errorf("slo: rollup: %d bounds, %d buckets", len(r.Bounds), len(r.Buckets))
	}
	return r, nil
}
