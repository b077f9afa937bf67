package projector

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cespare/xxhash/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/projector/ingest"
)

// Backfill errors.
var (
	// ErrNoPairStarts: the projector records no pair starts
	// (Config.PairStarts), so there is no boundary between live and
	// backfilled counts.
	ErrNoPairStarts = errors.New("projector: backfill needs Config.PairStarts")
	// ErrNotTracked: the projector's set of the team does not track the
	// pair (yet): the cohort's change notice has not reached it.
	ErrNotTracked = errors.New("projector: pair not tracked")
)

// Backfill bounds.
const (
	// DefaultBackfillMaxEvents bounds the events one pass of a backfill
	// keeps in memory (some 40 bytes each); more, and the distinct ids are
	// split in more passes, each reading the stream again.
	DefaultBackfillMaxEvents = 2_000_000
	// maxBackfillPasses bounds the passes (2^n splits).
	maxBackfillPasses = 1024
)

// BackfillOptions tune a backfill; the zero value is the default.
type BackfillOptions struct {
	// MaxEvents bounds the events a pass keeps (DefaultBackfillMaxEvents).
	MaxEvents int
	// ChunkRows is the rows per merge (MaxMergeRows).
	ChunkRows int
	// Progress, when set, is called after each merge and at the end of
	// each pass's read.
	Progress func(BackfillProgress)
}

// BackfillProgress is where a backfill stands.
type BackfillProgress struct {
	// Pass counts from 0 to Passes-1; each reads the stream up to End.
	Pass, Passes int
	// Read is the last stream sequence read in this pass, End the last
	// it reads (the highest pair start, less one).
	Read, End uint64
	// Events counted (after dedup by uuid) and Rows merged, all passes.
	Events, Rows int
}

// Fraction is the share done, 0..1.
func (p BackfillProgress) Fraction() float64 {
	if p.Passes == 0 || p.End == 0 {
		return 0
	}
	return (float64(p.Pass) + float64(min(p.Read, p.End))/float64(p.End)) / float64(p.Passes)
}

// Backfill counts, for pairs of team, the events the ingest stream still
// retains from before each pair's start (PairStarts: the sequence from
// which the projector counts the pair live), and merges them into the rows
// through the running projector (MergeBackfill). The group rows of each
// group type that counts a pair (group-aggregated behaviour) are filled
// the same way from the pair's start on that type (MergeGroupBackfill).
// Together with the live counts that is every retained event counted
// once, as if the pair had been tracked from the start; live traffic
// continues meanwhile.
//
// The stream is read with an ordered consumer on the team's event subject,
// in passes over a share of the distinct ids (their hash) so that a pass
// holds at most MaxEvents events. Each row's merge is idempotent
// (counters.Row.Merge), so Backfill may be run again after a crash, or
// twice, and counts nothing twice. A pair the projector has not started
// tracking gets its start here, as the stream's next sequence, when the
// projector's set (Config.Events) already tracks it: an event after that
// sequence is applied by the projector under that set or a newer one.
func (p *Projector) Backfill(ctx context.Context, team int64, pairs []uint64, opt BackfillOptions) error {
	if p.cfg.PairStarts == nil {
		return ErrNoPairStarts
	}
	if opt.MaxEvents <= 0 {
		opt.MaxEvents = DefaultBackfillMaxEvents
	}
	if opt.ChunkRows <= 0 || opt.ChunkRows > MaxMergeRows {
		opt.ChunkRows = MaxMergeRows
	}
	if p.cfg.Events == nil {
		return fmt.Errorf("%w: the projector counts no events", ErrNotTracked)
	}
	set := p.cfg.Events(team)
	for _, id := range pairs {
		if set == nil || !set.TracksPair(id) {
			return fmt.Errorf("%w: team %d pair %x", ErrNotTracked, team, id)
		}
	}
	stream, err := p.js.Stream(ctx, p.cfg.Stream)
	if err != nil {
		return fmt.Errorf("projector: backfill: stream %s: %w", p.cfg.Stream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("projector: backfill: stream info: %w", err)
	}
	starts := make(map[uint64]uint64, len(pairs))
	groupStarts := map[groupPair]uint64{}
	var end uint64
	for _, id := range pairs {
		s, err := p.cfg.PairStarts.Start(ctx, team, id, info.State.LastSeq+1)
		if err != nil {
			return err
		}
		starts[id] = s
		if s > 0 {
			end = max(end, s-1)
		}
		// The group rows of each type that counts the pair, from their
		// own start.
		for gt, gp := range set.GroupEventPairs() {
			if _, ok := slices.BinarySearch(gp, id); !ok {
				continue
			}
			s, err := p.cfg.PairStarts.Start(ctx, team, groupPairID(id, gt), info.State.LastSeq+1)
			if err != nil {
				return err
			}
			groupStarts[groupPair{gt, id}] = s
			if s > 0 {
				end = max(end, s-1)
			}
		}
	}
	pr := BackfillProgress{End: end, Passes: 1}
	if end == 0 || end < info.State.FirstSeq {
		if opt.Progress != nil {
			pr.Read = end
			opt.Progress(pr)
		}
		return nil // nothing retained from before the pairs' starts
	}
	subject := ingest.Subject(p.cfg.Namespace, ingest.Events, team)
passes:
	for parts := 1; ; parts *= 2 {
		if parts > maxBackfillPasses {
			return fmt.Errorf("projector: backfill: more than %d passes of %d events", maxBackfillPasses, opt.MaxEvents)
		}
		pr.Passes = parts
		for part := range parts {
			pr.Pass, pr.Read = part, 0
			acc, ok, err := p.backfillPass(ctx, stream, subject, team, starts, groupStarts, end, uint64(part), uint64(parts), opt, &pr)
			if err != nil {
				return err
			}
			if !ok {
				continue passes // too many events: split the ids more finely
			}
			if err := p.mergeAll(ctx, team, pairs, acc, opt, &pr); err != nil {
				return err
			}
		}
		return nil
	}
}

// backfillRow is a distinct id's or a group's events read by a pass.
type backfillRow struct {
	seen map[uint64]struct{} // uuid hashes: an event counts once
	secs map[uint64][]int64  // by pair
}

// add counts the event uuid at sec for pairs once; it reports whether the
// event is new to the row.
func (r *backfillRow) add(uuid uint64, sec int64, pairs []uint64) bool {
	if _, dup := r.seen[uuid]; dup {
		return false
	}
	r.seen[uuid] = struct{}{}
	for _, id := range pairs {
		r.secs[id] = append(r.secs[id], sec)
	}
	return true
}

func newBackfillRow() *backfillRow {
	return &backfillRow{seen: map[uint64]struct{}{}, secs: map[uint64][]int64{}}
}

// backfillAcc is what a pass read: the persons' rows by distinct id and
// the groups' rows.
type backfillAcc struct {
	rows   map[string]*backfillRow
	groups map[eventGroup]*backfillRow
}

// groupShare is the hash that assigns a group row to a pass.
func groupShare(g eventGroup) uint64 {
	return xxhash.Sum64String(g.Key) + uint64(g.TypeIndex)
}

// backfillPass reads the stream up to end and returns the counts of the
// distinct ids and groups whose hash is part modulo parts; ok false when
// they hold more than opt.MaxEvents events. An event counts for a person's
// row below its pair's start, and for a group row of its $groups below the
// pair's start on that group type.
func (p *Projector) backfillPass(ctx context.Context, stream jetstream.Stream, subject string, team int64, starts map[uint64]uint64, groupStarts map[groupPair]uint64, end, part, parts uint64, opt BackfillOptions, pr *BackfillProgress) (*backfillAcc, bool, error) {
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, false, fmt.Errorf("projector: backfill: consumer: %w", err)
	}
	acc := &backfillAcc{rows: map[string]*backfillRow{}, groups: map[eventGroup]*backfillRow{}}
	ci, err := cons.Info(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("projector: backfill: consumer info: %w", err)
	}
	if ci.NumPending == 0 {
		return acc, true, nil
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, false, fmt.Errorf("projector: backfill: read: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	set := p.cfg.Events(team)
	n := 0
	var matched, mine []uint64
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil, false, ctx.Err()
			}
			return nil, false, fmt.Errorf("projector: backfill: read: %w", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return nil, false, fmt.Errorf("projector: backfill: metadata: %w", err)
		}
		seq := md.Sequence.Stream
		if seq > end {
			break
		}
		pr.Read = seq
		env, err := ingest.Decode(p.cfg.Namespace, msg.Subject(), msg.Headers().Get(ingest.HeaderContentType), msg.Data(), p.cfg.Limits)
		if ev := env.GetEvent(); err == nil && ev != nil && set != nil && set.TracksEvent(ev.Event) {
			props, err := eventProperties(ev.Properties, set.EventPropertyKeys(ev.Event))
			if err == nil {
				at := ev.Timestamp.AsTime()
				matched = set.MatchEvent(ev.Event, props, at, matched[:0])
				h := xxhash.Sum64String(ev.Uuid)
				counted := false
				if xxhash.Sum64String(ev.DistinctId)%parts == part {
					mine = append(mine[:0], matched...)
					mine = slices.DeleteFunc(mine, func(id uint64) bool { s, ok := starts[id]; return !ok || seq >= s })
					if len(mine) > 0 {
						r := acc.rows[ev.DistinctId]
						if r == nil {
							r = newBackfillRow()
							acc.rows[ev.DistinctId] = r
						}
						counted = r.add(h, at.Unix(), mine) || counted
					}
				}
				if len(groupStarts) > 0 {
					for _, g := range eventGroups(ev, set) {
						if groupShare(g)%parts != part {
							continue
						}
						mine = append(mine[:0], matched...)
						mine = slices.DeleteFunc(mine, func(id uint64) bool {
							s, ok := groupStarts[groupPair{g.TypeIndex, id}]
							return !ok || seq >= s
						})
						if len(mine) == 0 {
							continue
						}
						r := acc.groups[g]
						if r == nil {
							r = newBackfillRow()
							acc.groups[g] = r
						}
						counted = r.add(h, at.Unix(), mine) || counted
					}
				}
				if counted {
					if n++; n > opt.MaxEvents {
						return nil, false, nil
					}
					pr.Events++
				}
			}
		}
		if md.NumPending == 0 || seq == end {
			break
		}
	}
	if opt.Progress != nil {
		pr.Read = end
		opt.Progress(*pr)
	}
	return acc, true, nil
}

// mergeAll hands a pass's counts to the projector, pair by pair, in
// chunks: the persons' rows, then the groups' rows of each group type.
func (p *Projector) mergeAll(ctx context.Context, team int64, pairs []uint64, acc *backfillAcc, opt BackfillOptions, pr *BackfillProgress) error {
	ids := make([]string, 0, len(acc.rows))
	for id := range acc.rows {
		ids = append(ids, id)
	}
	slices.Sort(ids) // a resumed backfill redoes the same chunks first
	groups := make([]eventGroup, 0, len(acc.groups))
	for g := range acc.groups {
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b eventGroup) int {
		if c := cmp.Compare(a.TypeIndex, b.TypeIndex); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	for _, pair := range pairs {
		var chunk []RowBackfill
		flush := func() error {
			if len(chunk) == 0 {
				return nil
			}
			if err := p.MergeBackfill(ctx, team, pair, chunk); err != nil {
				return err
			}
			pr.Rows += len(chunk)
			chunk = chunk[:0]
			if opt.Progress != nil {
				opt.Progress(*pr)
			}
			return nil
		}
		for _, id := range ids {
			secs := acc.rows[id].secs[pair]
			if len(secs) == 0 {
				continue
			}
			chunk = append(chunk, RowBackfill{DistinctID: id, Secs: secs})
			if len(chunk) == opt.ChunkRows {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}
		var gchunk []GroupBackfill
		gt := -1
		gflush := func() error {
			if len(gchunk) == 0 {
				return nil
			}
			if err := p.MergeGroupBackfill(ctx, team, gt, pair, gchunk); err != nil {
				return err
			}
			pr.Rows += len(gchunk)
			gchunk = gchunk[:0]
			if opt.Progress != nil {
				opt.Progress(*pr)
			}
			return nil
		}
		for _, g := range groups {
			secs := acc.groups[g].secs[pair]
			if len(secs) == 0 {
				continue
			}
			if g.TypeIndex != gt || len(gchunk) == opt.ChunkRows {
				if err := gflush(); err != nil {
					return err
				}
				gt = g.TypeIndex
			}
			gchunk = append(gchunk, GroupBackfill{Key: g.Key, Secs: secs})
		}
		if err := gflush(); err != nil {
			return err
		}
	}
	return nil
}
