package flags

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Behavioural windows: a filter's window is at least MinWindow and at most
// MaxWindow (the counters keep MaxWindow of history).
const (
	MinWindow = time.Minute
	MaxWindow = 90 * 24 * time.Hour
)

// MaxOperatorValue bounds the count of a performed_event_multiple filter.
const MaxOperatorValue = 1_000_000

// MaxEventFilters bounds the event property filters of one behavioural
// filter.
const MaxEventFilters = 20

// EventHistory is what a subject did, as the projector counted it: the
// events of each tracked pair ([EventPair]) in buckets. The engine reads it
// for behavioural filters; package flags/counters implements it over a
// row's stored counters.
type EventHistory interface {
	// EventBuckets returns the pair's buckets, oldest first; nil when none.
	// The slice is read, never kept or changed.
	EventBuckets(pair uint64) []EventBucket
	// FirstEvent returns the Unix second of the pair's first counted event.
	FirstEvent(pair uint64) (sec int64, ok bool)
}

// EventBucket is Count events that happened in the Width seconds from
// Start (Unix seconds). The engine takes every event of a bucket to have
// happened at Start: exact for one-second buckets, and for wider ones an
// event counts up to Width-1 seconds less long than it should.
type EventBucket struct {
	Start int64
	Width int32
	Count uint32
}

// EventPair is one (event, event property filters) pair that a cohort of
// the set counts: the projector keeps counters for exactly these. ID is
// stable: the same event and filters give the same ID in any set.
type EventPair struct {
	ID      uint64
	Event   string
	Filters []PropertyFilter
}

// behavior values of a behavioural filter.
const (
	behPerformed uint8 = iota
	behMultiple
	behFirstTime
)

var behaviorValues = map[string]uint8{
	"performed_event":            behPerformed,
	"performed_event_multiple":   behMultiple,
	"performed_event_first_time": behFirstTime,
}

var timeIntervals = map[string]time.Duration{
	"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour,
	"week": 7 * 24 * time.Hour, "month": 30 * 24 * time.Hour, "year": 365 * 24 * time.Hour,
}

var countOperators = map[string]opcode{
	"gte": opGTE, "gt": opGT, "lte": opLTE, "lt": opLT, "exact": opExact, "eq": opExact,
}

// behavior is a compiled behavioural filter.
type behavior struct {
	pair   *eventPair
	what   uint8
	window time.Duration // 0: since is the start of the range
	since  time.Time
	op     opcode
	n      int64
}

// eventPair is a compiled EventPair.
type eventPair struct {
	EventPair
	filters []matcher
}

// PairID returns the stable id of an (event, event filters) pair: xxhash64
// of the event name and the filters' JSON.
func PairID(event string, filters []PropertyFilter) uint64 {
	h := xxhash.New()
	h.WriteString(event)
	h.WriteString("\x00")
	if len(filters) > 0 {
		b, _ := json.Marshal(filters) // PropertyFilter always marshals
		h.Write(b)
	}
	return h.Sum64()
}

// compileBehavior compiles a filter of type "behavioral" inside cohort.
func (c *compiler) compileBehavior(m *matcher, pf *PropertyFilter, path string, cohort int64) *ValidationError {
	fail := func(sub, code, reason string) *ValidationError {
		return c.report(&ValidationError{Cohort: cohort, Path: path + sub, Code: code, Reason: reason, Fatal: true})
	}
	if pf.Key == "" {
		return fail(".key", CodeInvalidKey, "a behavioral filter's key is the event name")
	}
	if pf.EventType != "" && pf.EventType != "events" {
		return fail(".event_type", CodeUnsupportedBehavior, fmt.Sprintf("event_type %q: only events are counted (not actions)", pf.EventType))
	}
	var name string
	if err := json.Unmarshal(pf.Value, &name); err != nil {
		return fail(".value", CodeInvalidValue, "a behavioral filter's value is a string")
	}
	what, ok := behaviorValues[name]
	if !ok {
		return fail(".value", CodeUnsupportedBehavior, fmt.Sprintf("behavioral value %q is not counted in real time (performed_event, performed_event_multiple, performed_event_first_time)", name))
	}
	b := &behavior{what: what, op: opGTE, n: 1}
	if err := c.behaviorWindow(b, pf); err != "" {
		return fail("", CodeInvalidWindow, err)
	}
	if what == behMultiple {
		op := pf.Operator
		if op == "" {
			op = "gte"
		}
		if b.op, ok = countOperators[op]; !ok {
			return fail(".operator", CodeInvalidOperator, fmt.Sprintf("a count takes gte, gt, lte, lt or exact, not %q", op))
		}
		v, err := decodeValue(pf.OperatorValue)
		n, okN := int64(0), false
		if err == nil {
			switch x := v.(type) {
			case json.Number:
				n, err = strconv.ParseInt(string(x), 10, 64)
				okN = err == nil
			case string:
				n, err = strconv.ParseInt(x, 10, 64)
				okN = err == nil
			}
		}
		if !okN || n < 0 || n > MaxOperatorValue {
			return fail(".operator_value", CodeInvalidValue, fmt.Sprintf("operator_value is an integer in 0..%d", MaxOperatorValue))
		}
		b.n = n
	}
	if len(pf.EventFilters) > MaxEventFilters {
		return fail(".event_filters", CodeInvalidValue, fmt.Sprintf("%d event filters, at most %d", len(pf.EventFilters), MaxEventFilters))
	}
	id := PairID(pf.Key, pf.EventFilters)
	ep := c.set.pairs[id]
	if ep == nil {
		ep = &eventPair{EventPair: EventPair{ID: id, Event: pf.Key, Filters: pf.EventFilters}}
		for i := range pf.EventFilters {
			ef := pf.EventFilters[i]
			p := fmt.Sprintf("%s.event_filters[%d]", path, i)
			if ef.Type != "event" {
				return fail(fmt.Sprintf(".event_filters[%d].type", i), CodeInvalidPropertyType, fmt.Sprintf("an event filter has type \"event\", not %q", ef.Type))
			}
			ef.Type, ef.Negation = "person", false
			em, err := c.compileFilter(&ef, p, -1, "", cohort)
			if err != nil && err.Fatal {
				return err
			}
			ep.filters = append(ep.filters, em)
		}
		c.set.pairs[id] = ep
		c.set.byEvent[pf.Key] = append(c.set.byEvent[pf.Key], ep)
	}
	b.pair = ep
	m.beh = b
	return nil
}

// behaviorWindow sets the window of b: time_value time_interval, else
// explicit_datetime (a relative "-30d" or an absolute date). It returns a
// reason when there is none or it is out of range.
func (c *compiler) behaviorWindow(b *behavior, pf *PropertyFilter) string {
	if len(pf.TimeValue) > 0 || pf.TimeInterval != "" {
		v, err := decodeValue(pf.TimeValue)
		var n int64
		if err == nil {
			switch x := v.(type) {
			case json.Number:
				n, err = strconv.ParseInt(string(x), 10, 64)
			case string:
				n, err = strconv.ParseInt(x, 10, 64)
			default:
				err = fmt.Errorf("not an integer")
			}
		}
		unit, ok := timeIntervals[pf.TimeInterval]
		if err != nil || !ok || n <= 0 || n > int64(MaxWindow/time.Minute) {
			return fmt.Sprintf("time_value %s time_interval %q is not a window (a positive integer of minute, hour, day, week, month or year)", string(pf.TimeValue), pf.TimeInterval)
		}
		b.window = time.Duration(n) * unit
	} else if s := strings.TrimSpace(pf.ExplicitDatetime); s != "" {
		if strings.HasPrefix(s, "-") {
			rel, ok := parseRelativeDate(s)
			if !ok {
				return fmt.Sprintf("explicit_datetime %q is neither a relative date (-<n><h|d|w|m|y>) nor a date", s)
			}
			unit := map[byte]time.Duration{'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour, 'm': 30 * 24 * time.Hour, 'y': 365 * 24 * time.Hour}[rel.unit]
			b.window = time.Duration(rel.n) * unit
		} else {
			t, ok := parseDate(s, c.set.loc)
			if !ok {
				return fmt.Sprintf("explicit_datetime %q is neither a relative date (-<n><h|d|w|m|y>) nor a date", s)
			}
			b.since = t
			return ""
		}
	} else {
		return "a behavioral filter needs a window: time_value and time_interval, or explicit_datetime"
	}
	if b.window < MinWindow || b.window > MaxWindow {
		return fmt.Sprintf("the window %s is outside %s..%s", b.window, MinWindow, MaxWindow)
	}
	return ""
}

// EventPairs returns the pairs the set's cohorts count, by ID.
func (s *Set) EventPairs() []EventPair {
	out := make([]EventPair, 0, len(s.pairs))
	for _, p := range s.pairs {
		out = append(out, p.EventPair)
	}
	slices.SortFunc(out, func(a, b EventPair) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// TracksPair reports whether the set counts the pair id.
func (s *Set) TracksPair(id uint64) bool {
	_, ok := s.pairs[id]
	return ok
}

// TracksEvent reports whether some pair of the set counts events named
// event: the cheap test before an event's properties are decoded.
func (s *Set) TracksEvent(event string) bool {
	_, ok := s.byEvent[event]
	return ok
}

// EventPropertyKeys returns the event property keys that the event filters
// of the pairs counting events named event read (nil when none does): the
// only properties MatchEvent needs, so a caller decodes just those.
func (s *Set) EventPropertyKeys(event string) []string {
	var keys []string
	for _, p := range s.byEvent[event] {
		for i := range p.filters {
			if !slices.Contains(keys, p.filters[i].key) {
				keys = append(keys, p.filters[i].key)
			}
		}
	}
	return keys
}

// MatchEvent appends to dst the ids of the pairs that an event named event
// with these properties (decoded as for Context.PersonProperties) counts
// for. at is the event's time, for relative dates in event filters. Event
// filters follow the server's rules for a person's properties (a missing
// property is a definite answer).
func (s *Set) MatchEvent(event string, props map[string]any, at time.Time, dst []uint64) []uint64 {
	pairs := s.byEvent[event]
	if len(pairs) == 0 {
		return dst
	}
	e := &evaluator{set: s, ctx: &Context{PersonProperties: props}, now: at}
	for _, p := range pairs {
		ok := true
		for i := range p.filters {
			if e.match(&p.filters[i], -1) != yes {
				ok = false
				break
			}
		}
		if ok {
			dst = append(dst, p.ID)
		}
	}
	return dst
}

// behavioral evaluates a behavioural filter from the Context's Events at
// the evaluation time, noting when its answer changes with time alone: when
// the oldest event in the window ages out, or a later event (an event
// dated after now) enters it.
func (e *evaluator) behavioral(m *matcher) tri {
	c := e.ctx
	if c.Partial {
		// Only the stored row has the counters: the SDKs and a request
		// without a stored row cannot decide it.
		return e.setUnknown(CodeUnsupported)
	}
	b := m.beh
	events := c.Events
	if e.cohortAgg > 0 {
		// Under a group aggregation the group did it, not the person.
		events = nil
		if gt := e.cohortAgg - 1; gt < len(c.Groups) {
			events = c.Groups[gt].Events
		}
	}
	nowN := e.now.UnixNano()
	var fromN int64 // events at or after fromN (strictly after for a window)
	if b.window > 0 {
		fromN = nowN - int64(b.window)
	} else {
		fromN = b.since.UnixNano()
	}
	in := func(sec int64) bool {
		t := sec * int64(time.Second)
		if t > nowN {
			return false
		}
		if b.window > 0 {
			return t > fromN
		}
		return t >= fromN
	}
	// changeAt notes the instant the event at sec enters or leaves.
	changeAt := func(sec int64) {
		t := time.Unix(sec, 0)
		if sec*int64(time.Second) > nowN {
			e.noteValidUntil(t)
		} else if b.window > 0 {
			e.noteValidUntil(t.Add(b.window))
		}
	}
	if events == nil {
		return triOf(b.what == behMultiple && countMatches(b, 0))
	}
	if b.what == behFirstTime {
		first, ok := events.FirstEvent(b.pair.ID)
		if !ok {
			return no
		}
		if in(first) || first*int64(time.Second) > nowN {
			changeAt(first)
		}
		return triOf(in(first))
	}
	var count int64
	for _, bk := range events.EventBuckets(b.pair.ID) {
		if in(bk.Start) {
			count += int64(bk.Count)
			changeAt(bk.Start)
		} else if bk.Start*int64(time.Second) > nowN {
			changeAt(bk.Start)
		}
	}
	return triOf(countMatches(b, count))
}

func countMatches(b *behavior, count int64) bool {
	switch b.op {
	case opGT:
		return count > b.n
	case opLTE:
		return count <= b.n
	case opLT:
		return count < b.n
	case opExact:
		return count == b.n
	}
	return count >= b.n
}

// GroupEventPairs reports, for each group type, the pairs that a behavioural
// filter reads under a condition aggregating on that type (directly or
// through nested cohorts): the projector counts those pairs on the group
// rows of the event's $groups. It is per flag, not per condition: a flag
// with a group aggregation counts the pairs of every cohort it reads for
// that group type (more counters at worst, never fewer).
func (s *Set) GroupEventPairs() map[int][]uint64 {
	s.groupPairsOnce.Do(func() {
		out := map[int][]uint64{}
		for _, f := range s.flags {
			var pairs []uint64
			for _, id := range f.info.Cohorts {
				if co := s.cohorts[id]; co != nil && co.behavioral {
					pairs = appendPairs(pairs, &co.root)
				}
			}
			if len(pairs) == 0 {
				continue
			}
			for _, gt := range f.info.Aggregations {
				if gt < 0 {
					continue
				}
				for _, p := range pairs {
					if !slices.Contains(out[gt], p) {
						out[gt] = append(out[gt], p)
					}
				}
			}
		}
		for gt := range out {
			slices.Sort(out[gt])
		}
		s.groupPairs = out
	})
	return s.groupPairs
}

// appendPairs appends the pair ids of n's behavioural filters (not of its
// nested cohorts: the flag's info lists those).
func appendPairs(dst []uint64, n *cohortNode) []uint64 {
	if m := n.filter; m != nil {
		if m.kind == kindBehavioral && m.beh != nil && m.beh.pair != nil && !slices.Contains(dst, m.beh.pair.ID) {
			dst = append(dst, m.beh.pair.ID)
		}
		return dst
	}
	for i := range n.children {
		dst = appendPairs(dst, &n.children[i])
	}
	return dst
}
