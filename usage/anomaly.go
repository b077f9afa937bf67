package usage

import (
	"fmt"
	"maps"
	"math"
	"slices"
)

// The evaluation anomaly rule compares a flag's last complete hour with
// its own baseline, the BaselineHours hours before it (hourly rows summed
// over every node):
//
//   - evaluation_rate_shift: the baseline's mean μ is at least
//     MinBaselineRate evaluations an hour, the hour's count c is at least
//     RateFactor × μ or at most μ / RateFactor, and |c − μ| ≥ 4√μ (four
//     Poisson standard deviations, so a quiet flag's noise never fires).
//   - variant_split_shift: the baseline has at least MinSplitBaseline
//     answers and the hour at least MinSplitHour, and the total variation
//     distance between the two value distributions (½ Σ |p − q| over
//     variants, or true/false) is at least SplitDistance.
//   - error_rate_spike: the hour has at least MinErrors errors and an
//     error rate of at least max(MinErrorRate, ErrorFactor × the
//     baseline's error rate).
const (
	BaselineHours    = 24
	MinBaselineRate  = 20.0
	RateFactor       = 3.0
	MinSplitBaseline = 200
	MinSplitHour     = 100
	SplitDistance    = 0.2
	MinErrors        = 10
	MinErrorRate     = 0.05
	ErrorFactor      = 3.0
)

// AnomalyRule applies the rule to one hour's counts and its baseline
// hours; the findings carry Kind, Message and Details (the caller fills
// the flag and the time).
func AnomalyRule(cur *Counts, baseline []*Counts) []Finding {
	var base Counts
	for _, b := range baseline {
		base.Merge(b)
	}
	var out []Finding
	hours := float64(max(len(baseline), 1))
	mu := float64(base.Evaluations) / hours
	c := float64(cur.Evaluations)
	if mu >= MinBaselineRate && (c >= RateFactor*mu || c <= mu/RateFactor) && math.Abs(c-mu) >= 4*math.Sqrt(mu) {
		out = append(out, Finding{Kind: KindRateShift,
			Message: fmt.Sprintf("%.0f evaluations in the last hour against %.1f an hour over the %d before (x%.2f)", c, mu, len(baseline), c/mu),
			Details: map[string]float64{"evaluations": c, "baseline_per_hour": mu, "ratio": c / mu}})
	}
	bv, cv := sumValues(base.Values), sumValues(cur.Values)
	if bv >= MinSplitBaseline && cv >= MinSplitHour {
		tvd := 0.0
		keys := slices.Sorted(maps.Keys(unionKeys(base.Values, cur.Values)))
		d := map[string]float64{}
		for _, k := range keys {
			p, q := float64(base.Values[k])/float64(bv), float64(cur.Values[k])/float64(cv)
			tvd += math.Abs(p-q) / 2
			d["baseline_share."+k], d["share."+k] = p, q
		}
		if tvd >= SplitDistance {
			d["distance"] = tvd
			out = append(out, Finding{Kind: KindVariantShift,
				Message: fmt.Sprintf("the split of answers moved by %.0f%% (total variation distance) against the %d hours before", tvd*100, len(baseline)),
				Details: d})
		}
	}
	if cur.Errors >= MinErrors && cur.Evaluations > 0 {
		rate := float64(cur.Errors) / c
		baseRate := 0.0
		if base.Evaluations > 0 {
			baseRate = float64(base.Errors) / float64(base.Evaluations)
		}
		if rate >= max(MinErrorRate, ErrorFactor*baseRate) {
			out = append(out, Finding{Kind: KindErrorSpike,
				Message: fmt.Sprintf("%.1f%% of evaluations failed in the last hour (%d), against %.2f%% before", rate*100, cur.Errors, baseRate*100),
				Details: map[string]float64{"errors": float64(cur.Errors), "error_rate": rate, "baseline_error_rate": baseRate}})
		}
	}
	return out
}

func sumValues(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

func unionKeys(a, b map[string]uint64) map[string]struct{} {
	out := map[string]struct{}{}
	for k := range a {
		out[k] = struct{}{}
	}
	for k := range b {
		out[k] = struct{}{}
	}
	return out
}
