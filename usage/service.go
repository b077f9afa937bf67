package usage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/store"
)

// Resolution is the bucket size of a usage series.
type Resolution string

// Resolutions.
const (
	Minute Resolution = "minute"
	Hour   Resolution = "hour"
	Day    Resolution = "day"
)

func (r Resolution) kind() (byte, time.Duration, bool) {
	switch r {
	case Minute:
		return store.UsageMinute, time.Minute, true
	case Hour:
		return store.UsageHour, time.Hour, true
	case Day:
		return store.UsageDay, 24 * time.Hour, true
	}
	return 0, 0, false
}

// MaxPoints bounds the buckets of one series (48 hours of minutes).
const MaxPoints = 2880

// Stale-flag setting bounds and default (days).
const (
	DefaultStaleAfterDays = 30
	MaxStaleAfterDays     = 365
)

// FlagLister lists a team's flags; catalog.Catalog is one.
type FlagLister interface {
	ListFlags(ctx context.Context, teamID int64) ([]catalog.FlagRecord, error)
}

// Config configures a Service.
type Config struct {
	// Store holds the rows the recorders write; required.
	Store store.UsageStore
	// Flags lists the flags stale detection and summaries walk; required.
	Flags FlagLister
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Service reads usage: series, summaries, last evaluated, the stale-flag
// setting, flag status and findings. It is what the REST handlers and the
// MCP server call; it checks no key (callers authorize first).
type Service struct {
	cfg Config
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Flags == nil {
		return nil, errors.New("usage: Store and Flags are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg}, nil
}

// Summary is usage over a bucket or a range, in the JSON the REST API
// answers (PostHog-style snake_case).
type Summary struct {
	Evaluations uint64            `json:"evaluations"`
	ByEndpoint  map[string]uint64 `json:"by_endpoint"`
	// Values counts answers by variant key or "true" / "false".
	Values map[string]uint64 `json:"values"`
	// UniqueUsers is a HyperLogLog estimate (0.81% standard error).
	UniqueUsers uint64 `json:"unique_users"`
	// PrecomputedShare is the share of evaluations answered from
	// precomputed results (0 when none).
	PrecomputedShare float64 `json:"precomputed_share"`
	Errors           uint64  `json:"errors"`
	ErrorRate        float64 `json:"error_rate"`
	// LocalEvaluationPolls counts the team's definitions requests (local
	// evaluation happens in the SDK: a poll serves every flag).
	LocalEvaluationPolls uint64 `json:"local_evaluation_polls"`
}

func summarize(c, polls *Counts) Summary {
	s := Summary{Evaluations: c.Evaluations, ByEndpoint: map[string]uint64{}, Values: map[string]uint64{},
		UniqueUsers: c.Uniques(), Errors: c.Errors}
	for i, n := range c.ByEndpoint {
		s.ByEndpoint[Endpoint(i).String()] = n
	}
	maps.Copy(s.Values, c.Values)
	if c.Evaluations > 0 {
		s.PrecomputedShare = float64(c.Stored) / float64(c.Evaluations)
		s.ErrorRate = float64(c.Errors) / float64(c.Evaluations)
	}
	if polls != nil {
		s.LocalEvaluationPolls = polls.Polls
	}
	return s
}

// Point is one bucket of a series.
type Point struct {
	Bucket time.Time `json:"bucket"`
	Summary
}

// Series is a flag's usage over a range.
type Series struct {
	Flag       string     `json:"flag_key"`
	Resolution Resolution `json:"resolution"`
	From       time.Time  `json:"date_from"`
	To         time.Time  `json:"date_to"`
	Total      Summary    `json:"total"`
	// Points holds the buckets with any evaluation or poll, in order.
	Points          []Point    `json:"results"`
	LastEvaluatedAt *time.Time `json:"last_evaluated_at"`
}

// errRange is a refused range or resolution.
func errRange(field, format string, args ...any) error {
	return errcode.Field(errcode.InvalidArgument, field, format, args...)
}

// buckets reads the merged counts of (team, flag) per bucket of kind in
// [from, to).
func (s *Service) buckets(ctx context.Context, team int64, flag string, kind byte, from, to int64) (map[int64]*Counts, error) {
	out := map[int64]*Counts{}
	err := s.cfg.Store.ScanUsage(ctx, team, flag, kind, from, to, func(r store.UsageRow) error {
		var c Counts
		if err := c.UnmarshalBinary(r.Value); err != nil {
			return fmt.Errorf("usage: row %d/%q/%c/%d/%s: %w", r.Team, r.Flag, r.Kind, r.Bucket, r.Node, err)
		}
		if o := out[r.Bucket]; o != nil {
			o.Merge(&c)
		} else {
			out[r.Bucket] = &c
		}
		return nil
	})
	return out, err
}

// FlagUsage returns a flag's usage in [from, to) at res, the buckets
// summed over every evaluation node. The range must lie within the
// resolution's retention and hold at most MaxPoints buckets.
func (s *Service) FlagUsage(ctx context.Context, team int64, flag string, res Resolution, from, to time.Time) (*Series, error) {
	kind, step, ok := res.kind()
	if !ok {
		return nil, errRange("resolution", "resolution must be minute, hour or day")
	}
	if !to.After(from) {
		return nil, errRange("date_to", "date_to must be after date_from")
	}
	from, to = time.Unix(bucketStart(kind, from), 0).UTC(), to.UTC()
	if n := to.Sub(from) / step; n > MaxPoints {
		return nil, errRange("date_from", "%d %s buckets requested, at most %d", n, res, MaxPoints)
	}
	if oldest := s.cfg.Now().Add(-retention[kind]); from.Before(oldest.Add(-step)) {
		return nil, errRange("date_from", "%s usage is kept %v: date_from must be after %s", res, retention[kind], oldest.UTC().Format(time.RFC3339))
	}
	// Buckets that start before to: its second rounded up, so a bucket
	// that began in to's second (a series read right after a minute
	// starts) is in.
	toSec := to.Add(time.Second - time.Nanosecond).Unix()
	evals, err := s.buckets(ctx, team, flag, kind, from.Unix(), toSec)
	if err != nil {
		return nil, err
	}
	polls, err := s.buckets(ctx, team, "", kind, from.Unix(), toSec)
	if err != nil {
		return nil, err
	}
	out := &Series{Flag: flag, Resolution: res, From: from, To: to, Points: []Point{}}
	var total, totalPolls Counts
	for _, b := range slices.Sorted(maps.Keys(mapsUnion(evals, polls))) {
		c, p := evals[b], polls[b]
		if c == nil {
			c = &Counts{}
		}
		total.Merge(c)
		if p != nil {
			totalPolls.Merge(p)
		}
		out.Points = append(out.Points, Point{Bucket: time.Unix(b, 0).UTC(), Summary: summarize(c, p)})
	}
	out.Total = summarize(&total, &totalPolls)
	last, ok, err := s.LastEvaluated(ctx, team, flag)
	if err != nil {
		return nil, err
	}
	if ok {
		out.LastEvaluatedAt = &last
	}
	return out, nil
}

func mapsUnion(a, b map[int64]*Counts) map[int64]struct{} {
	out := make(map[int64]struct{}, len(a)+len(b))
	for k := range a {
		out[k] = struct{}{}
	}
	for k := range b {
		out[k] = struct{}{}
	}
	return out
}

// LastEvaluated is when any node last evaluated the flag (to its flush
// interval), within DayRetention.
func (s *Service) LastEvaluated(ctx context.Context, team int64, flag string) (time.Time, bool, error) {
	var last int64
	err := s.cfg.Store.ScanUsage(ctx, team, flag, store.UsageLast, 0, 1, func(r store.UsageRow) error {
		if v, ok := getInt64(r.Value); ok {
			last = max(last, v)
		}
		return nil
	})
	if err != nil || last == 0 {
		return time.Time{}, false, err
	}
	return time.UnixMilli(last).UTC(), true, nil
}

// teamSettings is the JSON of a team's usage settings row.
type teamSettings struct {
	StaleAfterDays int `json:"stale_after_days"`
}

// StaleAfterDays is the team's N of the stale-flag rules (default 30).
func (s *Service) StaleAfterDays(ctx context.Context, team int64) (int, error) {
	n := DefaultStaleAfterDays
	err := s.cfg.Store.ScanUsage(ctx, team, "", store.UsageSetting, 0, 1, func(r store.UsageRow) error {
		var ts teamSettings
		if json.Unmarshal(r.Value, &ts) == nil && ts.StaleAfterDays > 0 {
			n = ts.StaleAfterDays
		}
		return nil
	})
	return n, err
}

// SetStaleAfterDays sets the team's N, 1..MaxStaleAfterDays.
func (s *Service) SetStaleAfterDays(ctx context.Context, team int64, days int) error {
	if days < 1 || days > MaxStaleAfterDays {
		return errRange("stale_after_days", "stale_after_days must be 1..%d", MaxStaleAfterDays)
	}
	v, _ := json.Marshal(teamSettings{StaleAfterDays: days})
	return s.cfg.Store.PutUsage(ctx, []store.UsageRow{{Team: team, Kind: store.UsageSetting, Value: v}})
}

// Sweep deletes the rows past their retention (Pebble and memory; on
// ScyllaDB the TTL does it). Every node may run it: deletes are idempotent.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	return s.cfg.Store.SweepUsage(ctx, s.cfg.Now())
}

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.cfg.Now() }
