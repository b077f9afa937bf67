// Package results is what the precompute worker and the evaluation service
// share about stored flag results: the Plan (which flags can be stored, on
// which rows, and the stamp a stored result must carry to be current) and
// the compact binary encoding of a row's results. It is pure: no store, no
// NATS.
//
// A stored result is used only when docs/design.md §2 holds, checked by Check:
// the stamp of its flag is the current one (the stamp hashes everything of
// the definitions the result depends on: the flag, the cohorts it reads, the
// flags it depends on, the team's matching settings), the row's version and
// revision are the ones it was computed against, it has not passed its
// valid_until, and the request overrides no property the flag reads.
package results

import (
	"encoding/binary"
	"encoding/json"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/vexil-dev/vexil/flags"
)

// Persons is the Subject of a flag stored on person rows.
const Persons = -1

// Why a flag is not precomputable. Stable codes: they label metrics and
// appear in the management API.
const (
	WhyInvalid        = "invalid_definition"     // it always fails
	WhyContinuity     = "experience_continuity"  // buckets on the request's hash key
	WhyDevice         = "device_bucketing"       // buckets on the request's device_id
	WhyMixed          = "mixed_aggregation"      // persons and groups, or two group types
	WhyOverrides      = "request_overrides"      // overrides keyed by what the request names
	WhyOtherSubject   = "reads_other_subject"    // properties of another subject than its rows
	WhyCohort         = "non_property_cohort"    // static membership (or any cohort on a group flag)
	WhyRequestOnly    = "request_only_property"  // a property only requests carry
	WhyDependency     = "dependency_not_stored"  // depends on a flag evaluated live
	WhyUnknownCohort  = "unknown_cohort"         // reads a cohort the team lacks
	WhyNoGroupTypeSet = "group_type_not_defined" // aggregates on an unnamed group type
)

// FlagPlan is one flag's entry in a Plan.
type FlagPlan struct {
	Key string
	ID  int64
	// Stamp identifies everything of the definitions the flag's result
	// depends on; a stored result is current only with this stamp.
	Stamp uint64
	// Precomputable says its result can be decided from one stored row:
	// Subject's row (Persons, or a group type index). Why says why not.
	Precomputable bool
	Subject       int
	Why           string
	// Reads are the property keys of the subject the flag reads (directly,
	// through cohorts and through dependencies): a request overriding one
	// of them makes the stored result unusable for that request.
	Reads []string
}

// Plan says, for a compiled definition set, which flags are stored where.
// It is immutable.
type Plan struct {
	// Flags in evaluation order.
	Flags   []FlagPlan
	byKey   map[string]int
	idIndex map[int64]int
	// subjects lists the precomputable flag keys per subject, in
	// evaluation order.
	subjects map[int][]string
	// Fingerprint changes when any precomputable flag's stamp or subject
	// changes: a full recompute is due.
	Fingerprint uint64
}

// Options tunes NewPlan.
type Options struct {
	// RequestOnly lists person property keys that only requests carry (a
	// trailing * matches a prefix). A flag reading one is not stored.
	// Nil means DefaultRequestOnly.
	RequestOnly []string
}

// DefaultRequestOnly are properties PostHog derives from the request
// itself (the caller's IP, the page), which no stored person holds.
var DefaultRequestOnly = []string{"$geoip_*", "$current_url", "$pathname", "$host", "$ip"}

// NewPlan builds the plan of a compiled set. defs must be what set was
// compiled from.
func NewPlan(defs flags.Definitions, set *flags.Set, opt Options) *Plan {
	reqOnly := opt.RequestOnly
	if reqOnly == nil {
		reqOnly = DefaultRequestOnly
	}
	cohorts := map[int64]flags.Cohort{}
	for _, c := range defs.Cohorts {
		cohorts[c.ID] = c
	}
	settings := xxhash.New()
	settings.WriteString(strconv.Itoa(defs.PropertyMatchingVersion))
	settings.WriteString("\x00" + defs.Timezone + "\x00")
	base := settings.Sum64()

	keys := set.Keys()
	p := &Plan{Flags: make([]FlagPlan, 0, len(keys)), byKey: make(map[string]int, len(keys)), idIndex: make(map[int64]int, len(keys)), subjects: map[int][]string{}}
	for _, key := range keys {
		def, _ := set.Flag(key)
		info, _ := set.Info(key)
		fp := FlagPlan{Key: key, ID: def.ID}

		h := xxhash.New()
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], base)
		h.Write(b[:])
		fj, _ := json.Marshal(def) // a Flag always marshals
		h.Write(fj)
		for _, id := range info.Cohorts {
			c, ok := cohorts[id]
			if !ok {
				h.WriteString("\x00missing-cohort:" + strconv.FormatInt(id, 10))
				continue
			}
			cj, _ := json.Marshal(c)
			h.Write(cj)
		}
		fp.Subject, fp.Why = subjectOf(def, info, cohorts, reqOnly)
		if fp.Why == "" && fp.Subject >= 0 && defs.GroupTypes[fp.Subject] == "" {
			fp.Why = WhyNoGroupTypeSet // no request can name its groups
		}
		fp.Reads = slices.Clone(info.PersonProperties)
		if fp.Subject >= 0 {
			fp.Reads = slices.Clone(info.GroupProperties[fp.Subject])
		}
		for _, dep := range info.DependencyChain {
			i, ok := p.byKey[dep]
			if !ok {
				h.WriteString("\x00missing-flag:" + dep)
				if fp.Why == "" {
					fp.Why = WhyDependency
				}
				continue
			}
			d := &p.Flags[i]
			binary.LittleEndian.PutUint64(b[:], d.Stamp)
			h.Write(b[:])
			if fp.Why == "" && (!d.Precomputable || d.Subject != fp.Subject) {
				fp.Why = WhyDependency
			}
			fp.Reads = append(fp.Reads, d.Reads...)
		}
		slices.Sort(fp.Reads)
		fp.Reads = slices.Compact(fp.Reads)
		fp.Stamp = h.Sum64()
		fp.Precomputable = fp.Why == ""
		if fp.Precomputable {
			p.subjects[fp.Subject] = append(p.subjects[fp.Subject], key)
		}
		p.byKey[key] = len(p.Flags)
		p.idIndex[fp.ID] = len(p.Flags)
		p.Flags = append(p.Flags, fp)
	}
	fh := xxhash.New()
	var b [8]byte
	for _, fp := range p.Flags {
		if !fp.Precomputable {
			continue
		}
		fh.WriteString(fp.Key)
		binary.LittleEndian.PutUint64(b[:], fp.Stamp)
		fh.Write(b[:])
		binary.LittleEndian.PutUint64(b[:], uint64(int64(fp.Subject)))
		fh.Write(b[:])
	}
	p.Fingerprint = fh.Sum64()
	return p
}

// subjectOf decides where a flag's result can be stored, or why it cannot.
func subjectOf(def flags.Flag, info flags.FlagInfo, cohorts map[int64]flags.Cohort, reqOnly []string) (int, string) {
	switch {
	case info.Invalid != "":
		return 0, WhyInvalid
	case def.EnsureExperienceContinuity:
		return 0, WhyContinuity
	case info.ByDevice:
		return 0, WhyDevice
	case len(info.Aggregations) != 1:
		return 0, WhyMixed
	}
	subject := info.Aggregations[0]
	if subject >= 0 {
		if info.DistinctIDOverrides || len(info.GroupOverrides) > 1 ||
			(len(info.GroupOverrides) == 1 && info.GroupOverrides[0] != subject) {
			return 0, WhyOverrides
		}
		if len(info.PersonProperties) > 0 {
			return 0, WhyOtherSubject
		}
		for gt := range info.GroupProperties {
			if gt != subject {
				return 0, WhyOtherSubject
			}
		}
		for _, id := range info.Cohorts {
			// A cohort reading no person property (checked above) is
			// decided from the group's row: its behavioural filters read
			// the group's counters. Static ones list persons.
			c, ok := cohorts[id]
			if !ok {
				return 0, WhyUnknownCohort
			}
			if c.Kind == flags.CohortStatic {
				return 0, WhyCohort
			}
		}
		return subject, ""
	}
	if len(info.GroupOverrides) > 0 {
		return 0, WhyOverrides
	}
	if len(info.GroupProperties) > 0 {
		return 0, WhyOtherSubject
	}
	for _, id := range info.Cohorts {
		c, ok := cohorts[id]
		if !ok {
			return 0, WhyUnknownCohort
		}
		if c.Kind == flags.CohortStatic {
			return 0, WhyCohort // behavioural ones are read from the row's counters
		}
	}
	for _, k := range info.PersonProperties {
		if requestOnly(k, reqOnly) {
			return 0, WhyRequestOnly
		}
	}
	return Persons, ""
}

func requestOnly(key string, list []string) bool {
	for _, p := range list {
		if pre, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(key, pre) {
				return true
			}
		} else if key == p {
			return true
		}
	}
	return false
}

// Flag returns a flag's plan.
func (p *Plan) Flag(key string) (*FlagPlan, bool) {
	i, ok := p.byKey[key]
	if !ok {
		return nil, false
	}
	return &p.Flags[i], true
}

func (p *Plan) byID(id int64) (*FlagPlan, bool) {
	i, ok := p.idIndex[id]
	if !ok {
		return nil, false
	}
	return &p.Flags[i], true
}

// CurrentStamp returns the stamp of a flag by id: Plan is the Stamper
// stored results are decoded against.
func (p *Plan) CurrentStamp(flagID int64) (uint64, bool) {
	if p == nil {
		return 0, false
	}
	i, ok := p.idIndex[flagID]
	if !ok {
		return 0, false
	}
	return p.Flags[i].Stamp, true
}

// Index returns the position of a flag in Flags.
func (p *Plan) Index(key string) (int, bool) {
	i, ok := p.byKey[key]
	return i, ok
}

// Keys returns the precomputable flag keys stored on rows of subject, in
// evaluation order. The caller must not modify it.
func (p *Plan) Keys(subject int) []string { return p.subjects[subject] }

// GroupTypes returns the group types some precomputable flag is stored on,
// sorted.
func (p *Plan) GroupTypes() []int {
	var out []int
	for s := range p.subjects {
		if s >= 0 {
			out = append(out, s)
		}
	}
	sort.Ints(out)
	return out
}

// FlagStamp is what a stored result of a flag is keyed to: its stamp and
// subject. A run records its plan's (Plan.Stamps) so that the next run
// knows what changed.
type FlagStamp struct {
	Stamp   uint64 `json:"stamp"`
	Subject int    `json:"subject"`
}

// Stamps returns the stamps of the precomputable flags, by key.
func (p *Plan) Stamps() map[string]FlagStamp {
	m := make(map[string]FlagStamp, len(p.Flags))
	for _, fp := range p.Flags {
		if fp.Precomputable {
			m[fp.Key] = FlagStamp{Stamp: fp.Stamp, Subject: fp.Subject}
		}
	}
	return m
}

// ChangedSince returns the keys of precomputable flags of p whose stamp or
// subject differs in stamps (or that stamps lacks), in evaluation order:
// what a definitions change requires recomputing. The result is never nil
// (an empty list: nothing to recompute).
func (p *Plan) ChangedSince(stamps map[string]FlagStamp) []string {
	out := []string{}
	for _, fp := range p.Flags {
		if !fp.Precomputable {
			continue
		}
		if s, ok := stamps[fp.Key]; ok && s.Stamp == fp.Stamp && s.Subject == fp.Subject {
			continue
		}
		out = append(out, fp.Key)
	}
	return out
}

// DroppedSince reports whether a flag stored under stamps is stored no
// longer (deleted, or now evaluated live). ChangedSince does not name
// such a flag, yet every row that holds its entry must be written again:
// a reader finds no current stamp for it, so the digest of its stamp group
// fails and the group's other flags, unchanged, read as stale (live
// evaluation and a repair on every row read until the row is rewritten).
// Compute with an empty only list does that rewrite: it drops the entry
// and evaluates the group's other flags again.
func (p *Plan) DroppedSince(stamps map[string]FlagStamp) bool {
	for key := range stamps {
		if fp, ok := p.Flag(key); !ok || !fp.Precomputable {
			return true
		}
	}
	return false
}

// Changed is ChangedSince the stamps of old; a nil old changes everything.
func (p *Plan) Changed(old *Plan) []string {
	if old == nil {
		return p.ChangedSince(nil)
	}
	return p.ChangedSince(old.Stamps())
}
