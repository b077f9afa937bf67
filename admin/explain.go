package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/flags/counters"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
	"github.com/vexil-dev/vexil/store"
)

// cohortSource answers static cohort membership from the catalog
// (behavioural filters are answered from the row's counters: rowEvents).
type cohortSource struct {
	ctx        context.Context
	cat        catalog.Cohorts
	team       int64
	distinctID string
	static     map[int64]bool
}

func (c *cohortSource) InCohort(id int64) (bool, time.Time, error) {
	static, ok := c.static[id]
	if !ok {
		return false, time.Time{}, flags.ErrCohortNotFound
	}
	if !static {
		return false, time.Time{}, nil
	}
	in, err := c.cat.IsCohortMember(c.ctx, c.team, id, c.distinctID)
	return in, time.Time{}, err
}

// rowEvents decodes a row's behavioural counters; none when they do not
// decode, as on the evaluation paths.
func rowEvents(b []byte) flags.EventHistory {
	if r, err := counters.Decode(b); err == nil && len(b) > 0 {
		return r
	}
	return nil
}

func staticCohorts(defs flags.Definitions) map[int64]bool {
	m := make(map[int64]bool, len(defs.Cohorts))
	for _, c := range defs.Cohorts {
		m[c.ID] = c.Kind == flags.CohortStatic
	}
	return m
}

// decodeProps decodes a JSON object of properties, numbers as json.Number.
func decodeProps(text []byte) (map[string]any, error) {
	if len(text) == 0 {
		return map[string]any{}, nil
	}
	var m map[string]any
	if err := decodeJSON(string(text), &m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

// rowContext builds the evaluation context of a stored row.
func (s *Service) rowContext(ctx context.Context, team int64, defs flags.Definitions, static map[int64]bool, row *store.Row) (flags.Context, error) {
	props, err := decodeProps(row.Properties)
	if err != nil {
		return flags.Context{}, fmt.Errorf("admin: row %q: %w", row.DistinctID, err)
	}
	return flags.Context{
		DistinctID: row.DistinctID, PersonProperties: props, Now: s.cfg.Now(), Events: rowEvents(row.Counters),
		Cohorts: &cohortSource{ctx: ctx, cat: s.cat, team: team, distinctID: row.DistinctID, static: static},
	}, nil
}

// ExplainFlag evaluates a flag for a distinct_id and says why, condition
// by condition and filter by filter.
func (s *Service) ExplainFlag(ctx context.Context, req *adminv1.ExplainFlagRequest) (*adminv1.ExplainFlagResponse, error) {
	if req.GetDistinctId() == "" || len(req.GetDistinctId()) > 400 {
		return nil, errcode.Field(errcode.InvalidArgument, "distinct_id", "distinct_id is required, at most 400 bytes")
	}
	var rec catalog.FlagRecord
	if req.GetFlagId() != 0 || req.GetProposed() == nil {
		var err error
		if rec, err = s.getFlag(ctx, req.GetTeamId(), req.GetFlagId()); err != nil {
			return nil, err
		}
	} else if _, err := s.getTeam(ctx, req.GetTeamId()); err != nil {
		return nil, err
	}
	snap, err := s.cat.Snapshot(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	defs := snap.Definitions
	if p := req.GetProposed(); p != nil {
		// Evaluate a definition without saving it: validated as a write,
		// then put in the definitions in place of the stored flag.
		if p.GetKey() == "" && rec.Flag.Key != "" {
			p = proto.CloneOf(p)
			p.Key = rec.Flag.Key
		}
		f, err := s.flagFromInput(p, "proposed.")
		if err != nil {
			return nil, err
		}
		f.TeamID, f.ID = req.GetTeamId(), rec.Flag.ID
		if _, err := s.validateFlag(ctx, f, prefixed("proposed.")); err != nil {
			return nil, err
		}
		defs.Flags = slices.DeleteFunc(slices.Clone(defs.Flags), func(o flags.Flag) bool {
			return (f.ID != 0 && o.ID == f.ID) || o.Key == f.Key
		})
		defs.Flags = append(defs.Flags, f)
		rec.Flag = f
	}
	out := &adminv1.ExplainFlagResponse{Key: rec.Flag.Key}

	// Person properties: the request's, the stored row's, or both.
	var props map[string]any
	var events flags.EventHistory // the stored row's counted events
	if req.GetPersonProperties() != nil {
		text, err := messageJSON(req.GetPersonProperties())
		if err != nil {
			return nil, errcode.Field(errcode.InvalidArgument, "person_properties", "%v", err)
		}
		if props, err = decodeProps([]byte(text)); err != nil {
			return nil, errcode.Field(errcode.InvalidArgument, "person_properties", "person_properties is a JSON object: %v", err)
		}
	}
	if (props == nil || req.GetMergeProperties()) && s.cfg.Persons != nil {
		row, err := s.cfg.Persons.GetRow(ctx, req.GetTeamId(), req.GetDistinctId())
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			events = rowEvents(row.Counters)
			stored, err := decodeProps(row.Properties)
			if err != nil {
				return nil, err
			}
			for k, v := range props {
				stored[k] = v
			}
			props = stored
			out.FromStore = true
		}
	}
	if props == nil {
		props = map[string]any{}
	}
	ec := flags.Context{DistinctID: req.GetDistinctId(), PersonProperties: props, Now: s.cfg.Now(), Events: events,
		Cohorts: &cohortSource{ctx: ctx, cat: s.cat, team: req.GetTeamId(), distinctID: req.GetDistinctId(), static: staticCohorts(defs)}}
	if err := s.explainGroups(ctx, req, defs, &ec); err != nil {
		return nil, err
	}

	set, _ := flags.Compile(defs)
	if info, ok := set.Info(rec.Flag.Key); ok {
		out.BackfillingCohorts = s.backfillingCohorts(ctx, req.GetTeamId(), info.Cohorts)
	}
	res, ok := evalOne(set, &ec, rec.Flag.Key)
	if !ok {
		// An archived or otherwise unlisted flag: evaluate it as stored.
		res, _ = evalProbe(defs, rec.Flag, &ec)
	}
	out.Enabled, out.Variant, out.Reason = res.Enabled, res.Variant, string(res.Reason.Code)
	out.ConditionIndex, out.Description = int32(res.Reason.ConditionIndex), res.Reason.Description
	if res.Err != nil {
		out.Error = res.Err.Error()
	}
	if res.Payload != nil {
		out.Payload = rawValue(res.Payload)
	}

	// Each condition alone, then each of its filters alone.
	decided := false
	for i, c := range rec.Flag.Filters.Groups {
		ce := &adminv1.ConditionExplain{Index: int32(i), Target: s.targetName(rec.Flag, c, defs)}
		if c.RolloutPercentage != nil {
			r := *c.RolloutPercentage
			ce.RolloutPercentage = &r
		}
		props := c
		props.RolloutPercentage, props.Variant = nil, nil
		pr, _ := evalProbe(defs, probeFlag(rec.Flag, props), &ec)
		ce.PropertiesMatched = pr.Enabled
		if pr.Enabled {
			rr, _ := evalProbe(defs, probeFlag(rec.Flag, flags.Condition{Properties: c.Properties, RolloutPercentage: c.RolloutPercentage,
				Aggregation: c.Aggregation}), &ec)
			ce.InRollout = rr.Enabled
		}
		if ce.PropertiesMatched && ce.InRollout && !decided && res.Reason.Code == flags.ReasonConditionMatch && res.Reason.ConditionIndex == i {
			ce.Decisive, decided = true, true
		}
		for j, pf := range c.Properties {
			one := flags.Condition{Properties: []flags.PropertyFilter{pf}, Aggregation: c.Aggregation}
			fr, _ := evalProbe(defs, probeFlag(rec.Flag, one), &ec)
			ce.Filters = append(ce.Filters, &adminv1.FilterExplain{Index: int32(j), Key: pf.Key, Type: pf.Type,
				Operator: pf.Operator, Value: rawValue(pf.Value), Matched: fr.Enabled})
		}
		out.Conditions = append(out.Conditions, ce)
	}
	return out, nil
}

func (s *Service) targetName(f flags.Flag, c flags.Condition, defs flags.Definitions) string {
	idx := f.Filters.AggregationGroupTypeIndex
	if c.Aggregation.Set {
		idx = c.Aggregation.Index
	}
	if idx == nil {
		return "persons"
	}
	if name, ok := defs.GroupTypes[*idx]; ok {
		return name
	}
	return fmt.Sprintf("group type %d", *idx)
}

func (s *Service) explainGroups(ctx context.Context, req *adminv1.ExplainFlagRequest, defs flags.Definitions, ec *flags.Context) error {
	if len(req.GetGroups()) == 0 {
		return nil
	}
	var gprops map[string]map[string]any
	if req.GetGroupProperties() != nil {
		text, err := messageJSON(req.GetGroupProperties())
		if err != nil {
			return errcode.Field(errcode.InvalidArgument, "group_properties", "%v", err)
		}
		if err := decodeJSON(text, &gprops); err != nil {
			return errcode.Field(errcode.InvalidArgument, "group_properties", "group_properties is a JSON object of objects: %v", err)
		}
	}
	for name, key := range req.GetGroups() {
		idx := -1
		for i, n := range defs.GroupTypes {
			if n == name {
				idx = i
			}
		}
		if idx < 0 {
			return errcode.Field(errcode.InvalidArgument, "groups", "unknown group type %q", name)
		}
		for len(ec.Groups) <= idx {
			ec.Groups = append(ec.Groups, flags.Group{})
		}
		g := flags.Group{Key: key, Properties: gprops[name]}
		if s.cfg.Persons != nil {
			sg, err := s.cfg.Persons.GetGroup(ctx, req.GetTeamId(), idx, key)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err == nil {
				// The group's counted events, for group-aggregated
				// behavioural cohorts; its properties unless given.
				g.Events = rowEvents(sg.Counters)
				if g.Properties == nil {
					p, err := decodeProps(sg.Properties)
					if err != nil {
						return err
					}
					g.Properties = p
				}
			}
		}
		if g.Properties == nil {
			g.Properties = map[string]any{}
		}
		ec.Groups[idx] = g
	}
	return nil
}

// probeFlag is f reduced to one condition, active, without overrides,
// holdouts, super conditions or variants: its value says whether the
// condition alone matches.
func probeFlag(f flags.Flag, c flags.Condition) flags.Flag {
	return flags.Flag{ID: f.ID, TeamID: f.TeamID, Key: f.Key, Active: true, Version: f.Version,
		BucketingIdentifier: f.BucketingIdentifier,
		Filters: flags.Filters{Groups: []flags.Condition{c}, AggregationGroupTypeIndex: f.Filters.AggregationGroupTypeIndex,
			BucketingIdentifier: f.Filters.BucketingIdentifier}}
}

// evalProbe evaluates f in the team's definitions in place of the stored
// flag with its key.
func evalProbe(defs flags.Definitions, f flags.Flag, ec *flags.Context) (flags.Result, bool) {
	d := defs
	d.Flags = slices.DeleteFunc(slices.Clone(defs.Flags), func(o flags.Flag) bool { return o.Key == f.Key || o.ID == f.ID })
	d.Flags = append(d.Flags, f)
	set, _ := flags.Compile(d)
	return evalOne(set, ec, f.Key)
}

func evalOne(set *flags.Set, ec *flags.Context, key string) (flags.Result, bool) {
	for _, r := range set.EvaluateKeys(ec, []string{key}) {
		if r.Key == key {
			return r, true
		}
	}
	return flags.Result{}, false
}

// valueOf renders a result as the value a client sees: "false", "true" or
// the variant key.
func valueOf(r flags.Result) string {
	switch {
	case !r.Enabled:
		return "false"
	case r.Variant != "":
		return r.Variant
	}
	return "true"
}
