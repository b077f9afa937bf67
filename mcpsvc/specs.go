package mcpsvc

import (
	"context"
	"slices"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/errcode"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// Inputs of the tools that take more than flagMut.
type (
	teamIn struct {
		TeamID int64 `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
	}
	flagsListIn struct {
		TeamID    int64    `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
		Search    string   `json:"search,omitempty" jsonschema:"substring of key, name or description"`
		Tags      []string `json:"tags,omitempty"`
		Status    string   `json:"status,omitempty" jsonschema:"ACTIVE, INACTIVE, STALE, ARCHIVED or ALL; default: every flag not archived"`
		PageSize  int32    `json:"page_size,omitempty"`
		PageToken string   `json:"page_token,omitempty"`
	}
	flagKeyIn struct {
		TeamID int64  `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
		Key    string `json:"key" jsonschema:"the flag's key"`
	}
	flagCreateIn struct {
		TeamID      int64          `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
		Key         string         `json:"key" jsonschema:"letters, digits, '-' and '_'"`
		Name        string         `json:"name,omitempty"`
		Description string         `json:"description,omitempty"`
		Tags        []string       `json:"tags,omitempty"`
		Filters     map[string]any `json:"filters,omitempty" jsonschema:"PostHog filters: {groups: [conditions], multivariate, payloads}; default: one condition, everyone at 0%"`
		DryRun      bool           `json:"dry_run,omitempty" jsonschema:"validate and answer the flag without saving"`
	}
	flagUpdateIn struct {
		flagMut
		Name        *string        `json:"name,omitempty"`
		Description *string        `json:"description,omitempty"`
		Tags        []string       `json:"tags,omitempty" jsonschema:"replaces the tags"`
		Filters     map[string]any `json:"filters,omitempty" jsonschema:"replaces the whole filters object (not merged): read the flag, edit, send it all"`
	}
	conditionAddIn struct {
		flagMut
		Condition conditionIn `json:"condition"`
		Position  *int32      `json:"position,omitempty" jsonschema:"insert at this index; default: last"`
	}
	conditionUpdateIn struct {
		flagMut
		Index     int32       `json:"index" jsonschema:"condition index, from 0"`
		Condition conditionIn `json:"condition" jsonschema:"replaces the condition"`
	}
	conditionRemoveIn struct {
		flagMut
		Index int32 `json:"index" jsonschema:"condition index, from 0"`
	}
	conditionsReorderIn struct {
		flagMut
		Order []int32 `json:"order" jsonschema:"the current indexes in their new order"`
	}
	rolloutSetIn struct {
		flagMut
		Index             int32   `json:"index,omitempty" jsonschema:"condition index, from 0"`
		RolloutPercentage float64 `json:"rollout_percentage" jsonschema:"0..100"`
	}
	overrideIn struct {
		DistinctIDs    []string `json:"distinct_ids,omitempty"`
		GroupTypeIndex *int32   `json:"group_type_index,omitempty"`
		GroupKeys      []string `json:"group_keys,omitempty"`
		Value          any      `json:"value" jsonschema:"true, false or a variant key"`
	}
	overridesSetIn struct {
		flagMut
		Overrides []overrideIn `json:"overrides" jsonschema:"replaces every override of the flag"`
	}
	explainIn struct {
		TeamID           int64             `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
		Key              string            `json:"key" jsonschema:"the flag's key"`
		DistinctID       string            `json:"distinct_id"`
		PersonProperties map[string]any    `json:"person_properties,omitempty" jsonschema:"properties to use (merged with the stored ones when merge_properties)"`
		MergeProperties  bool              `json:"merge_properties,omitempty"`
		Groups           map[string]string `json:"groups,omitempty" jsonschema:"group type name to group key"`
	}
	proposedIn struct {
		TeamID           int64             `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
		Key              string            `json:"key,omitempty" jsonschema:"the flag the definition would replace; omitted: a flag not created yet (give definition.key)"`
		Definition       map[string]any    `json:"definition" jsonschema:"the proposed flag as PostHog's JSON: {key, active (default true), filters, overrides}"`
		DistinctID       string            `json:"distinct_id"`
		PersonProperties map[string]any    `json:"person_properties,omitempty" jsonschema:"properties to use (merged with the stored ones when merge_properties)"`
		MergeProperties  bool              `json:"merge_properties,omitempty"`
		Groups           map[string]string `json:"groups,omitempty" jsonschema:"group type name to group key"`
	}
	activityIn struct {
		TeamID    int64  `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
		Key       string `json:"key" jsonschema:"the flag's key"`
		PageSize  int32  `json:"page_size,omitempty"`
		PageToken string `json:"page_token,omitempty"`
	}
	jobIn struct {
		TeamID int64  `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
		JobID  string `json:"job_id"`
	}
)

// flagsIn is every flag tool's access to its flagMut.
func (m flagMut) mut() flagMut { return m }

// flagTool registers a flag mutation whose edit and save are given.
func flagTool[In interface{ mut() flagMut }](bulk func(In) int, edit func(In, map[string]any) error,
	do func(context.Context, *call, In, int64, int64, int64) (*adminv1.FeatureFlag, error)) func(context.Context, *call, In) (any, error) {
	return func(ctx context.Context, c *call, in In) (any, error) {
		n := 0
		if bulk != nil {
			n = bulk(in)
		}
		return c.mutateFlag(ctx, in.mut(), in, n, func(m map[string]any) error { return edit(in, m) },
			func(ctx context.Context, team, id, version int64) (*adminv1.FeatureFlag, error) {
				return do(ctx, c, in, team, id, version)
			})
	}
}

func condAt(m map[string]any, i int32) ([]any, error) {
	g := groupsOf(m)
	if i < 0 || int(i) >= len(g) {
		return nil, errcode.Field(errcode.InvalidArgument, "index", "no condition %d (the flag has %d)", i, len(g))
	}
	return g, nil
}

var statuses = map[string]adminv1.FlagStatus{"": adminv1.FlagStatus_FLAG_STATUS_UNSPECIFIED,
	"ACTIVE": adminv1.FlagStatus_FLAG_STATUS_ACTIVE, "INACTIVE": adminv1.FlagStatus_FLAG_STATUS_INACTIVE,
	"STALE": adminv1.FlagStatus_FLAG_STATUS_STALE, "ARCHIVED": adminv1.FlagStatus_FLAG_STATUS_ARCHIVED,
	"ALL": adminv1.FlagStatus_FLAG_STATUS_ALL}

var toolSpecs []toolSpec

func init() {
	ro := func(t toolSpec) toolSpec { t.readOnly, t.idem = true, true; return t }
	toolSpecs = []toolSpec{
		ro(toolSpec{name: "flags_list", feature: "flags", scope: admin.ScopeFlagRead,
			desc: "List the team's flags as slim rows (key, name, status, rollout summary, version). flag_get gives a full definition.",
			add: handler(func(ctx context.Context, c *call, in flagsListIn) (any, error) {
				team, err := c.team(in.TeamID)
				if err != nil {
					return nil, err
				}
				st, ok := statuses[in.Status]
				if !ok {
					return nil, errcode.Field(errcode.InvalidArgument, "status", "status is one of ACTIVE, INACTIVE, STALE, ARCHIVED, ALL")
				}
				resp, err := invoke(ctx, c, "ListFlags", (*admin.Service).ListFlags, &adminv1.ListFlagsRequest{TeamId: team,
					Search: in.Search, Tags: in.Tags, Status: st, PageSize: in.PageSize, PageToken: in.PageToken})
				if err != nil {
					return nil, err
				}
				rows := make([]slimFlag, 0, len(resp.GetResults()))
				for _, f := range resp.GetResults() {
					rows = append(rows, slim(f))
				}
				return map[string]any{"flags": rows, "count": resp.GetCount(), "next_page_token": resp.GetNextPageToken()}, nil
			})}),
		ro(toolSpec{name: "flag_get", feature: "flags", scope: admin.ScopeFlagRead,
			desc: "A flag's full definition (filters, overrides, version).",
			add: handler(func(ctx context.Context, c *call, in flagKeyIn) (any, error) {
				team, err := c.team(in.TeamID)
				if err != nil {
					return nil, err
				}
				return c.getFlag(ctx, team, in.Key)
			})}),
		{name: "flag_create", feature: "flags", scope: admin.ScopeFlagWrite,
			desc: "Create a flag, disabled (off by default: enable it with flag_enable). Answers the flag and its warnings.",
			add: handler(func(ctx context.Context, c *call, in flagCreateIn) (any, error) {
				team, err := c.team(in.TeamID)
				if err != nil {
					return nil, err
				}
				m := map[string]any{"key": in.Key, "name": in.Name, "description": in.Description, "active": false}
				if len(in.Tags) > 0 {
					m["tags"] = in.Tags
				}
				if in.Filters != nil {
					m["filters"] = in.Filters
				} else {
					m["filters"] = map[string]any{"groups": []any{map[string]any{"properties": []any{}, "rollout_percentage": 0.0}}}
				}
				fi, err := flagInput(m)
				if err != nil {
					return nil, err
				}
				if in.DryRun {
					return dryRunAnswer{DryRun: true, Diff: Diff(map[string]any{}, m)}, nil
				}
				resp, err := invoke(ctx, c, "CreateFlag", (*admin.Service).CreateFlag, &adminv1.CreateFlagRequest{TeamId: team, Flag: fi})
				if err != nil {
					return nil, err
				}
				return flagDone{Flag: slim(resp.GetFlag()), Warnings: resp.GetFlag().GetWarnings()}, nil
			})},
		{name: "flag_update", feature: "flags", scope: admin.ScopeFlagWrite, idem: true,
			desc: "Change a flag partially: the fields given replace the flag's; filters, when given, REPLACES the whole filters object (it is not merged). Pass the version you read.",
			add: handler(flagTool(nil, func(in flagUpdateIn, m map[string]any) error {
				if in.Name != nil {
					m["name"] = *in.Name
				}
				if in.Description != nil {
					m["description"] = *in.Description
				}
				if in.Tags != nil {
					m["tags"] = anyStrings(in.Tags)
				}
				if in.Filters != nil {
					m["filters"] = in.Filters
				}
				return nil
			}, func(ctx context.Context, c *call, in flagUpdateIn, team, id, version int64) (*adminv1.FeatureFlag, error) {
				patch := map[string]any{}
				if in.Name != nil {
					patch["name"] = *in.Name
				}
				if in.Description != nil {
					patch["description"] = *in.Description
				}
				if in.Tags != nil {
					patch["tags"] = anyStrings(in.Tags)
				}
				if in.Filters != nil {
					patch["filters"] = in.Filters
				}
				st, err := structpb.NewStruct(patch)
				if err != nil {
					return nil, errcode.New(errcode.InvalidArgument, "%v", err)
				}
				resp, err := invoke(ctx, c, "PatchFlag", (*admin.Service).PatchFlag, &adminv1.PatchFlagRequest{TeamId: team, FlagId: id, Version: version, Flag: st})
				return resp.GetFlag(), err
			}))},
		flagSwitch("flag_enable", "Enable a flag (it serves its conditions). Enabling a flag with a condition at 100% needs confirmation.", "active", true, "EnableFlag",
			func(s *admin.Service, ctx context.Context, r *adminv1.EnableFlagRequest) (*adminv1.EnableFlagResponse, error) {
				return s.EnableFlag(ctx, r)
			}, func(team, id, v int64) *adminv1.EnableFlagRequest {
				return &adminv1.EnableFlagRequest{TeamId: team, FlagId: id, Version: v}
			}),
		flagSwitch("flag_disable", "Disable a flag (it answers false for everyone).", "active", false, "DisableFlag",
			(*admin.Service).DisableFlag, func(team, id, v int64) *adminv1.DisableFlagRequest {
				return &adminv1.DisableFlagRequest{TeamId: team, FlagId: id, Version: v}
			}),
		flagSwitch("flag_archive", "Archive a flag (disabled, hidden from lists; refused while live flags depend on it).", "archived", true, "ArchiveFlag",
			(*admin.Service).ArchiveFlag, func(team, id, v int64) *adminv1.ArchiveFlagRequest {
				return &adminv1.ArchiveFlagRequest{TeamId: team, FlagId: id, Version: v}
			}),
		flagSwitch("flag_unarchive", "Unarchive a flag (it stays disabled).", "archived", false, "UnarchiveFlag",
			(*admin.Service).UnarchiveFlag, func(team, id, v int64) *adminv1.UnarchiveFlagRequest {
				return &adminv1.UnarchiveFlagRequest{TeamId: team, FlagId: id, Version: v}
			}),
		withHints(flagSwitch("flag_delete", "Delete a flag (needs confirmation; refused while live flags depend on it).", "deleted", true, "DeleteFlag",
			(*admin.Service).DeleteFlag, func(team, id, v int64) *adminv1.DeleteFlagRequest {
				return &adminv1.DeleteFlagRequest{TeamId: team, FlagId: id, Version: v}
			}), true, true),
		{name: "condition_add", feature: "flags", scope: admin.ScopeFlagWrite,
			desc: "Add a release condition (target a cohort, properties, a group type) to a flag.",
			add: handler(flagTool(nil, func(in conditionAddIn, m map[string]any) error {
				g := groupsOf(m)
				if len(g) >= maxConditions {
					return errcode.Field(errcode.InvalidArgument, "condition", "at most %d conditions", maxConditions)
				}
				pos := len(g)
				if in.Position != nil && int(*in.Position) >= 0 && int(*in.Position) < pos {
					pos = int(*in.Position)
				}
				setGroups(m, slices.Insert(slices.Clone(g), pos, any(in.Condition.group())))
				return nil
			}, func(ctx context.Context, c *call, in conditionAddIn, team, id, version int64) (*adminv1.FeatureFlag, error) {
				cond, err := in.Condition.proto()
				if err != nil {
					return nil, err
				}
				resp, err := invoke(ctx, c, "AddCondition", (*admin.Service).AddCondition, &adminv1.AddConditionRequest{TeamId: team,
					FlagId: id, Version: version, Condition: cond, Position: in.Position})
				return resp.GetFlag(), err
			}))},
		{name: "condition_update", feature: "flags", scope: admin.ScopeFlagWrite, idem: true,
			desc: "Replace one release condition of a flag.",
			add: handler(flagTool(nil, func(in conditionUpdateIn, m map[string]any) error {
				g, err := condAt(m, in.Index)
				if err != nil {
					return err
				}
				g = slices.Clone(g)
				g[in.Index] = in.Condition.group()
				setGroups(m, g)
				return nil
			}, func(ctx context.Context, c *call, in conditionUpdateIn, team, id, version int64) (*adminv1.FeatureFlag, error) {
				cond, err := in.Condition.proto()
				if err != nil {
					return nil, err
				}
				resp, err := invoke(ctx, c, "UpdateCondition", (*admin.Service).UpdateCondition, &adminv1.UpdateConditionRequest{TeamId: team,
					FlagId: id, Version: version, Index: in.Index, Condition: cond})
				return resp.GetFlag(), err
			}))},
		{name: "condition_remove", feature: "flags", scope: admin.ScopeFlagWrite, destructive: true,
			desc: "Remove one release condition of a flag.",
			add: handler(flagTool(nil, func(in conditionRemoveIn, m map[string]any) error {
				g, err := condAt(m, in.Index)
				if err != nil {
					return err
				}
				setGroups(m, slices.Delete(slices.Clone(g), int(in.Index), int(in.Index)+1))
				return nil
			}, func(ctx context.Context, c *call, in conditionRemoveIn, team, id, version int64) (*adminv1.FeatureFlag, error) {
				resp, err := invoke(ctx, c, "RemoveCondition", (*admin.Service).RemoveCondition, &adminv1.RemoveConditionRequest{TeamId: team,
					FlagId: id, Version: version, Index: in.Index})
				return resp.GetFlag(), err
			}))},
		{name: "conditions_reorder", feature: "flags", scope: admin.ScopeFlagWrite, idem: true,
			desc: "Reorder a flag's release conditions (the first that matches decides).",
			add: handler(flagTool(nil, func(in conditionsReorderIn, m map[string]any) error {
				g := groupsOf(m)
				if len(in.Order) != len(g) {
					return errcode.Field(errcode.InvalidArgument, "order", "order must list each of the %d conditions once", len(g))
				}
				out := make([]any, len(g))
				for i, j := range in.Order {
					if j < 0 || int(j) >= len(g) {
						return errcode.Field(errcode.InvalidArgument, "order", "no condition %d", j)
					}
					out[i] = g[j]
				}
				setGroups(m, out)
				return nil
			}, func(ctx context.Context, c *call, in conditionsReorderIn, team, id, version int64) (*adminv1.FeatureFlag, error) {
				resp, err := invoke(ctx, c, "ReorderConditions", (*admin.Service).ReorderConditions, &adminv1.ReorderConditionsRequest{TeamId: team,
					FlagId: id, Version: version, Order: in.Order})
				return resp.GetFlag(), err
			}))},
		{name: "rollout_set", feature: "flags", scope: admin.ScopeFlagWrite, idem: true,
			desc: "Set one condition's rollout percentage (0..100). A jump to 100% needs confirmation; dry_run shows the persons whose value changes.",
			add: handler(flagTool(nil, func(in rolloutSetIn, m map[string]any) error {
				g, err := condAt(m, in.Index)
				if err != nil {
					return err
				}
				if in.RolloutPercentage < 0 || in.RolloutPercentage > 100 {
					return errcode.Field(errcode.InvalidArgument, "rollout_percentage", "rollout_percentage is 0..100")
				}
				gm, _ := g[in.Index].(map[string]any)
				gm["rollout_percentage"] = in.RolloutPercentage
				return nil
			}, func(ctx context.Context, c *call, in rolloutSetIn, team, id, version int64) (*adminv1.FeatureFlag, error) {
				resp, err := invoke(ctx, c, "SetRollout", (*admin.Service).SetRollout, &adminv1.SetRolloutRequest{TeamId: team,
					FlagId: id, Version: version, Index: in.Index, RolloutPercentage: in.RolloutPercentage})
				return resp.GetFlag(), err
			}))},
		{name: "overrides_set", feature: "flags", scope: admin.ScopeFlagWrite, idem: true,
			desc: "Replace a flag's overrides (distinct ids or group keys forced to a value, checked before the conditions). More than 100 ids needs confirmation.",
			add: handler(flagTool(func(in overridesSetIn) int {
				n := 0
				for _, o := range in.Overrides {
					n += len(o.DistinctIDs) + len(o.GroupKeys)
				}
				return n
			}, func(in overridesSetIn, m map[string]any) error {
				var l []any
				for _, o := range in.Overrides {
					om := map[string]any{"distinct_ids": anyStrings(o.DistinctIDs), "group_keys": anyStrings(o.GroupKeys), "value": o.Value}
					if o.GroupTypeIndex != nil {
						om["group_type_index"] = float64(*o.GroupTypeIndex)
					}
					l = append(l, om)
				}
				m["overrides"] = l
				return nil
			}, func(ctx context.Context, c *call, in overridesSetIn, team, id, version int64) (*adminv1.FeatureFlag, error) {
				var ovs []*adminv1.Override
				total := 0
				for _, o := range in.Overrides {
					total += len(o.DistinctIDs) + len(o.GroupKeys)
					if total > maxIDs {
						return nil, errcode.Field(errcode.InvalidArgument, "overrides", "at most %d ids", maxIDs)
					}
					v, err := structpb.NewValue(o.Value)
					if err != nil {
						return nil, errcode.Field(errcode.InvalidArgument, "overrides.value", "%v", err)
					}
					ovs = append(ovs, &adminv1.Override{DistinctIds: o.DistinctIDs, GroupTypeIndex: o.GroupTypeIndex, GroupKeys: o.GroupKeys, Value: v})
				}
				resp, err := invoke(ctx, c, "SetOverrides", (*admin.Service).SetOverrides, &adminv1.SetOverridesRequest{TeamId: team,
					FlagId: id, Version: version, Overrides: ovs})
				return resp.GetFlag(), err
			}))},
		ro(toolSpec{name: "flag_dependents", feature: "flags", scope: admin.ScopeFlagRead,
			desc: "The flags that depend on this flag (directly or through others).",
			add: handler(func(ctx context.Context, c *call, in flagKeyIn) (any, error) {
				team, err := c.team(in.TeamID)
				if err != nil {
					return nil, err
				}
				f, err := c.getFlag(ctx, team, in.Key)
				if err != nil {
					return nil, err
				}
				return invoke(ctx, c, "ListDependents", (*admin.Service).ListDependents, &adminv1.ListDependentsRequest{TeamId: team, FlagId: f.GetId()})
			})}),
		ro(toolSpec{name: "flag_explain", feature: "flags", scope: admin.ScopeFlagRead,
			desc: "Why a flag has its value for a distinct_id, condition by condition (the stored person, or properties given).",
			add: handler(func(ctx context.Context, c *call, in explainIn) (any, error) {
				team, err := c.team(in.TeamID)
				if err != nil {
					return nil, err
				}
				f, err := c.getFlag(ctx, team, in.Key)
				if err != nil {
					return nil, err
				}
				req := &adminv1.ExplainFlagRequest{TeamId: team, FlagId: f.GetId(), DistinctId: in.DistinctID, MergeProperties: in.MergeProperties, Groups: in.Groups}
				if in.PersonProperties != nil {
					if req.PersonProperties, err = structpb.NewStruct(in.PersonProperties); err != nil {
						return nil, errcode.Field(errcode.InvalidArgument, "person_properties", "%v", err)
					}
				}
				return invoke(ctx, c, "ExplainFlag", (*admin.Service).ExplainFlag, req)
			})}),
		ro(toolSpec{name: "flag_evaluate_proposed", feature: "flags", scope: admin.ScopeFlagRead,
			desc: "Evaluate a proposed flag definition for a distinct_id without saving it, condition by condition (validated as a write would be).",
			add: handler(func(ctx context.Context, c *call, in proposedIn) (any, error) {
				team, err := c.team(in.TeamID)
				if err != nil {
					return nil, err
				}
				var id int64
				if in.Key != "" {
					f, err := c.getFlag(ctx, team, in.Key)
					if err != nil {
						return nil, err
					}
					id = f.GetId()
				}
				def := map[string]any{"active": true}
				for k, v := range in.Definition {
					def[k] = v
				}
				fi, err := flagInput(def)
				if err != nil {
					return nil, err
				}
				req := &adminv1.ExplainFlagRequest{TeamId: team, FlagId: id, DistinctId: in.DistinctID, MergeProperties: in.MergeProperties,
					Groups: in.Groups, Proposed: fi}
				if in.PersonProperties != nil {
					if req.PersonProperties, err = structpb.NewStruct(in.PersonProperties); err != nil {
						return nil, errcode.Field(errcode.InvalidArgument, "person_properties", "%v", err)
					}
				}
				return invoke(ctx, c, "ExplainFlag", (*admin.Service).ExplainFlag, req)
			})}),
		ro(toolSpec{name: "blast_radius_job", feature: "flags", scope: admin.ScopeFlagRead,
			desc: "Progress and result of a blast radius job a dry run started on a large team.",
			add: handler(func(ctx context.Context, c *call, in jobIn) (any, error) {
				team, err := c.team(in.TeamID)
				if err != nil {
					return nil, err
				}
				resp, err := invoke(ctx, c, "GetBlastRadiusJob", (*admin.Service).GetBlastRadiusJob, &adminv1.GetBlastRadiusJobRequest{TeamId: team, JobId: in.JobID})
				if err != nil {
					return nil, err
				}
				return blastOf(resp.GetJob()), nil
			})}),
		ro(toolSpec{name: "flag_activity", feature: "activity", scope: admin.ScopeActivityRead,
			desc: "A flag's activity log, newest first: who changed what, with the diff.",
			add: handler(func(ctx context.Context, c *call, in activityIn) (any, error) {
				team, err := c.team(in.TeamID)
				if err != nil {
					return nil, err
				}
				f, err := c.getFlag(ctx, team, in.Key)
				if err != nil {
					return nil, err
				}
				return invoke(ctx, c, "ListFlagActivity", (*admin.Service).ListFlagActivity, &adminv1.ListFlagActivityRequest{TeamId: team,
					FlagId: f.GetId(), PageSize: in.PageSize, PageToken: in.PageToken})
			})}),
	}
	toolSpecs = append(toolSpecs, cohortSpecs()...)
	toolSpecs = append(toolSpecs, earlyAccessSpecs()...)
	toolSpecs = append(toolSpecs, signalSpecs()...)
	toolSpecs = append(toolSpecs, usageSpecs()...)
}

func withHints(t toolSpec, destructive, idem bool) toolSpec {
	t.destructive, t.idem = destructive, idem
	return t
}

// flagSwitch is a flag tool that sets one field through one method.
func flagSwitch[Req any, Resp interface{ GetFlag() *adminv1.FeatureFlag }](name, desc, field string, value bool, method string,
	fn func(*admin.Service, context.Context, Req) (Resp, error), req func(team, id, version int64) Req) toolSpec {
	return toolSpec{name: name, feature: "flags", scope: admin.ScopeFlagWrite, desc: desc, idem: true,
		add: handler(flagTool(nil, func(_ flagMut, m map[string]any) error { m[field] = value; return nil },
			func(ctx context.Context, c *call, _ flagMut, team, id, version int64) (*adminv1.FeatureFlag, error) {
				resp, err := invoke(ctx, c, method, fn, req(team, id, version))
				if err != nil {
					return nil, err
				}
				return resp.GetFlag(), nil
			}))}
}

func anyStrings(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
