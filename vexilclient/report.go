package vexilclient

import (
	"context"
	"fmt"
	"sort"
	"time"

	evalv1 "github.com/vexil-dev/vexil/proto/vexil/eval/v1"
)

// clientName is sent with each batch of counts.
const clientName = "vexil-go"

// countKey is one counted value of one flag.
type countKey struct {
	key     string
	enabled bool
	variant string
}

// reportLoop sends the counts every ReportInterval until ctx ends (Close
// sends the last batch).
func (c *Client) reportLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.ReportInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.Flush(ctx); err != nil {
				c.cfg.Logger.Warn("vexilclient: sending evaluation counts failed; kept for the next batch", "err", err)
			}
		}
	}
}

// collect moves the local states' counters into pending; states that are
// no longer in use are dropped once read.
func (c *Client) collect() {
	cur := c.local.Load()
	keep := c.counting[:0]
	for _, ls := range c.counting {
		for i, k := range ls.keys {
			base := ls.base[i]
			end := len(ls.counts)
			if i+1 < len(ls.base) {
				end = ls.base[i+1]
			}
			for slot := base; slot < end; slot++ {
				n := ls.counts[slot].Swap(0)
				if n == 0 {
					continue
				}
				ck := countKey{key: k, enabled: slot > base}
				if slot >= base+2 {
					ck.variant = ls.variants[i][slot-base-2]
				}
				if _, ok := c.pending[ck]; ok || len(c.pending) < MaxPendingCounts {
					c.pending[ck] += n
				}
			}
		}
		if ls == cur {
			keep = append(keep, ls)
		}
	}
	clear(c.counting[len(keep):])
	c.counting = keep
}

// Flush sends the counts taken since the last batch now, in batches of at
// most 1,000. Counts a batch could not deliver are kept for the next.
func (c *Client) Flush(ctx context.Context) error {
	c.mu.Lock()
	c.collect()
	pending, start := c.pending, c.pendingStart
	c.pending, c.pendingStart = map[countKey]int64{}, c.cfg.Now()
	end := c.pendingStart
	c.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	keys := make([]countKey, 0, len(pending))
	for k := range pending {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].key != keys[j].key {
			return keys[i].key < keys[j].key
		}
		if keys[i].enabled != keys[j].enabled {
			return !keys[i].enabled
		}
		return keys[i].variant < keys[j].variant
	})
	var firstErr error
	for len(keys) > 0 {
		n := min(len(keys), maxBatch)
		batch := keys[:n]
		keys = keys[n:]
		in := &evalv1.ReportEvaluationsRequest{Client: clientName, WindowStartMs: start.UnixMilli(), WindowEndMs: end.UnixMilli()}
		for _, k := range batch {
			in.Counts = append(in.Counts, &evalv1.EvaluationCount{Key: k.key, Path: string(PathLocal), Enabled: k.enabled, Variant: k.variant, Count: pending[k]})
		}
		cctx, cancel := c.callContext(ctx, c.cfg.ProjectToken)
		_, err := c.rpc().ReportEvaluations(cctx, in)
		cancel()
		if err == nil {
			continue
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("vexilclient: report evaluations: %w", err)
		}
		// Keep them for the next batch. gRPC does not retry this call
		// (it adds to counters); a batch whose answer alone was lost is
		// counted twice, which usage statistics can bear.
		c.mu.Lock()
		for _, k := range batch {
			if _, ok := c.pending[k]; ok || len(c.pending) < MaxPendingCounts {
				c.pending[k] += pending[k]
			}
		}
		if start.Before(c.pendingStart) {
			c.pendingStart = start
		}
		c.mu.Unlock()
	}
	return firstErr
}
