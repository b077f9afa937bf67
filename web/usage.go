package web

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"time"
)

// Usage is a flag's usage statistics: evaluations over time, by variant,
// and how many distinct ids asked.
type Usage struct {
	// LastEvaluated is the last time the flag was evaluated (zero: never).
	LastEvaluated time.Time
	// Buckets are evaluation counts over time, oldest first.
	Buckets []UsageBucket
	// Variants counts evaluations by value ("true", "false", a variant).
	Variants map[string]int64
	// UniqueIDs is how many distinct ids asked over the buckets' span.
	UniqueIDs int64
	// Total is the evaluations over the buckets' span.
	Total int64
}

// UsageBucket is one interval's evaluation count.
type UsageBucket struct {
	Start time.Time
	Count int64
	// Unique is the distinct ids of the interval (an estimate).
	Unique int64
	// Variants counts the interval's evaluations by value.
	Variants map[string]int64
}

// maxChartSeries bounds the variant lines of a chart (the rest are left
// out: a flag has at most a few dozen variants).
const maxChartSeries = 20

// chartJSON is uPlot's data: the bucket starts (Unix seconds) then one
// array per series.
func chartJSON(bs []UsageBucket, series ...func(UsageBucket) int64) string {
	data := make([][]int64, 1+len(series))
	for _, b := range bs {
		data[0] = append(data[0], b.Start.Unix())
		for i, f := range series {
			data[i+1] = append(data[i+1], f(b))
		}
	}
	for i := range data {
		if data[i] == nil {
			data[i] = []int64{}
		}
	}
	out, _ := json.Marshal(data)
	return string(out)
}

// SparkJSON is the flag list's sparkline: evaluations per bucket.
func (u *Usage) SparkJSON() string {
	return chartJSON(u.Buckets, func(b UsageBucket) int64 { return b.Count })
}

// EvaluationsJSON is the flag page's evaluations per bucket.
func (u *Usage) EvaluationsJSON() string { return u.SparkJSON() }

// UniquesJSON is the flag page's unique ids per bucket.
func (u *Usage) UniquesJSON() string {
	return chartJSON(u.Buckets, func(b UsageBucket) int64 { return b.Unique })
}

// VariantNames are the values the variants chart draws, sorted.
func (u *Usage) VariantNames() []string {
	names := map[string]bool{}
	for _, b := range u.Buckets {
		for k := range b.Variants {
			names[k] = true
		}
	}
	for k := range u.Variants {
		names[k] = true
	}
	out := slices.Sorted(maps.Keys(names))
	if len(out) > maxChartSeries {
		out = out[:maxChartSeries]
	}
	return out
}

// VariantsJSON is the flag page's evaluations by value, one series per
// VariantNames.
func (u *Usage) VariantsJSON() string {
	var fs []func(UsageBucket) int64
	for _, name := range u.VariantNames() {
		fs = append(fs, func(b UsageBucket) int64 { return b.Variants[name] })
	}
	return chartJSON(u.Buckets, fs...)
}

// VariantLabelsJSON names VariantsJSON's series.
func (u *Usage) VariantLabelsJSON() string {
	b, _ := json.Marshal(u.VariantNames())
	return string(b)
}

// UsageSource gives usage statistics per flag. The usage statistics are
// being built in package usage; until a node has them, Config.Usage is
// nil and every page says "no usage data yet" instead of drawing
// anything.
type UsageSource interface {
	// FlagUsage returns the usage of a team's flag; nil, nil when there
	// is none yet.
	FlagUsage(ctx context.Context, team int64, key string) (*Usage, error)
}

// usageOf is the one place the pages read usage statistics from: nil
// means "no usage data yet".
func (h *Handler) usageOf(q *req, key string) *Usage {
	if h.cfg.Usage == nil {
		return nil
	}
	u, err := h.cfg.Usage.FlagUsage(q.ctx, q.Team.GetId(), key)
	if err != nil {
		h.log.Warn("web: usage statistics", "flag", key, "err", err)
		return nil
	}
	return u
}
