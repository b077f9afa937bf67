package mcpsvc

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/errcode"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// Tool input bounds.
const (
	maxConditions = 100
	maxIDs        = 10000
)

// flagMut is what every flag mutation takes.
type flagMut struct {
	TeamID       int64  `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
	Key          string `json:"key" jsonschema:"the flag's key"`
	Version      int64  `json:"version,omitempty" jsonschema:"the version you read (optimistic concurrency: a concurrent change is refused with version_conflict); 0: the current one"`
	DryRun       bool   `json:"dry_run,omitempty" jsonschema:"answer the diff and the blast radius (persons whose value would change) without saving"`
	ConfirmToken string `json:"confirm_token,omitempty" jsonschema:"the token a previous call answered, to confirm a delete, a bulk change or a jump to 100%"`
}

// conditionIn is one release condition.
type conditionIn struct {
	Properties        []map[string]any `json:"properties,omitempty" jsonschema:"PostHog property filters {key, type (person, group, cohort, flag), operator, value}; a cohort: {key: 'id', type: 'cohort', value: cohort id}; a group: type group with group_type_index"`
	RolloutPercentage *float64         `json:"rollout_percentage,omitempty" jsonschema:"0..100; omitted: 100"`
	Variant           string           `json:"variant,omitempty" jsonschema:"force this variant for the condition"`
	Description       string           `json:"description,omitempty"`
	GroupTypeIndex    *int32           `json:"group_type_index,omitempty" jsonschema:"aggregate this condition by a group type (target companies ...); omitted: persons"`
}

func (c conditionIn) proto() (*adminv1.Condition, error) {
	items := make([]any, len(c.Properties))
	for i, p := range c.Properties {
		items[i] = p
	}
	lv, err := structpb.NewList(items)
	if err != nil {
		return nil, errcode.Field(errcode.InvalidArgument, "condition.properties", "%v", err)
	}
	out := &adminv1.Condition{Properties: lv, RolloutPercentage: c.RolloutPercentage, Description: c.Description}
	if c.Variant != "" {
		out.Variant = &c.Variant
	}
	if c.GroupTypeIndex != nil {
		out.Target = &adminv1.Condition_GroupTypeIndex{GroupTypeIndex: *c.GroupTypeIndex}
	} else {
		out.Target = &adminv1.Condition_Persons{Persons: true}
	}
	return out, nil
}

// group is the condition as PostHog's filters JSON holds it (for diffs).
func (c conditionIn) group() map[string]any {
	g := map[string]any{"properties": anyList(c.Properties)}
	if c.RolloutPercentage != nil {
		g["rollout_percentage"] = *c.RolloutPercentage
	} else {
		g["rollout_percentage"] = nil
	}
	if c.Variant != "" {
		g["variant"] = c.Variant
	}
	if c.Description != "" {
		g["description"] = c.Description
	}
	if c.GroupTypeIndex != nil {
		g["aggregation_group_type_index"] = float64(*c.GroupTypeIndex)
	}
	return g
}

func anyList(ps []map[string]any) []any {
	out := make([]any, len(ps))
	for i, p := range ps {
		out[i] = p
	}
	return out
}

// flagMap is a flag as PostHog's JSON (proto field names).
func flagMap(f *adminv1.FeatureFlag) map[string]any {
	b, _ := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(f)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"created_at", "updated_at", "created_by", "updated_by", "warnings", "id", "team_id", "version"} {
		delete(m, k)
	}
	return m
}

func flagInput(m map[string]any) (*adminv1.FlagInput, error) {
	keep := map[string]any{}
	for _, k := range []string{"key", "name", "description", "active", "tags", "ensure_experience_continuity",
		"evaluation_runtime", "bucketing_identifier", "filters", "overrides"} {
		if v, ok := m[k]; ok && v != nil {
			keep[k] = v
		}
	}
	b, err := json.Marshal(keep)
	if err != nil {
		return nil, err
	}
	in := &adminv1.FlagInput{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, in); err != nil {
		return nil, errcode.New(errcode.InvalidArgument, "flag: %v", err)
	}
	return in, nil
}

func groupsOf(m map[string]any) []any {
	f, _ := m["filters"].(map[string]any)
	g, _ := f["groups"].([]any)
	return g
}

func setGroups(m map[string]any, g []any) {
	f, _ := m["filters"].(map[string]any)
	if f == nil {
		f = map[string]any{}
		m["filters"] = f
	}
	f["groups"] = g
}

// slimFlag is a flag as lists show it.
type slimFlag struct {
	Key     string `json:"key"`
	Name    string `json:"name,omitempty"`
	Status  string `json:"status"`
	Rollout string `json:"rollout"`
	Version int64  `json:"version"`
	// LastEvaluatedAt is the last remote evaluation (usage statistics).
	LastEvaluatedAt *time.Time `json:"last_evaluated_at,omitempty"`
}

func slim(f *adminv1.FeatureFlag) slimFlag {
	st := "INACTIVE"
	switch {
	case f.GetArchived():
		st = "ARCHIVED"
	case f.GetStatus() == "STALE": // usage statistics' stale rule
		st = "STALE"
	case f.GetActive():
		st = "ACTIVE"
	}
	out := slimFlag{Key: f.GetKey(), Name: f.GetName(), Status: st, Rollout: rolloutSummary(f), Version: f.GetVersion()}
	if t := f.GetLastEvaluatedAt(); t != nil {
		at := t.AsTime().UTC()
		out.LastEvaluatedAt = &at
	}
	return out
}

// rolloutSummary says in a few words whom a flag serves.
func rolloutSummary(f *adminv1.FeatureFlag) string {
	groups := groupsOf(map[string]any{"filters": f.GetFilters().AsMap()})
	if len(groups) == 0 {
		return "no conditions"
	}
	var parts []string
	for _, g := range groups {
		gm, _ := g.(map[string]any)
		pct := "100%"
		if r, ok := gm["rollout_percentage"].(float64); ok {
			pct = fmt.Sprintf("%g%%", r)
		}
		props, _ := gm["properties"].([]any)
		who := "everyone"
		if len(props) > 0 {
			var kinds []string
			for _, p := range props {
				pm, _ := p.(map[string]any)
				t, _ := pm["type"].(string)
				kinds = append(kinds, t)
			}
			who = strings.Join(kinds, "+") + " filters"
		}
		if gm["aggregation_group_type_index"] != nil {
			who += " (groups)"
		}
		parts = append(parts, who+" @ "+pct)
	}
	return strings.Join(parts, "; ")
}

// getFlag reads a flag by key through the service.
func (c *call) getFlag(ctx context.Context, team int64, key string) (*adminv1.FeatureFlag, error) {
	if key == "" {
		return nil, errcode.Field(errcode.InvalidArgument, "key", "key is required")
	}
	resp, err := invoke(ctx, c, "GetFlagByKey", (*admin.Service).GetFlagByKey, &adminv1.GetFlagByKeyRequest{TeamId: team, Key: key})
	if err != nil {
		return nil, err
	}
	return resp.GetFlag(), nil
}

// flagDone is a mutation's answer: the flag (slim) and its warnings.
type flagDone struct {
	Flag     slimFlag           `json:"flag"`
	Warnings []*adminv1.Warning `json:"warnings,omitempty"`
}

// mutateFlag runs one flag mutation with the safety rules: the edit is
// applied to a copy first for the diff, the blast radius and the
// confirmation rule; dry_run stops there; then do saves through the
// service.
func (c *call) mutateFlag(ctx context.Context, m flagMut, args any, bulk int,
	edit func(map[string]any) error, do func(ctx context.Context, team, id, version int64) (*adminv1.FeatureFlag, error)) (any, error) {
	team, err := c.team(m.TeamID)
	if err != nil {
		return nil, err
	}
	cur, err := c.getFlag(ctx, team, m.Key)
	if err != nil {
		return nil, err
	}
	before := flagMap(cur)
	after := flagMap(cur)
	if err := edit(after); err != nil {
		return nil, err
	}
	reason := confirmReason(c.tool, before, after, bulk)
	if m.DryRun {
		return c.dryRun(ctx, team, cur.GetId(), before, after, reason)
	}
	if reason != "" {
		if ask, err := c.confirm(ctx, m.ConfirmToken, args, reason); ask != nil || err != nil {
			return ask, err
		}
	}
	version := m.Version
	if version == 0 {
		version = cur.GetVersion()
	}
	f, err := do(ctx, team, cur.GetId(), version)
	if err != nil {
		return nil, err
	}
	return flagDone{Flag: slim(f), Warnings: f.GetWarnings()}, nil
}

// dryRunAnswer is what dry_run answers.
type dryRunAnswer struct {
	DryRun       bool     `json:"dry_run"`
	Diff         []Change `json:"diff"`
	BlastRadius  any      `json:"blast_radius,omitempty"`
	NeedsConfirm string   `json:"needs_confirmation,omitempty"`
}

func (c *call) dryRun(ctx context.Context, team, id int64, before, after map[string]any, reason string) (any, error) {
	out := dryRunAnswer{DryRun: true, Diff: Diff(before, after), NeedsConfirm: reason}
	if after["deleted"] == true || after["archived"] == true {
		after = map[string]any{"key": after["key"], "active": false, "filters": after["filters"]}
	}
	in, err := flagInput(after)
	if err != nil {
		return nil, err
	}
	job, err := invoke(ctx, c, "StartBlastRadius", (*admin.Service).StartBlastRadius,
		&adminv1.StartBlastRadiusRequest{TeamId: team, FlagId: id, Flag: in})
	if err != nil {
		return nil, err
	}
	out.BlastRadius = blastOf(job.GetJob())
	return out, nil
}

func blastOf(j *adminv1.BlastRadiusJob) map[string]any {
	b := map[string]any{"job_id": j.GetId(), "state": strings.TrimPrefix(j.GetState().String(), "JOB_STATE_"),
		"rows_done": j.GetRowsDone(), "rows_total": j.GetRowsTotal(), "changed": j.GetChanged()}
	if len(j.GetTransitions()) > 0 {
		b["transitions"] = j.GetTransitions()
	}
	if len(j.GetSample()) > 0 {
		b["sample"] = j.GetSample()
	}
	if j.GetGroupsEvaluated() > 0 { // a group-aggregated condition set: groups too
		b["groups_evaluated"], b["groups_changed"] = j.GetGroupsEvaluated(), j.GetGroupsChanged()
		if len(j.GetGroupTransitions()) > 0 {
			b["group_transitions"] = j.GetGroupTransitions()
		}
		if len(j.GetGroupSample()) > 0 {
			b["group_sample"] = j.GetGroupSample()
		}
	}
	if j.GetState() != adminv1.JobState_JOB_STATE_DONE {
		b["note"] = "the team is large: poll blast_radius_job with job_id"
	}
	return b
}

// confirmReason says why a change needs confirmation ("" if it does not):
// deletes, bulk changes and any condition jumping to 100%.
func confirmReason(tool string, before, after map[string]any, bulk int) string {
	switch {
	case strings.HasSuffix(tool, "_delete"):
		return "deletes " + fmt.Sprint(before["key"])
	case bulk > BulkLimit:
		return fmt.Sprintf("bulk change of %d ids", bulk)
	}
	if after == nil || after["active"] != true {
		return ""
	}
	bg := groupsOf(before)
	for i, g := range groupsOf(after) {
		if full(g) && (before["active"] != true || i >= len(bg) || !full(bg[i])) {
			return fmt.Sprintf("condition %d of %v goes to 100%%", i, after["key"])
		}
	}
	return ""
}

func full(g any) bool {
	gm, _ := g.(map[string]any)
	r, ok := gm["rollout_percentage"].(float64)
	return !ok || r >= 100
}
