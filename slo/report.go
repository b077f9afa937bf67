package slo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/vexil-dev/vexil/store"
)

// Objective is the service level objective, one definition for remote and
// local evaluation: Target of the requests in Window succeed within
// Latency.
type Objective struct {
	// Target is the share of good requests, 0.9 to 0.99999 (99.99% is
	// 0.9999). Default 0.9999.
	Target float64
	// Latency is the slowest good answer, 100µs to 1m. Default 50ms.
	Latency time.Duration
	// Window is the objective's period, 1h to 90 days. Default 30 days.
	Window time.Duration
}

// Default objective.
const (
	DefaultTarget  = 0.9999
	DefaultLatency = 50 * time.Millisecond
	DefaultWindow  = 30 * 24 * time.Hour
)

// Validate fills the defaults of zero fields and checks the bounds.
func (o *Objective) Validate() error {
	if o.Target == 0 {
		o.Target = DefaultTarget
	}
	if o.Latency == 0 {
		o.Latency = DefaultLatency
	}
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	switch {
	case !(o.Target >= 0.9 && o.Target <= 0.99999):
		return fmt.Errorf("slo: target %v out of range 0.9..0.99999", o.Target)
	case o.Latency < 100*time.Microsecond || o.Latency > time.Minute:
		return fmt.Errorf("slo: latency %s out of range 100µs..1m", o.Latency)
	case o.Window < time.Hour || o.Window > 90*24*time.Hour:
		return fmt.Errorf("slo: window %s out of range 1h..2160h", o.Window)
	}
	return nil
}

// BurnWindows are the windows whose burn rates a report gives.
var BurnWindows = []time.Duration{5 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour,
	6 * time.Hour, 24 * time.Hour, 3 * 24 * time.Hour}

// burnAlerts are the multi-window, multi-burn-rate alerts of Google's SRE
// workbook (for a 30-day objective): an alert fires when both its long
// and its short window burn faster than Rate.
var burnAlerts = []struct {
	Name        string
	Long, Short time.Duration
	Rate        float64
}{
	{"page-fast", time.Hour, 5 * time.Minute, 14.4},
	{"page-slow", 6 * time.Hour, 30 * time.Minute, 6},
	{"ticket-fast", 24 * time.Hour, 2 * time.Hour, 3},
	{"ticket-slow", 3 * 24 * time.Hour, 6 * time.Hour, 1},
}

// Figures are one series' numbers over one window. Latencies are in
// milliseconds; a figure without requests is null in JSON (NaN here).
type Figures struct {
	Window       string `json:"window"`
	Requests     uint64 `json:"requests"`
	Errors       uint64 `json:"errors"`
	ClientErrors uint64 `json:"client_errors"`
	P50          Num    `json:"p50_ms"`
	P90          Num    `json:"p90_ms"`
	P99          Num    `json:"p99_ms"`
	// ErrorRate is Errors over the valid requests (not client errors);
	// Availability is one minus it. Good is the share of valid requests
	// that succeeded within the objective's latency.
	ErrorRate    Num `json:"error_rate"`
	Availability Num `json:"availability"`
	Good         Num `json:"good"`
}

// Burn is one window's burn rate: its bad share over the budget's share
// (1 burns the budget exactly over the objective's window).
type Burn struct {
	Window string  `json:"window"`
	Rate   float64 `json:"rate"`
}

// Alert is a multi-window burn-rate alert and whether it fires.
type Alert struct {
	Name   string  `json:"name"`
	Long   string  `json:"long"`
	Short  string  `json:"short"`
	Rate   float64 `json:"rate"`
	Firing bool    `json:"firing"`
}

// Point is one chart point: an hour (or a minute) of one series.
type Point struct {
	T            int64  `json:"t"`
	Requests     uint64 `json:"requests"`
	P50          Num    `json:"p50_ms"`
	P90          Num    `json:"p90_ms"`
	P99          Num    `json:"p99_ms"`
	Availability Num    `json:"availability"`
}

// SeriesReport is one series' figures, budget and charts.
type SeriesReport struct {
	Series string `json:"series"`
	// Current is the last 5 minutes, Day the last 24 hours, Month the
	// last 30 days, Objective the objective's window.
	Current   Figures `json:"current"`
	Hour      Figures `json:"hour"`
	Day       Figures `json:"day"`
	Month     Figures `json:"month"`
	Objective Figures `json:"objective"`
	// BudgetRemaining is the share of the error budget left in the
	// objective's window (negative when overspent).
	BudgetRemaining float64 `json:"budget_remaining"`
	Burn            []Burn  `json:"burn"`
	Alerts          []Alert `json:"alerts"`
	// Hourly are the last 30 days by hour, Minutes the last 3 hours.
	Hourly  []Point `json:"hourly"`
	Minutes []Point `json:"minutes"`
}

// Report is the whole status: every series, with the objective.
type Report struct {
	GeneratedAt time.Time      `json:"generated_at"`
	Objective   ObjectiveJSON  `json:"objective"`
	Nodes       int            `json:"nodes"`
	Series      []SeriesReport `json:"series"`
}

// ObjectiveJSON is the objective as the report states it.
type ObjectiveJSON struct {
	Target    float64 `json:"target"`
	LatencyMS float64 `json:"latency_ms"`
	Window    string  `json:"window"`
}

// maxScanRows bounds one series' scan (30 days of minutes for 64 nodes).
const maxScanRows = 64 * 43200

// Build reads the stored rollups of every node and computes the report
// at now.
func Build(ctx context.Context, st store.SLOStore, obj Objective, now time.Time) (*Report, error) {
	if err := obj.Validate(); err != nil {
		return nil, err
	}
	span := max(obj.Window, 30*24*time.Hour)
	end := now.Unix()/60*60 + 60 // the current minute included
	from := end - int64(span/time.Second)
	rep := &Report{GeneratedAt: now.UTC(), Objective: ObjectiveJSON{Target: obj.Target,
		LatencyMS: float64(obj.Latency) / float64(time.Millisecond), Window: window(obj.Window)}}
	nodes := map[string]bool{}
	for _, series := range AllSeries {
		minutes := map[int64]*Rollup{}
		rows := 0
		err := st.ScanSLO(ctx, series, from, end, func(row store.SLORow) error {
			if rows++; rows > maxScanRows {
				return errors.New("slo: too many rollup rows")
			}
			r, err := decodeRollup(row.Value)
			if err != nil {
				return err
			}
			nodes[row.Node] = true
			m := minutes[row.Minute]
			if m == nil {
				m = &Rollup{}
				minutes[row.Minute] = m
			}
			m.Add(r)
			return nil
		})
		if err != nil {
			return nil, err
		}
		rep.Series = append(rep.Series, seriesReport(series, minutes, obj, end))
	}
	rep.Nodes = len(nodes)
	return rep, nil
}

func seriesReport(series string, minutes map[int64]*Rollup, obj Objective, end int64) SeriesReport {
	lat := obj.Latency.Seconds()
	sum := func(d time.Duration) Rollup {
		var r Rollup
		for m, x := range minutes {
			if m >= end-int64(d/time.Second) {
				r.Add(*x)
			}
		}
		return r
	}
	sr := SeriesReport{Series: series,
		Current: figures("5m", sum(5*time.Minute), lat), Hour: figures("1h", sum(time.Hour), lat),
		Day: figures("24h", sum(24*time.Hour), lat), Month: figures("30d", sum(30*24*time.Hour), lat)}
	objR := sum(obj.Window)
	sr.Objective = figures(window(obj.Window), objR, lat)
	budget := 1 - obj.Target
	sr.BudgetRemaining = 1
	if v := objR.Valid(); v > 0 {
		sr.BudgetRemaining = 1 - objR.Bad(lat)/(float64(v)*budget)
	}
	rates := map[time.Duration]float64{}
	for _, w := range BurnWindows {
		r := sum(w)
		rate := 0.0
		if v := r.Valid(); v > 0 {
			rate = r.Bad(lat) / float64(v) / budget
		}
		rates[w] = rate
		sr.Burn = append(sr.Burn, Burn{Window: window(w), Rate: rate})
	}
	for _, a := range burnAlerts {
		sr.Alerts = append(sr.Alerts, Alert{Name: a.Name, Long: window(a.Long), Short: window(a.Short), Rate: a.Rate,
			Firing: rates[a.Long] > a.Rate && rates[a.Short] > a.Rate})
	}
	sr.Hourly = points(minutes, end-30*86400, end, 3600)
	sr.Minutes = points(minutes, end-3*3600, end, 60)
	return sr
}

// points buckets the minutes of [from, end) by step seconds, oldest
// first, one point per step (empty steps included, with NaN latencies).
func points(minutes map[int64]*Rollup, from, end, step int64) []Point {
	from = from / step * step
	n := int((end - from + step - 1) / step)
	acc := make([]Rollup, n)
	for m, x := range minutes {
		if m >= from && m < end {
			acc[(m-from)/step].Add(*x)
		}
	}
	out := make([]Point, n)
	for i, r := range acc {
		f := figures("", r, 0)
		out[i] = Point{T: from + int64(i)*step, Requests: r.Count, P50: f.P50, P90: f.P90, P99: f.P99, Availability: f.Availability}
	}
	return out
}

func figures(w string, r Rollup, lat float64) Figures {
	f := Figures{Window: w, Requests: r.Count, Errors: r.Errors, ClientErrors: r.ClientErrors,
		P50: ms(r.Quantile(.5)), P90: ms(r.Quantile(.9)), P99: ms(r.Quantile(.99)),
		ErrorRate: Num(math.NaN()), Availability: Num(math.NaN()), Good: Num(math.NaN())}
	if v := r.Valid(); v > 0 {
		f.ErrorRate = Num(float64(min(r.Errors, v)) / float64(v))
		f.Availability = 1 - f.ErrorRate
		if lat > 0 {
			f.Good = Num(1 - r.Bad(lat)/float64(v))
		}
	}
	return f
}

func ms(s float64) Num { return Num(s * 1000) }

// Num is a figure that may be unknown (NaN: no requests), null in JSON.
type Num float64

// MarshalJSON writes NaN and infinities as null.
func (n Num) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(n)) || math.IsInf(float64(n), 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, float64(n), 'g', -1, 64), nil
}

// window names a duration as the report does: "5m", "6h", "30d".
func window(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	default:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
}
