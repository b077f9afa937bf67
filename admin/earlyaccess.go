package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/changes"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/flags"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

var stages = map[adminv1.Stage]catalog.Stage{
	adminv1.Stage_STAGE_CONCEPT:              catalog.StageConcept,
	adminv1.Stage_STAGE_ALPHA:                catalog.StageAlpha,
	adminv1.Stage_STAGE_BETA:                 catalog.StageBeta,
	adminv1.Stage_STAGE_GENERAL_AVAILABILITY: catalog.StageGA,
	adminv1.Stage_STAGE_ARCHIVED:             catalog.StageArchived,
}

func stageProto(s catalog.Stage) adminv1.Stage {
	for k, v := range stages {
		if v == s {
			return k
		}
	}
	return adminv1.Stage_STAGE_UNSPECIFIED
}

// gaDescription marks the condition a feature's flag gets at general
// availability, so that a later stage change can take it away again.
const gaDescription = "early access: general availability"

// EnrollmentProperty is the person property that says a person opted into
// the early access feature of a flag.
func EnrollmentProperty(flagKey string) string { return "$feature_enrollment/" + flagKey }

// stageFilters rewrites a feature flag's enrollment for a stage: every
// stage but archived gives the flag to enrolled persons (a super condition
// on the enrollment property); general availability adds a condition for
// everyone; the other conditions are kept.
func stageFilters(f *flags.Flag, st catalog.Stage) {
	hundred := 100.0
	f.Filters.SuperGroups = nil
	f.Filters.Groups = slices.DeleteFunc(f.Filters.Groups, func(c flags.Condition) bool { return c.Description == gaDescription })
	if f.Filters.Groups == nil {
		f.Filters.Groups = []flags.Condition{}
	}
	if st == catalog.StageArchived {
		f.Active = false
		return
	}
	f.Active = true
	f.Filters.SuperGroups = []flags.Condition{{
		Properties: []flags.PropertyFilter{{Key: EnrollmentProperty(f.Key), Type: "person", Operator: "exact",
			Value: json.RawMessage(`["true"]`)}},
		RolloutPercentage: &hundred,
	}}
	if st == catalog.StageGA {
		f.Filters.Groups = append(f.Filters.Groups, flags.Condition{Properties: []flags.PropertyFilter{},
			RolloutPercentage: &hundred, Description: gaDescription})
	}
}

func featureProto(f catalog.EarlyAccessFeature) *adminv1.EarlyAccessFeature {
	out := &adminv1.EarlyAccessFeature{
		Id: f.ID, TeamId: f.TeamID, Name: f.Name, Description: f.Description, Stage: stageProto(f.Stage),
		DocumentationUrl: f.DocumentationURL, FlagId: f.FlagID, FlagKey: f.Key, Version: f.Version,
		CreatedAt: ts(f.CreatedAt), UpdatedAt: ts(f.UpdatedAt),
	}
	return out
}

func checkFeatureFields(name, desc, docs string) error {
	if name == "" || len(name) > 400 {
		return errcode.Field(errcode.InvalidArgument, "name", "name is required, at most 400 bytes")
	}
	if len(desc) > 10000 {
		return errcode.Field(errcode.InvalidArgument, "description", "description is at most 10000 bytes")
	}
	if docs != "" {
		u, err := url.Parse(docs)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(docs) > 2000 {
			return errcode.Field(errcode.InvalidArgument, "documentation_url", "documentation_url is an http(s) URL")
		}
	}
	return nil
}

// slug derives a flag key from a name.
func slug(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// CreateEarlyAccessFeature creates a feature and its flag.
func (s *Service) CreateEarlyAccessFeature(ctx context.Context, req *adminv1.CreateEarlyAccessFeatureRequest) (*adminv1.CreateEarlyAccessFeatureResponse, error) {
	p := callerOf(ctx)
	if err := checkFeatureFields(req.GetName(), req.GetDescription(), req.GetDocumentationUrl()); err != nil {
		return nil, err
	}
	st, ok := stages[req.GetStage()]
	if !ok {
		st = catalog.StageConcept
	}
	if _, err := s.getTeam(ctx, req.GetTeamId()); err != nil {
		return nil, err
	}
	key := req.GetFlagKey()
	if key == "" {
		key = slug(req.GetName())
	}
	if key == "" || len(key) > 400 {
		return nil, errcode.Field(errcode.InvalidArgument, "flag_key", "flag_key is required when the name has no letters or digits")
	}
	f := flags.Flag{TeamID: req.GetTeamId(), Key: key, Name: "Early access: " + req.GetName()}
	stageFilters(&f, st)
	if _, err := s.validateFlag(ctx, f, func(p string) string {
		if p == "key" {
			return "flag_key"
		}
		return "flag." + p
	}); err != nil {
		return nil, err
	}
	fdiff := jsonDiff(nil, f)
	fr, err := s.cat.CreateFlag(ctx, catalog.FlagRecord{Flag: f, CreatedBy: p.key.ID, UpdatedBy: p.key.ID},
		catalog.Change{Actor: p.key.ID, Diff: fdiff})
	if errors.Is(err, catalog.ErrExists) {
		return nil, errcode.Field(errcode.AlreadyExists, "flag_key", "a flag of the team has the key %q", key)
	}
	if err != nil {
		return nil, err
	}
	s.announce(ctx, changes.Notice{Team: f.TeamID, Kind: changes.KindFlag, ID: strconv.FormatInt(fr.Flag.ID, 10), Key: key,
		Version: fr.Flag.Version, Op: "created"}, p.key.ID, fdiff)
	feat := catalog.EarlyAccessFeature{TeamID: req.GetTeamId(), Key: key, Name: req.GetName(), Description: req.GetDescription(),
		Stage: st, DocumentationURL: req.GetDocumentationUrl(), FlagID: fr.Flag.ID, CreatedBy: p.key.ID, UpdatedBy: p.key.ID}
	diff := jsonDiff(nil, feat)
	feat, err = s.cat.CreateEarlyAccess(ctx, feat, catalog.Change{Actor: p.key.ID, Diff: diff})
	if err != nil {
		return nil, err
	}
	s.announce(ctx, changes.Notice{Team: feat.TeamID, Kind: changes.KindEarlyAccess, ID: feat.ID, Key: key, Version: feat.Version,
		Op: "created"}, p.key.ID, diff)
	return &adminv1.CreateEarlyAccessFeatureResponse{Feature: featureProto(feat)}, nil
}

func (s *Service) getFeature(ctx context.Context, team int64, id string) (catalog.EarlyAccessFeature, error) {
	f, err := s.cat.GetEarlyAccess(ctx, team, id)
	if errors.Is(err, catalog.ErrNotFound) || (err == nil && (f.Deleted || f.TeamID != team)) {
		return catalog.EarlyAccessFeature{}, errcode.Field(errcode.NotFound, "feature_id", "early access feature not found")
	}
	return f, err
}

// GetEarlyAccessFeature returns a feature.
func (s *Service) GetEarlyAccessFeature(ctx context.Context, req *adminv1.GetEarlyAccessFeatureRequest) (*adminv1.GetEarlyAccessFeatureResponse, error) {
	f, err := s.getFeature(ctx, req.GetTeamId(), req.GetFeatureId())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetEarlyAccessFeatureResponse{Feature: featureProto(f)}, nil
}

// ListEarlyAccessFeatures lists a team's features.
func (s *Service) ListEarlyAccessFeatures(ctx context.Context, req *adminv1.ListEarlyAccessFeaturesRequest) (*adminv1.ListEarlyAccessFeaturesResponse, error) {
	if _, err := s.getTeam(ctx, req.GetTeamId()); err != nil {
		return nil, err
	}
	all, err := s.cat.ListEarlyAccess(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListEarlyAccessFeaturesResponse{}
	for _, f := range all {
		if !f.Deleted && f.TeamID == req.GetTeamId() {
			out.Features = append(out.Features, featureProto(f))
		}
	}
	return out, nil
}

// UpdateEarlyAccessFeature changes a feature; a new stage rewrites its
// flag's enrollment conditions.
func (s *Service) UpdateEarlyAccessFeature(ctx context.Context, req *adminv1.UpdateEarlyAccessFeatureRequest) (*adminv1.UpdateEarlyAccessFeatureResponse, error) {
	p := callerOf(ctx)
	f, err := s.getFeature(ctx, req.GetTeamId(), req.GetFeatureId())
	if err != nil {
		return nil, err
	}
	name, desc, docs := f.Name, f.Description, f.DocumentationURL
	if req.Name != nil {
		name = req.GetName()
	}
	if req.Description != nil {
		desc = req.GetDescription()
	}
	if req.DocumentationUrl != nil {
		docs = req.GetDocumentationUrl()
	}
	if err := checkFeatureFields(name, desc, docs); err != nil {
		return nil, err
	}
	if err := expectVersion(versionOf(ctx, req.GetVersion()), f.Version); err != nil {
		return nil, err
	}
	st, ok := stages[req.GetStage()]
	if !ok {
		st = f.Stage
	}
	before := f
	f.Name, f.Description, f.DocumentationURL, f.Stage = name, desc, docs, st
	f.UpdatedBy = p.key.ID
	diff := jsonDiff(before, f)
	out, err := s.cat.UpdateEarlyAccess(ctx, f, catalog.Change{Actor: p.key.ID, Diff: diff})
	if errors.Is(err, catalog.ErrConflict) {
		cur, gerr := s.cat.GetEarlyAccess(ctx, f.TeamID, f.ID)
		if gerr != nil {
			return nil, gerr
		}
		return nil, conflict(f.Version, cur.Version)
	}
	if err != nil {
		return nil, err
	}
	s.announce(ctx, changes.Notice{Team: f.TeamID, Kind: changes.KindEarlyAccess, ID: f.ID, Key: f.Key, Version: out.Version,
		Op: "updated"}, p.key.ID, diff)
	if before.Stage != st && f.FlagID != 0 {
		if err := s.rewriteStage(ctx, f.TeamID, f.FlagID, st); err != nil {
			return nil, err
		}
	}
	return &adminv1.UpdateEarlyAccessFeatureResponse{Feature: featureProto(out)}, nil
}

// rewriteStage rewrites the feature flag for a stage, retrying when the
// flag changed meanwhile (the feature's own write already won).
func (s *Service) rewriteStage(ctx context.Context, team, flagID int64, st catalog.Stage) error {
	var err error
	for range 5 {
		var r catalog.FlagRecord
		r, err = s.getFlag(ctx, team, flagID)
		if err != nil {
			if errcode.From(err).Code == errcode.NotFound {
				return nil // the flag was deleted: nothing to rewrite
			}
			return err
		}
		_, err = s.mutateFlag(ctx, mutation{team: team, id: flagID, version: r.Flag.Version, action: "stage_rewritten",
			apply: func(r *catalog.FlagRecord) error {
				stageFilters(&r.Flag, st)
				return nil
			}})
		if err == nil || errcode.From(err).Code != errcode.Conflict {
			return err
		}
	}
	return err
}

// DeleteEarlyAccessFeature soft-deletes a feature; its flag stays.
func (s *Service) DeleteEarlyAccessFeature(ctx context.Context, req *adminv1.DeleteEarlyAccessFeatureRequest) (*adminv1.DeleteEarlyAccessFeatureResponse, error) {
	p := callerOf(ctx)
	f, err := s.getFeature(ctx, req.GetTeamId(), req.GetFeatureId())
	if err != nil {
		return nil, err
	}
	if err := expectVersion(versionOf(ctx, req.GetVersion()), f.Version); err != nil {
		return nil, err
	}
	before := f
	f.Deleted = true
	f.UpdatedBy = p.key.ID
	diff := jsonDiff(before, f)
	out, err := s.cat.UpdateEarlyAccess(ctx, f, catalog.Change{Actor: p.key.ID, Diff: diff})
	if errors.Is(err, catalog.ErrConflict) {
		cur, gerr := s.cat.GetEarlyAccess(ctx, f.TeamID, f.ID)
		if gerr != nil {
			return nil, gerr
		}
		return nil, conflict(f.Version, cur.Version)
	}
	if err != nil {
		return nil, err
	}
	s.announce(ctx, changes.Notice{Team: f.TeamID, Kind: changes.KindEarlyAccess, ID: f.ID, Key: f.Key, Version: out.Version,
		Op: "deleted"}, p.key.ID, diff)
	return &adminv1.DeleteEarlyAccessFeatureResponse{Feature: featureProto(out)}, nil
}

// ListPublicEarlyAccessFeatures lists a team's features for its project
// token, as PostHog's public endpoint does.
func (s *Service) ListPublicEarlyAccessFeatures(ctx context.Context, req *adminv1.ListPublicEarlyAccessFeaturesRequest) (*adminv1.ListPublicEarlyAccessFeaturesResponse, error) {
	if req.GetToken() == "" {
		return nil, errcode.Field(errcode.Unauthenticated, "token", "the project token is required (?token=phc_...)")
	}
	k, err := s.lookupKey(ctx, req.GetToken(), catalog.KeyProjectToken)
	if err != nil {
		return nil, err
	}
	if len(k.Teams) != 1 {
		return nil, errBadKey
	}
	all, err := s.cat.ListEarlyAccess(ctx, k.Teams[0])
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListPublicEarlyAccessFeaturesResponse{}
	for _, f := range all {
		if f.Deleted || f.Stage == catalog.StageArchived {
			continue
		}
		if len(req.GetStages()) > 0 && !slices.Contains(req.GetStages(), string(f.Stage)) {
			continue
		}
		out.EarlyAccessFeatures = append(out.EarlyAccessFeatures, &adminv1.PublicEarlyAccessFeature{
			Name: f.Name, Description: f.Description, Stage: string(f.Stage), DocumentationUrl: f.DocumentationURL, FlagKey: f.Key,
		})
	}
	return out, nil
}
