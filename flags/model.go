package flags

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Flag is one feature flag in PostHog's definition shape, plus Vexil's
// metadata (tags, description, overrides).
type Flag struct {
	ID                         int64    `json:"id"`
	TeamID                     int64    `json:"team_id"`
	Key                        string   `json:"key"`
	Name                       string   `json:"name"`
	Description                string   `json:"description,omitempty"`
	Active                     bool     `json:"active"`
	Deleted                    bool     `json:"deleted"`
	Version                    int64    `json:"version"`
	Tags                       []string `json:"tags,omitempty"`
	EnsureExperienceContinuity bool     `json:"ensure_experience_continuity"`
	// EvaluationRuntime is "server", "client" or "all" (empty means all).
	EvaluationRuntime string `json:"evaluation_runtime,omitempty"`
	HasExperiment     bool   `json:"has_experiment,omitempty"`
	// BucketingIdentifier is "distinct_id" (the default) or "device_id".
	BucketingIdentifier string  `json:"bucketing_identifier,omitempty"`
	Filters             Filters `json:"filters"`
	// Overrides force a value for listed distinct_ids or group keys; they
	// are checked before every condition.
	Overrides []Override `json:"overrides,omitempty"`
}

// Filters is a flag's targeting, in PostHog's JSON shape.
type Filters struct {
	// Groups are the release conditions, walked in order.
	Groups       []Condition   `json:"groups"`
	Multivariate *Multivariate `json:"multivariate,omitempty"`
	// Payloads maps a value ("true" or a variant key) to its payload,
	// normally a JSON-encoded string, sent to clients unchanged.
	Payloads map[string]json.RawMessage `json:"payloads,omitempty"`
	// AggregationGroupTypeIndex set means the flag targets groups of that
	// type by default; each condition may choose otherwise.
	AggregationGroupTypeIndex *int `json:"aggregation_group_type_index,omitempty"`
	// SuperGroups are early-access enrollment conditions, checked before
	// Groups when the enrollment property is set.
	SuperGroups []Condition `json:"super_groups,omitempty"`
	// Holdout excludes a share of persons from an experiment.
	Holdout *Holdout `json:"holdout,omitempty"`
	// HoldoutGroups is the older holdout shape: conditions whose variant is
	// "holdout-<id>".
	HoldoutGroups []Condition `json:"holdout_groups,omitempty"`
	// EarlyExit stops at the first condition whose properties matched but
	// whose rollout excluded the person.
	EarlyExit bool `json:"early_exit,omitempty"`
	// FeatureEnrollment makes the value come from the person property
	// "$feature_enrollment/<key>" when it is set.
	FeatureEnrollment   bool   `json:"feature_enrollment,omitempty"`
	BucketingIdentifier string `json:"bucketing_identifier,omitempty"`
}

// Condition is one release condition (a "condition set").
type Condition struct {
	Properties []PropertyFilter `json:"properties"`
	// RolloutPercentage nil means 100.
	RolloutPercentage *float64 `json:"rollout_percentage"`
	// Variant, when it names a variant of the flag, is the value given to
	// persons matching this condition.
	Variant     *string `json:"variant,omitempty"`
	Description string  `json:"description,omitempty"`
	// Aggregation is this condition's own aggregation: when Set, Index nil
	// means persons and a number means that group type; when not Set the
	// flag-level aggregation_group_type_index applies.
	Aggregation Aggregation `json:"-"`
}

// Aggregation is a condition's optional aggregation_group_type_index, which
// distinguishes "absent" (use the flag's) from an explicit null (persons).
type Aggregation struct {
	Set   bool
	Index *int
}

type conditionJSON struct {
	Properties        []PropertyFilter `json:"properties"`
	RolloutPercentage *float64         `json:"rollout_percentage"`
	Variant           *string          `json:"variant,omitempty"`
	Description       string           `json:"description,omitempty"`
}

// UnmarshalJSON decodes a condition, noting whether
// aggregation_group_type_index was present.
func (c *Condition) UnmarshalJSON(data []byte) error {
	var cj conditionJSON
	if err := json.Unmarshal(data, &cj); err != nil {
		return err
	}
	var probe struct {
		Agg json.RawMessage `json:"aggregation_group_type_index"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return err
	}
	*c = Condition{Properties: cj.Properties, RolloutPercentage: cj.RolloutPercentage, Variant: cj.Variant, Description: cj.Description}
	if probe.Agg != nil {
		c.Aggregation.Set = true
		if !bytes.Equal(bytes.TrimSpace(probe.Agg), []byte("null")) {
			var n int
			if err := json.Unmarshal(probe.Agg, &n); err != nil {
				return fmt.Errorf("aggregation_group_type_index: %w", err)
			}
			c.Aggregation.Index = &n
		}
	}
	return nil
}

// MarshalJSON encodes a condition, writing aggregation_group_type_index only
// when the condition sets it.
func (c Condition) MarshalJSON() ([]byte, error) {
	props := c.Properties
	if props == nil {
		props = []PropertyFilter{}
	}
	cj := conditionJSON{Properties: props, RolloutPercentage: c.RolloutPercentage, Variant: c.Variant, Description: c.Description}
	if !c.Aggregation.Set {
		return json.Marshal(cj)
	}
	return json.Marshal(struct {
		conditionJSON
		Agg *int `json:"aggregation_group_type_index"`
	}{cj, c.Aggregation.Index})
}

// PropertyFilter is one filter of a condition or of a cohort.
type PropertyFilter struct {
	Key string `json:"key"`
	// Value is kept as raw JSON so numbers keep their text ("5" vs "5.0").
	Value json.RawMessage `json:"value,omitempty"`
	// Operator empty means "exact".
	Operator string `json:"operator,omitempty"`
	// Type is "person", "group", "cohort", "flag" or "person_metadata".
	Type string `json:"type"`
	// Negation inverts the filter; honoured only inside cohorts.
	Negation       bool `json:"negation,omitempty"`
	GroupTypeIndex *int `json:"group_type_index,omitempty"`
	// DependencyChain is written into the local-evaluation payload for flag
	// filters; the engine computes dependencies itself.
	DependencyChain []string `json:"dependency_chain,omitzero"`

	// The fields of a behavioural filter (Type "behavioral", inside
	// cohorts), in PostHog's cohort shape: Key is the event name, Value
	// one of performed_event, performed_event_multiple or
	// performed_event_first_time, the window is the last TimeValue
	// TimeInterval or since ExplicitDatetime, OperatorValue the count for
	// performed_event_multiple's Operator, and EventFilters the event
	// property filters an event must match to count. See docs/cohorts.md.
	EventType        string           `json:"event_type,omitempty"`
	TimeValue        json.RawMessage  `json:"time_value,omitempty"`
	TimeInterval     string           `json:"time_interval,omitempty"`
	ExplicitDatetime string           `json:"explicit_datetime,omitempty"`
	OperatorValue    json.RawMessage  `json:"operator_value,omitempty"`
	EventFilters     []PropertyFilter `json:"event_filters,omitempty"`
}

// Multivariate lists a flag's variants.
type Multivariate struct {
	Variants []Variant `json:"variants"`
}

// Variant is one value of a multivariate flag.
type Variant struct {
	Key               string  `json:"key"`
	Name              string  `json:"name,omitempty"`
	RolloutPercentage float64 `json:"rollout_percentage"`
}

// Holdout is an experiment holdout: ExclusionPercentage percent of persons
// get the variant "holdout-<ID>".
type Holdout struct {
	ID                  int64   `json:"id"`
	ExclusionPercentage float64 `json:"exclusion_percentage"`
}

// Override forces Value (true, false or a variant key) for the listed
// distinct_ids, or for the listed keys of one group type.
type Override struct {
	DistinctIDs    []string        `json:"distinct_ids,omitempty"`
	GroupTypeIndex *int            `json:"group_type_index,omitempty"`
	GroupKeys      []string        `json:"group_keys,omitempty"`
	Value          json.RawMessage `json:"value"`
}

// Cohort is a set of persons. A dynamic cohort is a property group that the
// engine evaluates itself; static and behavioural cohorts are answered by
// the [CohortSource] of the [Context].
type Cohort struct {
	ID     int64  `json:"id"`
	TeamID int64  `json:"team_id,omitempty"`
	Name   string `json:"name,omitempty"`
	// Kind is "dynamic" (the default), "static" or "behavioral".
	Kind    string        `json:"kind,omitempty"`
	Filters PropertyGroup `json:"filters"`
	Version int64         `json:"version,omitempty"`
}

// PropertyGroup is an AND/OR tree of filters and groups.
type PropertyGroup struct {
	Type   string         `json:"type"`
	Values []PropertyNode `json:"values"`
}

// PropertyNode is an entry of a PropertyGroup: a nested group or a filter.
type PropertyNode struct {
	Group  *PropertyGroup
	Filter *PropertyFilter
}

// UnmarshalJSON decodes a node: an object with "values" is a group,
// anything else a filter.
func (n *PropertyNode) UnmarshalJSON(data []byte) error {
	var probe struct {
		Values json.RawMessage `json:"values"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return err
	}
	if probe.Values != nil {
		n.Group = new(PropertyGroup)
		return json.Unmarshal(data, n.Group)
	}
	n.Filter = new(PropertyFilter)
	return json.Unmarshal(data, n.Filter)
}

// MarshalJSON encodes the group or the filter.
func (n PropertyNode) MarshalJSON() ([]byte, error) {
	if n.Group != nil {
		return json.Marshal(n.Group)
	}
	return json.Marshal(n.Filter)
}

// ParseFlag decodes one flag definition from JSON.
func ParseFlag(data []byte) (Flag, error) {
	var f Flag
	if err := decodeStrict(data, &f); err != nil {
		return Flag{}, fmt.Errorf("flags: parse flag: %w", err)
	}
	return f, nil
}

// ParseDefinitions decodes a definitions document in the shape of PostHog's
// local-evaluation payload: {"flags": [...], "group_type_mapping": {"0":
// "company"}, "cohorts": {"5": {property group}}}.
func ParseDefinitions(data []byte) (Definitions, error) {
	var doc struct {
		Flags                   []Flag                   `json:"flags"`
		GroupTypeMapping        map[string]string        `json:"group_type_mapping"`
		Cohorts                 map[string]PropertyGroup `json:"cohorts"`
		PropertyMatchingVersion int                      `json:"property_matching_version"`
	}
	if err := decodeStrict(data, &doc); err != nil {
		return Definitions{}, fmt.Errorf("flags: parse definitions: %w", err)
	}
	d := Definitions{Flags: doc.Flags, PropertyMatchingVersion: doc.PropertyMatchingVersion}
	if len(doc.GroupTypeMapping) > 0 {
		d.GroupTypes = make(map[int]string, len(doc.GroupTypeMapping))
		for k, v := range doc.GroupTypeMapping {
			var idx int
			if _, err := fmt.Sscanf(k, "%d", &idx); err != nil || fmt.Sprint(idx) != k {
				return Definitions{}, fmt.Errorf("flags: parse definitions: group_type_mapping key %q is not an integer", k)
			}
			d.GroupTypes[idx] = v
		}
	}
	for k, g := range doc.Cohorts {
		var id int64
		if _, err := fmt.Sscanf(k, "%d", &id); err != nil || fmt.Sprint(id) != k {
			return Definitions{}, fmt.Errorf("flags: parse definitions: cohort id %q is not an integer", k)
		}
		d.Cohorts = append(d.Cohorts, Cohort{ID: id, Kind: CohortDynamic, Filters: g})
	}
	return d, nil
}

// decodeStrict decodes JSON, rejecting trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
}
