package mcpsvc

import (
	"context"
	"encoding/json"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/errcode"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// safeMut is what every cohort and early access mutation takes.
type safeMut struct {
	TeamID       int64  `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
	Version      int64  `json:"version,omitempty" jsonschema:"the version you read (optimistic concurrency); 0: the current one"`
	DryRun       bool   `json:"dry_run,omitempty" jsonschema:"answer the diff without saving"`
	ConfirmToken string `json:"confirm_token,omitempty" jsonschema:"the token a previous call answered, to confirm a delete or a bulk change"`
}

type (
	cohortFields struct {
		Name        string         `json:"name,omitempty"`
		Description string         `json:"description,omitempty"`
		Kind        string         `json:"kind,omitempty" jsonschema:"static, property or behavioral; default: from filters and is_static"`
		Filters     map[string]any `json:"filters,omitempty" jsonschema:"PostHog cohort filters: {properties: {type: AND|OR, values: [...]}}; behavioural filters (performed event, N times, in a window) are values of type behavioral"`
		IsStatic    bool           `json:"is_static,omitempty" jsonschema:"a static cohort: members are listed (cohort_members_add)"`
	}
	cohortCreateIn struct {
		TeamID int64 `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
		cohortFields
		DryRun bool `json:"dry_run,omitempty" jsonschema:"answer what would be created without saving"`
	}
	cohortIDIn struct {
		TeamID   int64 `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
		CohortID int64 `json:"cohort_id"`
	}
	cohortListIn struct {
		TeamID    int64  `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
		PageSize  int32  `json:"page_size,omitempty"`
		PageToken string `json:"page_token,omitempty"`
	}
	cohortUpdateIn struct {
		safeMut
		CohortID int64 `json:"cohort_id"`
		cohortFields
	}
	cohortDeleteIn struct {
		safeMut
		CohortID int64 `json:"cohort_id"`
	}
	membersIn struct {
		safeMut
		CohortID    int64    `json:"cohort_id"`
		DistinctIDs []string `json:"distinct_ids" jsonschema:"at most 10000; more than 100 needs confirmation"`
	}
	membersListIn struct {
		TeamID    int64  `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
		CohortID  int64  `json:"cohort_id"`
		PageSize  int32  `json:"page_size,omitempty"`
		PageToken string `json:"page_token,omitempty"`
	}
)

var cohortKinds = map[string]adminv1.CohortKind{"": adminv1.CohortKind_COHORT_KIND_UNSPECIFIED,
	"static": adminv1.CohortKind_COHORT_KIND_STATIC, "property": adminv1.CohortKind_COHORT_KIND_PROPERTY,
	"behavioral": adminv1.CohortKind_COHORT_KIND_BEHAVIORAL, "behavioural": adminv1.CohortKind_COHORT_KIND_BEHAVIORAL}

func (f cohortFields) input() (*adminv1.CohortInput, error) {
	k, ok := cohortKinds[strings.ToLower(f.Kind)]
	if !ok {
		return nil, errcode.Field(errcode.InvalidArgument, "kind", "kind is static, property or behavioral")
	}
	in := &adminv1.CohortInput{Name: f.Name, Description: f.Description, Kind: k, IsStatic: f.IsStatic}
	if f.Filters != nil {
		st, err := structpb.NewStruct(f.Filters)
		if err != nil {
			return nil, errcode.Field(errcode.InvalidArgument, "filters", "%v", err)
		}
		in.Filters = st
	}
	return in, nil
}

type slimCohort struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Version int64  `json:"version"`
}

func slimC(c *adminv1.Cohort) slimCohort {
	return slimCohort{ID: c.GetId(), Name: c.GetName(), Kind: strings.ToLower(strings.TrimPrefix(c.GetKind().String(), "COHORT_KIND_")), Version: c.GetVersion()}
}

func cohortMap(c *adminv1.Cohort) map[string]any {
	b, _ := protojson.MarshalOptions{UseProtoNames: true}.Marshal(c)
	m := map[string]any{}
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"created_at", "updated_at", "version", "id", "team_id"} {
		delete(m, k)
	}
	return m
}

func (c *call) getCohort(ctx context.Context, team, id int64) (*adminv1.Cohort, error) {
	resp, err := invoke(ctx, c, "GetCohort", (*admin.Service).GetCohort, &adminv1.GetCohortRequest{TeamId: team, CohortId: id})
	if err != nil {
		return nil, err
	}
	return resp.GetCohort(), nil
}

// safely applies the dry-run and confirmation rules to a cohort or early
// access mutation: before and after are the JSON views, bulk the ids it
// names.
func (c *call) safely(ctx context.Context, m safeMut, args any, before, after map[string]any, bulk int, do func() (any, error)) (any, error) {
	reason := confirmReason(c.tool, before, nil, bulk)
	if m.DryRun {
		return dryRunAnswer{DryRun: true, Diff: Diff(before, after), NeedsConfirm: reason}, nil
	}
	if reason != "" {
		if ask, err := c.confirm(ctx, m.ConfirmToken, args, reason); ask != nil || err != nil {
			return ask, err
		}
	}
	return do()
}

func cohortSpecs() []toolSpec {
	ro := func(t toolSpec) toolSpec { t.readOnly, t.idem = true, true; return t }
	return []toolSpec{
		ro(toolSpec{name: "cohorts_list", feature: "cohorts", scope: admin.ScopeCohortRead,
			desc: "List the team's cohorts as slim rows (id, name, kind, version). cohort_get gives the filters.",
			add: handler(func(ctx context.Context, c *call, in cohortListIn) (any, error) {
				team, err := c.team(in.TeamID)
				if err != nil {
					return nil, err
				}
				resp, err := invoke(ctx, c, "ListCohorts", (*admin.Service).ListCohorts, &adminv1.ListCohortsRequest{TeamId: team, PageSize: in.PageSize, PageToken: in.PageToken})
				if err != nil {
					return nil, err
				}
				rows := []slimCohort{}
				for _, x := range resp.GetResults() {
					rows = append(rows, slimC(x))
				}
				return map[string]any{"cohorts": rows, "count": resp.GetCount(), "next_page_token": resp.GetNextPageToken()}, nil
			})}),
		ro(toolSpec{name: "cohort_get", feature: "cohorts", scope: admin.ScopeCohortRead,
			desc: "A cohort's full definition.",
			add: handler(func(ctx context.Context, c *call, in cohortIDIn) (any, error) {
				team, err := c.team(in.TeamID)
				if err != nil {
					return nil, err
				}
				return c.getCohort(ctx, team, in.CohortID)
			})}),
		{name: "cohort_create", feature: "cohorts", scope: admin.ScopeCohortWrite,
			desc: "Create a cohort: static (listed members), property (person properties) or behavioral (performed events in a window).",
			add: handler(func(ctx context.Context, c *call, in cohortCreateIn) (any, error) {
				team, err := c.team(in.TeamID)
				if err != nil {
					return nil, err
				}
				ci, err := in.input()
				if err != nil {
					return nil, err
				}
				if in.DryRun {
					return dryRunAnswer{DryRun: true, Diff: Diff(map[string]any{}, map[string]any{"name": in.Name, "kind": in.Kind, "filters": in.Filters, "is_static": in.IsStatic})}, nil
				}
				resp, err := invoke(ctx, c, "CreateCohort", (*admin.Service).CreateCohort, &adminv1.CreateCohortRequest{TeamId: team, Cohort: ci})
				if err != nil {
					return nil, err
				}
				return map[string]any{"cohort": slimC(resp.GetCohort())}, nil
			})},
		{name: "cohort_update", feature: "cohorts", scope: admin.ScopeCohortWrite, idem: true,
			desc: "Replace a cohort's definition (name, description, kind, filters: all replaced, not merged).",
			add: handler(func(ctx context.Context, c *call, in cohortUpdateIn) (any, error) {
				team, err := c.team(in.TeamID)
				if err != nil {
					return nil, err
				}
				cur, err := c.getCohort(ctx, team, in.CohortID)
				if err != nil {
					return nil, err
				}
				ci, err := in.input()
				if err != nil {
					return nil, err
				}
				after := cohortMap(cur)
				after["name"], after["description"], after["filters"] = in.Name, in.Description, in.Filters
				return c.safely(ctx, in.safeMut, in, cohortMap(cur), after, 0, func() (any, error) {
					resp, err := invoke(ctx, c, "UpdateCohort", (*admin.Service).UpdateCohort, &adminv1.UpdateCohortRequest{TeamId: team,
						CohortId: in.CohortID, Version: versionOr(in.Version, cur.GetVersion()), Cohort: ci})
					if err != nil {
						return nil, err
					}
					return map[string]any{"cohort": slimC(resp.GetCohort())}, nil
				})
			})},
		{name: "cohort_delete", feature: "cohorts", scope: admin.ScopeCohortWrite, destructive: true, idem: true,
			desc: "Delete a cohort (needs confirmation; refused while flags use it).",
			add: handler(func(ctx context.Context, c *call, in cohortDeleteIn) (any, error) {
				team, err := c.team(in.TeamID)
				if err != nil {
					return nil, err
				}
				cur, err := c.getCohort(ctx, team, in.CohortID)
				if err != nil {
					return nil, err
				}
				before := cohortMap(cur)
				before["key"] = cur.GetName()
				after := cohortMap(cur)
				after["deleted"] = true
				return c.safely(ctx, in.safeMut, in, before, after, 0, func() (any, error) {
					resp, err := invoke(ctx, c, "DeleteCohort", (*admin.Service).DeleteCohort, &adminv1.DeleteCohortRequest{TeamId: team,
						CohortId: in.CohortID, Version: versionOr(in.Version, cur.GetVersion())})
					if err != nil {
						return nil, err
					}
					return map[string]any{"deleted": slimC(resp.GetCohort())}, nil
				})
			})},
		membersTool("cohort_members_add", "Add distinct ids to a static cohort.", "AddCohortMembers", func(ctx context.Context, c *call, team int64, in membersIn) (any, error) {
			return invoke(ctx, c, "AddCohortMembers", (*admin.Service).AddCohortMembers, &adminv1.AddCohortMembersRequest{TeamId: team, CohortId: in.CohortID, DistinctIds: in.DistinctIDs})
		}),
		withHints(membersTool("cohort_members_remove", "Remove distinct ids from a static cohort.", "RemoveCohortMembers", func(ctx context.Context, c *call, team int64, in membersIn) (any, error) {
			return invoke(ctx, c, "RemoveCohortMembers", (*admin.Service).RemoveCohortMembers, &adminv1.RemoveCohortMembersRequest{TeamId: team, CohortId: in.CohortID, DistinctIds: in.DistinctIDs})
		}), true, true),
		ro(toolSpec{name: "cohort_members_list", feature: "cohorts", scope: admin.ScopeCohortRead,
			desc: "A static cohort's members, a page at a time.",
			add: handler(func(ctx context.Context, c *call, in membersListIn) (any, error) {
				team, err := c.team(in.TeamID)
				if err != nil {
					return nil, err
				}
				return invoke(ctx, c, "ListCohortMembers", (*admin.Service).ListCohortMembers, &adminv1.ListCohortMembersRequest{TeamId: team,
					CohortId: in.CohortID, PageSize: in.PageSize, PageToken: in.PageToken})
			})}),
	}
}

func membersTool(name, desc, method string, do func(context.Context, *call, int64, membersIn) (any, error)) toolSpec {
	return toolSpec{name: name, feature: "cohorts", scope: admin.ScopeCohortWrite, idem: true,
		desc: desc + " More than 100 ids needs confirmation.",
		add: handler(func(ctx context.Context, c *call, in membersIn) (any, error) {
			team, err := c.team(in.TeamID)
			if err != nil {
				return nil, err
			}
			if len(in.DistinctIDs) > maxIDs {
				return nil, errcode.Field(errcode.InvalidArgument, "distinct_ids", "at most %d ids", maxIDs)
			}
			var before, after map[string]any
			if strings.HasSuffix(name, "_add") {
				before, after = map[string]any{}, map[string]any{"members_added": anyStrings(in.DistinctIDs)}
			} else {
				before, after = map[string]any{"members_removed": anyStrings(in.DistinctIDs)}, map[string]any{}
			}
			if in.DryRun {
				// The ids must name a cohort the key may change.
				if _, err := c.getCohort(ctx, team, in.CohortID); err != nil {
					return nil, err
				}
			}
			return c.safely(ctx, in.safeMut, in, before, after, len(in.DistinctIDs), func() (any, error) { return do(ctx, c, team, in) })
		})}
}

func versionOr(v, cur int64) int64 {
	if v != 0 {
		return v
	}
	return cur
}
