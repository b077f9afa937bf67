package flags

import "time"

// Compact is a Result reduced to what the definitions do not already hold:
// the value, the reason code and condition, and ValidUntil. Precompute
// stores it; Set.Expand turns it back into the Result, byte for byte the one
// live evaluation gives under the same definitions.
type Compact struct {
	Enabled bool
	// Variant is the variant key, empty for a boolean value.
	Variant        string
	Code           ReasonCode
	ConditionIndex int
	ValidUntil     time.Time
}

// Compact returns r reduced, or false when r failed (a failure is never
// stored: it is evaluated again).
func (r *Result) Compact() (Compact, bool) {
	if r.Err != nil || r.Reason.Code == ReasonError {
		return Compact{}, false
	}
	return Compact{Enabled: r.Enabled, Variant: r.Variant, Code: r.Reason.Code,
		ConditionIndex: r.Reason.ConditionIndex, ValidUntil: r.ValidUntil}, true
}

// Expand rebuilds the Result of flag key from c: identity, payload and
// reason description come from the set's definition. It returns false for
// an unknown key, a reason that live evaluation cannot give, or a condition
// index out of range: the caller then evaluates live.
func (s *Set) Expand(key string, c Compact) (Result, bool) {
	i, ok := s.byKey[key]
	if !ok {
		return Result{}, false
	}
	var r Result
	ok = s.expand(i, c, &r)
	return r, ok
}

// ExpandAt is Expand into *dst for the flag at index i of the evaluation
// order (Keys), whose key the caller says is key: a request expanding
// its stored results in that order skips a map lookup and a copy of the
// Result per flag. A key that is not the one at i is looked up as Expand
// does.
func (s *Set) ExpandAt(i int, key string, c Compact, dst *Result) bool {
	if i < 0 || i >= len(s.flags) || s.flags[i].def.Key != key {
		var ok bool
		if i, ok = s.byKey[key]; !ok {
			return false
		}
	}
	return s.expand(i, c, dst)
}

// expand writes the Result of the flag at index i from c into *r; false
// (r undefined) as Expand.
func (s *Set) expand(i int, c Compact, r *Result) bool {
	f := s.flags[i]
	*r = Result{Key: f.def.Key, FlagID: f.def.ID, Version: f.def.Version, Enabled: c.Enabled, Variant: c.Variant,
		ValidUntil: c.ValidUntil}
	var desc string
	switch c.Code {
	case ReasonConditionMatch:
		if c.ConditionIndex < 0 || c.ConditionIndex >= len(f.conds) {
			return false
		}
		desc = f.conds[c.ConditionIndex].desc
	case ReasonNoConditionMatch:
		desc = descNoMatch
	case ReasonOutOfRolloutBound:
		desc = descOutOfRoll
	case ReasonNoGroupType:
		desc = descNoGroup
	case ReasonSuperCondition:
		desc = descSuper
	case ReasonHoldout:
		desc = descHoldout
	case ReasonFlagDisabled:
		desc = descDisabled
	case ReasonMissingDependency:
		desc = descMissingDep
	case ReasonOverride:
		desc = descOverride
	default:
		return false
	}
	r.Reason = Reason{Code: c.Code, ConditionIndex: c.ConditionIndex, Description: desc}
	if c.Enabled {
		if c.Code == ReasonHoldout {
			r.Payload = f.payloads[c.Variant] // a holdout has no boolean payload
		} else if c.Variant != "" {
			r.Payload = f.payloads[c.Variant]
		} else {
			r.Payload = f.payloadTrue
		}
	}
	return true
}
