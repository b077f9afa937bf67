package results

import "time"

// Source says which path answered a flag, and why live when live. Stable
// names: they label metrics and the debug header.
type Source uint8

// Sources.
const (
	Stored           Source = iota // the stored result, current
	NotPrecomputable               // the plan keeps the flag live
	Absent                         // no stored result (never computed, or no row)
	StaleRow                       // the row changed since it was computed
	StaleFlag                      // the definitions changed since
	Expired                        // past its valid_until
	Overridden                     // the request overrides a property it reads
	NoSubject                      // the request names no row of its subject
	Forced                         // the service or the request asked for live evaluation
	numSources
)

var sourceNames = [numSources]string{"stored", "live_not_precomputable", "live_absent", "live_stale_row",
	"live_stale_flag", "live_expired", "live_override", "live_no_subject", "live_forced"}

func (s Source) String() string {
	if s < numSources {
		return sourceNames[s]
	}
	return "unknown"
}

// Sources lists every Source, for metrics.
func Sources() []Source {
	out := make([]Source, numSources)
	for i := range out {
		out[i] = Source(i)
	}
	return out
}

// Stale reports whether a newer computation would turn this miss into a
// hit (the row is worth recomputing).
func (s Source) Stale() bool { return s == Absent || s == StaleRow || s == StaleFlag || s == Expired }

// Stored results of one row (or group) as read, checked against the row it
// came with.
type Row struct {
	Entries []Entry
	// Current says the results were computed against the row's present
	// version and revision.
	Current       bool
	KeyConsistent bool
	// Key is the row's key: the distinct id, or the group key.
	Key string
	// ImplicitProp is "distinct_id" for rows, "$group_key" for groups.
	ImplicitProp string
	// hint is where the next Find starts: flags are looked up in the order
	// they were written.
	hint int
}

// Load decodes stored results into r for the row (version, revision, key),
// their stamps checked against current (the Plan the request is answered
// with). A decoding failure leaves r with no entries (every flag live).
func (r *Row) Load(b []byte, current Stamper, version int64, revision uint64, key, implicitProp string) {
	r.Key, r.ImplicitProp, r.hint = key, implicitProp, 0
	r.Current, r.KeyConsistent = false, false
	if len(b) == 0 {
		r.Entries = r.Entries[:0]
		return
	}
	h, entries, err := Decode(b, r.Entries, current)
	r.Entries = entries
	if err != nil {
		return
	}
	r.Current = h.Version == version && h.Revision == revision
	r.KeyConsistent = h.KeyConsistent
}

// Find returns the entry of a flag.
func (r *Row) Find(flagID int64) (*Entry, bool) {
	n := len(r.Entries)
	for j := range n {
		i := (r.hint + j) % n
		if r.Entries[i].FlagID == flagID {
			r.hint = i + 1
			return &r.Entries[i], true
		}
	}
	return nil, false
}

// Check decides whether r answers flag fp for a request with the given
// property overrides at now; on Stored it returns the entry.
func (r *Row) Check(fp *FlagPlan, now time.Time, overrides map[string]any) (*Entry, Source) {
	if !fp.Precomputable {
		return nil, NotPrecomputable
	}
	if len(r.Entries) == 0 {
		return nil, Absent
	}
	if !r.Current {
		return nil, StaleRow
	}
	e, ok := r.Find(fp.ID)
	switch {
	case !ok:
		return nil, Absent
	case e.Stamp != fp.Stamp:
		return nil, StaleFlag
	case !e.ValidUntil.IsZero() && !now.Before(e.ValidUntil):
		return nil, Expired
	}
	if len(overrides) > 0 {
		for _, k := range fp.Reads {
			v, ok := overrides[k]
			if !ok {
				continue
			}
			if k == r.ImplicitProp && r.KeyConsistent {
				if s, ok := v.(string); ok && s == r.Key {
					continue
				}
			}
			return nil, Overridden
		}
	}
	return e, Stored
}
