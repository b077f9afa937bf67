package web

import (
	"context"
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
}

// UsageBucket is one interval's evaluation count.
type UsageBucket struct {
	Start time.Time
	Count int64
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
