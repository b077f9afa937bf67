package results

import (
	"encoding/binary"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/flags/counters"
)

// Subject is one stored row or group to compute: its key, the version and
// revision of its properties, and the properties decoded as the evaluation
// service decodes them (numbers as json.Number).
type Subject struct {
	// Type is Persons for a row, else the group type index.
	Type     int
	Key      string
	Version  int64
	Revision uint64
	Props    map[string]any
	// Events are a row's or group's counted events (RowEvents), nil for
	// none. A group's are read by behavioural filters under conditions
	// aggregating on its type.
	Events flags.EventHistory
}

// RowRevision is the revision a row's stored results are computed against
// and checked with: the properties' revision when the row has no
// behavioural counters, else their xxhash64 folded with the counters', so
// that a counted event makes the stored results stale until they are
// computed again (the projector's commit triggers that).
func RowRevision(revision uint64, ctrs []byte) uint64 {
	if len(ctrs) == 0 {
		return revision
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], revision)
	h := xxhash.New()
	h.Write(b[:])
	h.Write(ctrs)
	return h.Sum64()
}

// RowEvents decodes a row's counters for the engine: nil when it has none,
// and when they do not decode (as no events, on every path alike).
func RowEvents(ctrs []byte) flags.EventHistory {
	if len(ctrs) == 0 {
		return nil
	}
	r, err := counters.Decode(ctrs)
	if err != nil {
		return nil
	}
	return r
}

// ImplicitProp is the property a subject's key stands for when its stored
// properties lack it.
func ImplicitProp(subjectType int) string {
	if subjectType == Persons {
		return "distinct_id"
	}
	return "$group_key"
}

// Compute evaluates the plan's flags stored on s's subject type and appends
// their encoding to dst. It returns the earliest valid_until of the stored
// results (zero for none) and how many entries it stored. scratch is reused
// for the evaluation.
//
// With only non-nil and old computed against s's version and revision, it
// evaluates only those flags (and the old entries that expired or are no
// longer current) and keeps, from old, the entries of the other flags whose
// stamp is still current. A run for one changed flag thus costs the
// evaluation of that flag's stamp group per row (stampGroup flags at
// most), not the team's. When old is absent, corrupt or computed against another
// version of the subject, it computes every flag.
func Compute(dst []byte, set *flags.Set, plan *Plan, s Subject, now time.Time, only []string, old []byte, scratch *Scratch) ([]byte, time.Time, int) {
	keys := plan.Keys(s.Type)
	scratch.kept = scratch.kept[:0]
	if only != nil && len(old) > 0 {
		h, entries, err := Decode(old, scratch.old, plan)
		scratch.old = entries
		if err == nil && h.Version == s.Version && h.Revision == s.Revision {
			scratch.only, scratch.onlyIDs = scratch.only[:0], scratch.onlyIDs[:0]
			for _, k := range only {
				if fp, ok := plan.Flag(k); ok && fp.Precomputable && fp.Subject == s.Type {
					scratch.only = append(scratch.only, k)
					scratch.onlyIDs = append(scratch.onlyIDs, fp.ID)
				}
			}
			for _, e := range entries {
				if slices.Contains(scratch.onlyIDs, e.FlagID) {
					continue
				}
				fp, ok := plan.byID(e.FlagID)
				if !ok || !fp.Precomputable || fp.Subject != s.Type {
					continue
				}
				if fp.Stamp != e.Stamp || !e.ValidUntil.IsZero() && !now.Before(e.ValidUntil) {
					// Stale (another flag of its stamp group changed) or
					// expired: evaluate it again now rather than keep it.
					scratch.only = append(scratch.only, fp.Key)
					scratch.onlyIDs = append(scratch.onlyIDs, fp.ID)
					continue
				}
				scratch.kept = append(scratch.kept, e)
			}
			keys = scratch.only
		}
	}
	c := &scratch.ctx
	*c = flags.Context{Now: now}
	if s.Type == Persons {
		c.DistinctID = s.Key
		c.PersonProperties = s.Props
		c.Events = s.Events
	} else {
		if cap(scratch.groups) <= s.Type {
			scratch.groups = make([]flags.Group, s.Type+1)
		}
		g := scratch.groups[:s.Type+1]
		clear(g)
		g[s.Type] = flags.Group{Key: s.Key, Properties: s.Props, Events: s.Events}
		c.Groups = g
		c.PersonProperties = map[string]any{}
	}
	scratch.results = scratch.results[:0]
	if len(keys) > 0 { // nil keys would mean every flag
		scratch.results = set.AppendEvaluate(scratch.results, c, keys)
	}
	scratch.entries = append(scratch.entries[:0], scratch.kept...)
	var earliest time.Time
	for _, e := range scratch.kept {
		if !e.ValidUntil.IsZero() && (earliest.IsZero() || e.ValidUntil.Before(earliest)) {
			earliest = e.ValidUntil
		}
	}
	for i := range scratch.results {
		r := &scratch.results[i]
		fp, ok := plan.Flag(r.Key)
		if !ok || !fp.Precomputable || fp.Subject != s.Type {
			continue // a dependency evaluated on the way
		}
		cp, ok := r.Compact()
		if !ok {
			continue
		}
		if !cp.ValidUntil.IsZero() && (earliest.IsZero() || cp.ValidUntil.Before(earliest)) {
			earliest = cp.ValidUntil
		}
		scratch.entries = append(scratch.entries, Entry{FlagID: fp.ID, Stamp: fp.Stamp, Compact: cp})
	}
	implicit, present := s.Props[ImplicitProp(s.Type)]
	consistent := !present
	if str, ok := implicit.(string); ok && str == s.Key {
		consistent = true
	}
	h := Header{Version: s.Version, Revision: s.Revision, KeyConsistent: consistent}
	dst = Append(dst, h, scratch.entries)
	clear(scratch.results)
	return dst, earliest, len(scratch.entries)
}

// Scratch is reusable memory for Compute; the zero value is ready.
type Scratch struct {
	ctx     flags.Context
	groups  []flags.Group
	results []flags.Result
	entries []Entry
	old     []Entry
	kept    []Entry
	only    []string
	onlyIDs []int64
}
