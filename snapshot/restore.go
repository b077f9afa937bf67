package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/store"
)

// RestoreOptions configures Restore.
type RestoreOptions struct {
	// BatchSize is the number of records per store write. Default 1000.
	BatchSize int
	// Progress, when set, is called after each store write with the
	// records restored so far and the manifest's total.
	Progress func(done, total int64)
	// Logger receives structured progress. Default slog.Default().
	Logger *slog.Logger
}

var errStop = errors.New("stop")

// Empty reports whether s holds no entity.
func Empty(ctx context.Context, s store.Store) (bool, error) {
	empty := true
	err := s.Dump(ctx, func(store.Entity) error { empty = false; return errStop })
	if err != nil && !errors.Is(err, errStop) {
		return false, err
	}
	return empty, nil
}

// Restore loads the snapshot in dir into dst, which must be empty. It
// verifies every part's checksum, size and row count before it writes
// anything, so a corrupt or truncated snapshot is refused with dst
// untouched; each part is checked again as it is read. An error after
// writing began leaves dst partly written: the caller must not present it
// as restored (the command marks the data directory as incomplete until
// Restore returned nil).
func Restore(ctx context.Context, dir string, dst store.Store, o RestoreOptions) (*Manifest, error) {
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	m, err := Verify(ctx, dir)
	if err != nil {
		return nil, err
	}
	empty, err := Empty(ctx, dst)
	if err != nil {
		return nil, fmt.Errorf("snapshot: restore: %w", err)
	}
	if !empty {
		return nil, errcode.New(errcode.FailedPrecondition, "snapshot: restore: the target store is not empty")
	}
	r := &restorer{ctx: ctx, dst: dst, o: o, total: m.Rows(), start: time.Now()}
	steps := []func() error{
		func() error {
			return ForEach(ctx, dir, m, TablePersons, func(recs []PersonRecord) error {
				for i := range recs {
					p := new(store.Person)
					if err := p.UnmarshalBinary(slices.Clone(recs[i].State)); err != nil {
						return fmt.Errorf("person %d/%q: %w", recs[i].Team, recs[i].PersonID, err)
					}
					r.b.PutPerson(p)
				}
				return r.add(len(recs))
			})
		},
		func() error {
			return ForEach(ctx, dir, m, TableMappings, func(recs []MappingRecord) error {
				for _, x := range recs {
					r.b.PutMapping(store.Mapping{Team: x.Team, DistinctID: x.DistinctID, PersonID: x.PersonID, Version: x.Version})
				}
				return r.add(len(recs))
			})
		},
		func() error {
			return ForEach(ctx, dir, m, TableIndex, func(recs []IndexRecord) error {
				for _, x := range recs {
					r.b.PutIndex(store.IndexEntry{Team: x.Team, PersonID: x.PersonID, DistinctID: x.DistinctID})
				}
				return r.add(len(recs))
			})
		},
		func() error {
			return ForEach(ctx, dir, m, TableRows, func(recs []RowRecord) error {
				for _, x := range recs {
					r.b.PutRow(&store.Row{Team: x.Team, DistinctID: x.DistinctID, PersonID: x.PersonID,
						PersonVersion: x.PersonVersion, Revision: x.Revision, Properties: []byte(x.Properties)})
					if x.ResultsStamp > 0 {
						r.b.SetResults(x.Team, x.DistinctID, slices.Clone(x.Results), x.ResultsStamp)
					}
					if len(x.Counters) > 0 {
						r.b.SetCounters(x.Team, x.DistinctID, slices.Clone(x.Counters))
					}
				}
				return r.add(len(recs))
			})
		},
		func() error {
			return ForEach(ctx, dir, m, TableGroups, func(recs []GroupRecord) error {
				for _, x := range recs {
					g := new(store.Group)
					if err := g.UnmarshalBinary(slices.Clone(x.State)); err != nil {
						return fmt.Errorf("group %d/%d/%q: %w", x.Team, x.TypeIndex, x.GroupKey, err)
					}
					r.b.PutGroup(g)
					if g.ResultsStamp > 0 {
						r.b.SetGroupResults(g.Team, g.TypeIndex, g.Key, g.Results, g.ResultsStamp)
					}
				}
				return r.add(len(recs))
			})
		},
		func() error {
			return ForEach(ctx, dir, m, TableGroupTypes, func(recs []GroupTypeRecord) error {
				for _, x := range recs {
					r.b.PutGroupType(store.GroupType{Team: x.Team, Index: int(x.Index), Name: x.Name})
				}
				return r.add(len(recs))
			})
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, fmt.Errorf("snapshot: restore %s: %w (the target store is incomplete)", dir, err)
		}
		if err := r.flush(); err != nil {
			return nil, fmt.Errorf("snapshot: restore %s: %w (the target store is incomplete)", dir, err)
		}
	}
	o.Logger.Info("snapshot restored", "dir", dir, "rows", r.done, "cut_sequence", m.CutSequence,
		"elapsed", time.Since(r.start).Round(time.Millisecond))
	return m, nil
}

type restorer struct {
	ctx     context.Context
	dst     store.Store
	o       RestoreOptions
	b       store.Batch
	pending int
	done    int64
	total   int64
	start   time.Time
}

// add counts n records put into the batch and writes it when full. The
// person and group records are decoded into fresh values; rows' byte
// slices are copied, because the reader reuses its buffers.
func (r *restorer) add(n int) error {
	r.pending += n
	if r.pending < r.o.BatchSize {
		return nil
	}
	return r.flush()
}

func (r *restorer) flush() error {
	if r.pending == 0 {
		return nil
	}
	if err := r.dst.Apply(r.ctx, &r.b); err != nil {
		return err
	}
	r.done += int64(r.pending)
	r.pending = 0
	r.b.Reset()
	if r.o.Progress != nil {
		r.o.Progress(r.done, r.total)
	}
	return nil
}
