package mcpsvc

import (
	"context"
	"strings"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/errcode"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

type (
	featureCreateIn struct {
		TeamID           int64  `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
		Name             string `json:"name"`
		Description      string `json:"description,omitempty"`
		Stage            string `json:"stage,omitempty" jsonschema:"concept, alpha, beta, general_availability or archived; default: concept"`
		DocumentationURL string `json:"documentation_url,omitempty"`
		FlagKey          string `json:"flag_key,omitempty" jsonschema:"an existing flag to gate the feature; default: a new flag is made"`
		DryRun           bool   `json:"dry_run,omitempty" jsonschema:"answer what would be created without saving"`
	}
	featureIDIn struct {
		TeamID    int64  `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
		FeatureID string `json:"feature_id"`
	}
	featureUpdateIn struct {
		safeMut
		FeatureID        string  `json:"feature_id"`
		Name             *string `json:"name,omitempty"`
		Description      *string `json:"description,omitempty"`
		Stage            string  `json:"stage,omitempty" jsonschema:"move to this stage: concept, alpha, beta, general_availability or archived"`
		DocumentationURL *string `json:"documentation_url,omitempty"`
	}
	featureDeleteIn struct {
		safeMut
		FeatureID string `json:"feature_id"`
	}
)

func stageOf(s string) (adminv1.Stage, error) {
	if s == "" {
		return adminv1.Stage_STAGE_UNSPECIFIED, nil
	}
	v, ok := adminv1.Stage_value["STAGE_"+strings.ToUpper(s)]
	if !ok {
		return 0, errcode.Field(errcode.InvalidArgument, "stage", "stage is concept, alpha, beta, general_availability or archived")
	}
	return adminv1.Stage(v), nil
}

func stageName(s adminv1.Stage) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "STAGE_"))
}

type slimFeature struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Stage   string `json:"stage"`
	FlagKey string `json:"flag_key"`
	Version int64  `json:"version"`
}

func slimF(f *adminv1.EarlyAccessFeature) slimFeature {
	return slimFeature{ID: f.GetId(), Name: f.GetName(), Stage: stageName(f.GetStage()), FlagKey: f.GetFlagKey(), Version: f.GetVersion()}
}

func featureMap(f *adminv1.EarlyAccessFeature) map[string]any {
	return map[string]any{"key": f.GetName(), "name": f.GetName(), "description": f.GetDescription(), "stage": stageName(f.GetStage()),
		"documentation_url": f.GetDocumentationUrl(), "flag_key": f.GetFlagKey()}
}

func (c *call) getFeature(ctx context.Context, team int64, id string) (*adminv1.EarlyAccessFeature, error) {
	resp, err := invoke(ctx, c, "GetEarlyAccessFeature", (*admin.Service).GetEarlyAccessFeature, &adminv1.GetEarlyAccessFeatureRequest{TeamId: team, FeatureId: id})
	if err != nil {
		return nil, err
	}
	return resp.GetFeature(), nil
}

func earlyAccessSpecs() []toolSpec {
	ro := func(t toolSpec) toolSpec { t.readOnly, t.idem = true, true; return t }
	return []toolSpec{
		ro(toolSpec{name: "early_access_list", feature: "early_access", scope: admin.ScopeEarlyAccessRead,
			desc: "List the team's early access features (id, name, stage, flag key).",
			add: handler(func(ctx context.Context, c *call, in teamIn) (any, error) {
				team, err := c.team(in.TeamID)
				if err != nil {
					return nil, err
				}
				resp, err := invoke(ctx, c, "ListEarlyAccessFeatures", (*admin.Service).ListEarlyAccessFeatures, &adminv1.ListEarlyAccessFeaturesRequest{TeamId: team})
				if err != nil {
					return nil, err
				}
				rows := []slimFeature{}
				for _, f := range resp.GetFeatures() {
					rows = append(rows, slimF(f))
				}
				return map[string]any{"features": rows}, nil
			})}),
		ro(toolSpec{name: "early_access_get", feature: "early_access", scope: admin.ScopeEarlyAccessRead,
			desc: "An early access feature in full.",
			add: handler(func(ctx context.Context, c *call, in featureIDIn) (any, error) {
				team, err := c.team(in.TeamID)
				if err != nil {
					return nil, err
				}
				return c.getFeature(ctx, team, in.FeatureID)
			})}),
		{name: "early_access_create", feature: "early_access", scope: admin.ScopeEarlyAccessWrite,
			desc: "Create an early access feature, gated by a flag (a new one unless flag_key names one). Its stage decides who may opt in.",
			add: handler(func(ctx context.Context, c *call, in featureCreateIn) (any, error) {
				team, err := c.team(in.TeamID)
				if err != nil {
					return nil, err
				}
				st, err := stageOf(in.Stage)
				if err != nil {
					return nil, err
				}
				if in.DryRun {
					return dryRunAnswer{DryRun: true, Diff: Diff(map[string]any{}, map[string]any{"name": in.Name, "stage": in.Stage, "flag_key": in.FlagKey})}, nil
				}
				resp, err := invoke(ctx, c, "CreateEarlyAccessFeature", (*admin.Service).CreateEarlyAccessFeature, &adminv1.CreateEarlyAccessFeatureRequest{
					TeamId: team, Name: in.Name, Description: in.Description, Stage: st, DocumentationUrl: in.DocumentationURL, FlagKey: in.FlagKey})
				if err != nil {
					return nil, err
				}
				return slimF(resp.GetFeature()), nil
			})},
		{name: "early_access_update", feature: "early_access", scope: admin.ScopeEarlyAccessWrite, idem: true,
			desc: "Change an early access feature: the fields given replace the feature's; stage moves it (its flag's filters follow).",
			add: handler(func(ctx context.Context, c *call, in featureUpdateIn) (any, error) {
				team, err := c.team(in.TeamID)
				if err != nil {
					return nil, err
				}
				st, err := stageOf(in.Stage)
				if err != nil {
					return nil, err
				}
				cur, err := c.getFeature(ctx, team, in.FeatureID)
				if err != nil {
					return nil, err
				}
				after := featureMap(cur)
				if in.Name != nil {
					after["name"] = *in.Name
				}
				if in.Description != nil {
					after["description"] = *in.Description
				}
				if in.DocumentationURL != nil {
					after["documentation_url"] = *in.DocumentationURL
				}
				if in.Stage != "" {
					after["stage"] = stageName(st)
				}
				return c.safely(ctx, in.safeMut, in, featureMap(cur), after, 0, func() (any, error) {
					resp, err := invoke(ctx, c, "UpdateEarlyAccessFeature", (*admin.Service).UpdateEarlyAccessFeature, &adminv1.UpdateEarlyAccessFeatureRequest{
						TeamId: team, FeatureId: in.FeatureID, Version: versionOr(in.Version, cur.GetVersion()), Name: in.Name,
						Description: in.Description, Stage: st, DocumentationUrl: in.DocumentationURL})
					if err != nil {
						return nil, err
					}
					return slimF(resp.GetFeature()), nil
				})
			})},
		{name: "early_access_delete", feature: "early_access", scope: admin.ScopeEarlyAccessWrite, destructive: true, idem: true,
			desc: "Delete an early access feature (needs confirmation).",
			add: handler(func(ctx context.Context, c *call, in featureDeleteIn) (any, error) {
				team, err := c.team(in.TeamID)
				if err != nil {
					return nil, err
				}
				cur, err := c.getFeature(ctx, team, in.FeatureID)
				if err != nil {
					return nil, err
				}
				return c.safely(ctx, in.safeMut, in, featureMap(cur), map[string]any{}, 0, func() (any, error) {
					_, err := invoke(ctx, c, "DeleteEarlyAccessFeature", (*admin.Service).DeleteEarlyAccessFeature, &adminv1.DeleteEarlyAccessFeatureRequest{
						TeamId: team, FeatureId: in.FeatureID, Version: versionOr(in.Version, cur.GetVersion())})
					if err != nil {
						return nil, err
					}
					return map[string]any{"deleted": in.FeatureID}, nil
				})
			})},
	}
}
