package projector

import (
	"context"
	"errors"
	"fmt"

	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/store"
)

// RowBackfill is one row's backfilled events of a pair: the Unix second
// of each (deduplicated by uuid by the backfill).
type RowBackfill struct {
	DistinctID string
	Secs       []int64
}

// GroupBackfill is one group row's backfilled events of a pair.
type GroupBackfill struct {
	Key  string
	Secs []int64
}

// MaxMergeRows bounds the rows of one MergeBackfill call (one store write).
const MaxMergeRows = 1000

// mergeRequest is one MergeBackfill call on its way to the applier.
type mergeRequest struct {
	team int64
	pair uint64
	rows []RowBackfill
	// groups, when set, are group rows of group type typeIndex (rows is
	// then empty).
	groups    []GroupBackfill
	typeIndex int
	done      chan error // buffered 1
}

// ErrMergeRows is returned by MergeBackfill for more than MaxMergeRows rows.
var ErrMergeRows = errors.New("projector: too many rows in one merge")

// MergeBackfill hands a backfill's counts of team's pair to the running
// projector, the counters' one writer, which merges them into the rows
// (counters.Row.Merge) in a write of their own, between two batches, and
// returns once that write is durable (and OnCommit returned). A row whose
// backfill of pair was merged before is left as is, so a backfill resumed
// after a crash counts nothing twice; a distinct id without a row (no
// person) is skipped, as the live path skips its events. It waits for a
// running projector until ctx ends.
func (p *Projector) MergeBackfill(ctx context.Context, team int64, pair uint64, rows []RowBackfill) error {
	if len(rows) > MaxMergeRows {
		return fmt.Errorf("%w: %d, at most %d", ErrMergeRows, len(rows), MaxMergeRows)
	}
	return p.sendMerge(ctx, &mergeRequest{team: team, pair: pair, rows: rows, done: make(chan error, 1)})
}

// MergeGroupBackfill is MergeBackfill for the group rows of group type
// typeIndex (group-aggregated behaviour): a group whose backfill of pair
// was merged before is left as is, a group without a record is skipped
// (as the live path skips it), and the pair must be one the team's set
// counts on that group type (Set.GroupEventPairs), else nothing is merged.
func (p *Projector) MergeGroupBackfill(ctx context.Context, team int64, typeIndex int, pair uint64, groups []GroupBackfill) error {
	if len(groups) > MaxMergeRows {
		return fmt.Errorf("%w: %d, at most %d", ErrMergeRows, len(groups), MaxMergeRows)
	}
	if err := store.CheckTypeIndex(typeIndex); err != nil {
		return err
	}
	return p.sendMerge(ctx, &mergeRequest{team: team, pair: pair, groups: groups, typeIndex: typeIndex, done: make(chan error, 1)})
}

func (p *Projector) sendMerge(ctx context.Context, m *mergeRequest) error {
	select {
	case p.merges <- m:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-m.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// merge applies a merge request to the overlay.
func (ov *overlay) merge(ctx context.Context, m *mergeRequest) error {
	var tracked func(uint64) bool
	var set *flags.Set
	if ov.events != nil {
		if set = ov.events(m.team); set != nil {
			tracked = set.TracksPair
		}
	}
	if tracked == nil {
		return nil // the team counts nothing now: nothing to merge into
	}
	if m.groups != nil {
		tracked = groupTracked(set.GroupEventPairs(), m.typeIndex)
		for _, g := range m.groups {
			gk := store.GroupKey{Team: m.team, TypeIndex: m.typeIndex, Key: g.Key}
			ce, err := ov.groupCounterRow(ctx, gk)
			if err != nil {
				return err
			}
			if ce == nil {
				continue
			}
			if ce.row.Merge(m.pair, g.Secs, ov.now, tracked) && !ce.dirty {
				ce.dirty = true
				ov.dirtyGroupCounters = append(ov.dirtyGroupCounters, gk)
			}
		}
		return nil
	}
	for _, r := range m.rows {
		dk := store.DistinctKey{Team: m.team, DistinctID: r.DistinctID}
		ce, err := ov.counterRow(ctx, dk)
		if err != nil {
			return err
		}
		if ce == nil {
			continue
		}
		if ce.row.Merge(m.pair, r.Secs, ov.now, tracked) && !ce.dirty {
			ce.dirty = true
			ov.dirtyCounters = append(ov.dirtyCounters, dk)
		}
	}
	return nil
}
