package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/changes"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/namespace"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// Service implements vexil.admin.v1.AdminService. Create it with New; call
// Run to execute blast radius jobs.
type Service struct {
	adminv1.UnimplementedAdminServiceServer

	cfg     Config
	cat     catalog.Catalog
	log     *slog.Logger
	metrics *metrics
	// jobs is the bounded queue of blast radius job ids for Run's worker.
	jobs chan jobRef
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if cfg.Admission == nil {
		ac, err := admission.New(admission.Config{})
		if err != nil {
			return nil, fmt.Errorf("admin: admission: %w", err)
		}
		cfg.Admission = ac
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("admin: metrics: %w", err)
	}
	return &Service{
		cfg: cfg, cat: cfg.Catalog, log: cfg.Logger.With("component", "admin"), metrics: m,
		jobs: make(chan jobRef, cfg.BlastRadiusQueue),
	}, nil
}

// Run executes queued blast radius jobs until ctx ends; it returns after
// the running job (if any) has stopped.
func (s *Service) Run(ctx context.Context) error {
	if err := s.reapJobs(ctx); err != nil {
		s.log.Warn("blast radius: looking for abandoned jobs", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case j := <-s.jobs:
			s.runJob(ctx, j)
		}
	}
}

// Limits returns the effective limits.
func (s *Service) Limits() Limits { return s.cfg.Limits }

// RolloutSignal is published on SignalsSubject after every
// committed change of a flag, cohort or early access feature: who changed
// what, and the diff.
type RolloutSignal struct {
	Team    int64           `json:"team_id"`
	Actor   string          `json:"actor"`
	Kind    string          `json:"kind"`
	ID      string          `json:"id"`
	Key     string          `json:"key,omitempty"`
	Version int64           `json:"version"`
	Op      string          `json:"op"`
	At      time.Time       `json:"at"`
	Diff    json.RawMessage `json:"diff,omitempty"`
}

// SignalsSubject is the rollout signal subject of a team in ns:
// vexil.signals.<team>.rollout in namespace.Default.
func SignalsSubject(ns namespace.Name, team int64) string {
	return ns.Subject("signals", strconv.FormatInt(team, 10), "rollout")
}

// announce publishes a committed change. A failure is logged and counted,
// never returned: the change is committed, and evaluation nodes also
// refresh periodically.
func (s *Service) announce(ctx context.Context, n changes.Notice, actor string, diff json.RawMessage) {
	if s.cfg.Publisher == nil {
		s.metrics.published.WithLabelValues("dropped").Inc()
		s.log.Debug("change not published: no publisher", "team", n.Team, "kind", n.Kind, "id", n.ID)
		return
	}
	data, err := n.Encode()
	s.publish(ctx, n.Subject(s.cfg.Namespace), data, err)
	if n.Kind == changes.KindFlag || n.Kind == changes.KindCohort || n.Kind == changes.KindEarlyAccess {
		data, err := json.Marshal(RolloutSignal{Team: n.Team, Actor: actor, Kind: string(n.Kind), ID: n.ID,
			Key: n.Key, Version: n.Version, Op: n.Op, At: s.cfg.Now().UTC(), Diff: diff})
		s.publish(ctx, SignalsSubject(s.cfg.Namespace, n.Team), data, err)
	}
}

// announceRevoked tells every node that k was revoked, on the
// instance-wide subject: a key with no team (instance-wide) has no team
// subject, and every node's key cache must drop it at once.
func (s *Service) announceRevoked(ctx context.Context, k catalog.APIKey, actor string) {
	s.announce(ctx, changes.Notice{Kind: changes.KindKeyRevoked, ID: k.ID, Version: k.Version, Op: "revoked"}, actor, nil)
}

// publish publishes one message of announce, whose encoding failed when
// encErr is not nil.
func (s *Service) publish(ctx context.Context, subject string, data []byte, encErr error) {
	err := encErr
	if err == nil {
		err = s.cfg.Publisher.Publish(context.WithoutCancel(ctx), subject, data)
	}
	if err != nil {
		s.metrics.published.WithLabelValues("error").Inc()
		s.log.Warn("change not published", "subject", subject, "err", err)
		return
	}
	s.metrics.published.WithLabelValues("ok").Inc()
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// expectVersion checks the version a client sent against the stored one.
func expectVersion(got, current int64) error {
	if got == 0 {
		return errcode.Field(errcode.InvalidArgument, "version",
			"the version you read is required (field version or header If-Match)")
	}
	if got != current {
		return conflict(got, current)
	}
	return nil
}

// conflict is the error of a version that is not the stored one: the
// version sent and the current one.
func conflict(sent, current int64) error {
	return errcode.Field(errcode.Conflict, "version",
		"version %d was sent, the current version is %d: read the record again and retry", sent, current).
		With("current_version", strconv.FormatInt(current, 10)).
		With("sent_version", strconv.FormatInt(sent, 10))
}

// pageSize checks a requested page size.
func (s *Service) pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, errcode.Field(errcode.InvalidArgument, "page_size", "page_size must not be negative")
	case int(n) > s.cfg.Limits.MaxPageSize:
		return 0, errcode.Field(errcode.LimitExceeded, "page_size", "page_size is at most %d", s.cfg.Limits.MaxPageSize)
	case n == 0:
		return min(catalog.DefaultPageLimit, s.cfg.Limits.MaxPageSize), nil
	}
	return int(n), nil
}

// offsetPage pages an in-memory list with an opaque offset token.
func offsetPage[T any](items []T, size int, token string) ([]T, string, error) {
	off := 0
	if token != "" {
		n, err := strconv.Atoi(token)
		if err != nil || n < 0 || n > len(items) {
			return nil, "", errcode.Field(errcode.InvalidArgument, "page_token", "invalid page_token")
		}
		off = n
	}
	end := min(off+size, len(items))
	next := ""
	if end < len(items) {
		next = strconv.Itoa(end)
	}
	return items[off:end], next, nil
}

// ---- Teams ----

func (s *Service) teamProto(ctx context.Context, t catalog.Team) (*adminv1.Team, error) {
	out := &adminv1.Team{
		Id: t.ID, Name: t.Name, Timezone: t.Timezone, PropertyMatchingVersion: int32(t.PropertyMatchingVersion),
		Version: t.Version, CreatedAt: ts(t.CreatedAt), UpdatedAt: ts(t.UpdatedAt),
	}
	idx := make([]int, 0, len(t.GroupTypes))
	for i := range t.GroupTypes {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	for _, i := range idx {
		out.GroupTypes = append(out.GroupTypes, &adminv1.GroupType{GroupTypeIndex: int32(i), GroupType: t.GroupTypes[i]})
	}
	keys, err := s.cat.ListKeys(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k.Kind == catalog.KeyProjectToken && !k.Revoked() {
			out.ApiToken = k.Prefix
		}
	}
	return out, nil
}

func validateTeamFields(name, tz string, pmv int32) error {
	if name == "" || len(name) > 200 {
		return errcode.Field(errcode.InvalidArgument, "name", "name is required, at most 200 bytes")
	}
	if tz != "" {
		if _, err := time.LoadLocation(tz); err != nil || len(tz) > 64 {
			return errcode.Field(errcode.InvalidArgument, "timezone", "unknown IANA time zone %q", tz)
		}
	}
	if pmv < 0 || pmv > 2 {
		return errcode.Field(errcode.InvalidArgument, "property_matching_version", "property_matching_version is 1 or 2")
	}
	return nil
}

// CreateTeam stores a new team with its project token and secure key, and
// returns them (the secure key's secret is shown once): the path of the
// API and of "vexil teams create" on a stopped data directory. Name,
// Timezone and PropertyMatchingVersion are checked as the API does.
func CreateTeam(ctx context.Context, cat interface {
	catalog.Teams
	catalog.Keys
}, t catalog.Team, actor string) (team catalog.Team, token, secure string, err error) {
	if err := validateTeamFields(t.Name, t.Timezone, int32(t.PropertyMatchingVersion)); err != nil {
		return catalog.Team{}, "", "", err
	}
	t, err = cat.CreateTeam(ctx, catalog.Team{Name: t.Name, Timezone: t.Timezone,
		PropertyMatchingVersion: t.PropertyMatchingVersion}, catalog.Change{Actor: actor})
	if err != nil {
		return catalog.Team{}, "", "", err
	}
	for _, kind := range []catalog.KeyKind{catalog.KeyProjectToken, catalog.KeySecure} {
		label := map[catalog.KeyKind]string{catalog.KeyProjectToken: "project token", catalog.KeySecure: "secure key"}[kind]
		k, secret, err := NewKey(kind, []int64{t.ID}, nil, label, actor)
		if err != nil {
			return catalog.Team{}, "", "", err
		}
		if _, err := cat.PutKey(ctx, k, catalog.Change{Actor: actor}); err != nil {
			return catalog.Team{}, "", "", err
		}
		if kind == catalog.KeyProjectToken {
			token = secret
		} else {
			secure = secret
		}
	}
	return t, token, secure, nil
}

// CreateTeam creates a team with its project token and secure key. It
// needs an instance-wide key with team:admin.
func (s *Service) CreateTeam(ctx context.Context, req *adminv1.CreateTeamRequest) (*adminv1.CreateTeamResponse, error) {
	p := callerOf(ctx)
	if !p.instanceWide() {
		return nil, errcode.New(errcode.PermissionDenied, "creating a team needs an instance-wide key (one with no teams)")
	}
	t, _, secret, err := CreateTeam(ctx, s.cat, catalog.Team{Name: req.GetName(), Timezone: req.GetTimezone(),
		PropertyMatchingVersion: int(req.GetPropertyMatchingVersion())}, p.key.ID)
	if err != nil {
		return nil, err
	}
	s.announce(ctx, changes.Notice{Team: t.ID, Kind: changes.KindTeam, ID: strconv.FormatInt(t.ID, 10), Version: t.Version, Op: "created"}, p.key.ID, nil)
	tp, err := s.teamProto(ctx, t)
	if err != nil {
		return nil, err
	}
	return &adminv1.CreateTeamResponse{Team: tp, SecureKey: secret}, nil
}

func (s *Service) getTeam(ctx context.Context, id int64) (catalog.Team, error) {
	t, err := s.cat.GetTeam(ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return catalog.Team{}, errTeamNotFound()
	}
	return t, err
}

// GetTeam returns a team.
func (s *Service) GetTeam(ctx context.Context, req *adminv1.GetTeamRequest) (*adminv1.GetTeamResponse, error) {
	t, err := s.getTeam(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	tp, err := s.teamProto(ctx, t)
	if err != nil {
		return nil, err
	}
	return &adminv1.GetTeamResponse{Team: tp}, nil
}

// ListTeams lists the teams the key reaches.
func (s *Service) ListTeams(ctx context.Context, _ *adminv1.ListTeamsRequest) (*adminv1.ListTeamsResponse, error) {
	p := callerOf(ctx)
	teams, err := s.cat.ListTeams(ctx)
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListTeamsResponse{}
	for _, t := range teams {
		if !p.reaches(t.ID) {
			continue
		}
		tp, err := s.teamProto(ctx, t)
		if err != nil {
			return nil, err
		}
		out.Teams = append(out.Teams, tp)
	}
	return out, nil
}

// UpdateTeam changes a team's name, time zone and property matching version.
func (s *Service) UpdateTeam(ctx context.Context, req *adminv1.UpdateTeamRequest) (*adminv1.UpdateTeamResponse, error) {
	p := callerOf(ctx)
	t, err := s.getTeam(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	before := t
	if req.Name != nil {
		t.Name = req.GetName()
	}
	if req.Timezone != nil {
		t.Timezone = req.GetTimezone()
	}
	if req.PropertyMatchingVersion != nil {
		t.PropertyMatchingVersion = int(req.GetPropertyMatchingVersion())
	}
	if err := validateTeamFields(t.Name, t.Timezone, int32(t.PropertyMatchingVersion)); err != nil {
		return nil, err
	}
	if err := expectVersion(versionOf(ctx, req.GetVersion()), t.Version); err != nil {
		return nil, err
	}
	return s.saveTeam(ctx, p, before, t, "updated")
}

func (s *Service) saveTeam(ctx context.Context, p *principal, before, t catalog.Team, action string) (*adminv1.UpdateTeamResponse, error) {
	diff := jsonDiff(before, t)
	id, sent := t.ID, t.Version
	t, err := s.cat.UpdateTeam(ctx, t, catalog.Change{Actor: p.key.ID, Action: action, Diff: diff})
	if errors.Is(err, catalog.ErrConflict) {
		return nil, s.teamConflict(ctx, id, sent)
	}
	if err != nil {
		return nil, err
	}
	s.announce(ctx, changes.Notice{Team: t.ID, Kind: changes.KindTeam, ID: strconv.FormatInt(t.ID, 10), Version: t.Version, Op: action}, p.key.ID, diff)
	tp, err := s.teamProto(ctx, t)
	if err != nil {
		return nil, err
	}
	return &adminv1.UpdateTeamResponse{Team: tp}, nil
}

func (s *Service) teamConflict(ctx context.Context, id, sent int64) error {
	cur, err := s.cat.GetTeam(ctx, id)
	if err != nil {
		return err
	}
	return conflict(sent, cur.Version)
}

// SetGroupType maps (or, with an empty name, unmaps) a group type index.
func (s *Service) SetGroupType(ctx context.Context, req *adminv1.SetGroupTypeRequest) (*adminv1.SetGroupTypeResponse, error) {
	p := callerOf(ctx)
	idx := int(req.GetGroupTypeIndex())
	if idx < 0 || idx > 255 {
		return nil, errcode.Field(errcode.InvalidArgument, "group_type_index", "group_type_index is 0..255")
	}
	if len(req.GetGroupType()) > 200 {
		return nil, errcode.Field(errcode.InvalidArgument, "group_type", "group_type is at most 200 bytes")
	}
	t, err := s.getTeam(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	if err := expectVersion(versionOf(ctx, req.GetVersion()), t.Version); err != nil {
		return nil, err
	}
	for i, name := range t.GroupTypes {
		if i != idx && name == req.GetGroupType() && name != "" {
			return nil, errcode.Field(errcode.AlreadyExists, "group_type", "group type %q already has index %d", name, i)
		}
	}
	before := t
	t.GroupTypes = make(map[int]string, len(before.GroupTypes)+1)
	for i, n := range before.GroupTypes {
		t.GroupTypes[i] = n
	}
	if req.GetGroupType() == "" {
		delete(t.GroupTypes, idx)
	} else {
		t.GroupTypes[idx] = req.GetGroupType()
	}
	resp, err := s.saveTeam(ctx, p, before, t, "group_type_set")
	if err != nil {
		return nil, err
	}
	return &adminv1.SetGroupTypeResponse{Team: resp.GetTeam()}, nil
}

// RotateTeamKey replaces the team's project token or secure key.
func (s *Service) RotateTeamKey(ctx context.Context, req *adminv1.RotateTeamKeyRequest) (*adminv1.RotateTeamKeyResponse, error) {
	p := callerOf(ctx)
	var kind catalog.KeyKind
	switch req.GetKind() {
	case adminv1.TeamKeyKind_TEAM_KEY_KIND_PROJECT_TOKEN:
		kind = catalog.KeyProjectToken
	case adminv1.TeamKeyKind_TEAM_KEY_KIND_SECURE:
		kind = catalog.KeySecure
	default:
		return nil, errcode.Field(errcode.InvalidArgument, "kind", "kind is TEAM_KEY_KIND_PROJECT_TOKEN or TEAM_KEY_KIND_SECURE")
	}
	if _, err := s.getTeam(ctx, req.GetTeamId()); err != nil {
		return nil, err
	}
	old, err := s.cat.ListKeys(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	k, secret, err := NewKey(kind, []int64{req.GetTeamId()}, nil, string(kind), p.key.ID)
	if err != nil {
		return nil, err
	}
	k, err = s.cat.PutKey(ctx, k, catalog.Change{Actor: p.key.ID})
	if err != nil {
		return nil, err
	}
	for _, o := range old {
		if o.Kind == kind && !o.Revoked() {
			r, err := s.cat.RevokeKey(ctx, o.ID, catalog.Change{Actor: p.key.ID})
			if err != nil && !errors.Is(err, catalog.ErrConflict) {
				return nil, err
			}
			if err == nil {
				s.announceRevoked(ctx, r, p.key.ID)
			}
		}
	}
	s.announce(ctx, changes.Notice{Team: req.GetTeamId(), Kind: changes.KindKey, ID: k.ID, Version: k.Version, Op: "rotated"}, p.key.ID, nil)
	return &adminv1.RotateTeamKeyResponse{Key: keyProto(k), Secret: secret}, nil
}

// ---- Keys ----

func keyProto(k catalog.APIKey) *adminv1.ApiKey {
	return &adminv1.ApiKey{
		Id: k.ID, Kind: string(k.Kind), Prefix: k.Prefix, Teams: slices.Clone(k.Teams), Scopes: slices.Clone(k.Scopes),
		Label: k.Label, CreatedBy: k.CreatedBy, CreatedAt: ts(k.CreatedAt), RevokedAt: ts(k.RevokedAt), Revoked: k.Revoked(),
	}
}

// CreatePersonalKey creates a personal key. The caller needs team:admin on
// every team it names (an instance-wide key for an instance-wide one) and
// can only grant scopes it has.
func (s *Service) CreatePersonalKey(ctx context.Context, req *adminv1.CreatePersonalKeyRequest) (*adminv1.CreatePersonalKeyResponse, error) {
	p := callerOf(ctx)
	if len(req.GetScopes()) == 0 || len(req.GetScopes()) > 32 {
		return nil, errcode.Field(errcode.InvalidArgument, "scopes", "between 1 and 32 scopes are required")
	}
	for i, sc := range req.GetScopes() {
		if !ValidScope(sc) {
			return nil, errcode.Field(errcode.InvalidArgument, fmt.Sprintf("scopes[%d]", i), "unknown scope %q", sc)
		}
		if !p.has(sc) {
			return nil, errcode.Field(errcode.PermissionDenied, fmt.Sprintf("scopes[%d]", i), "you cannot grant a scope you lack (%q)", sc)
		}
	}
	if len(req.GetTeams()) == 0 && !p.instanceWide() {
		return nil, errcode.Field(errcode.PermissionDenied, "teams", "an instance-wide key needs an instance-wide caller")
	}
	if len(req.GetTeams()) > 100 {
		return nil, errcode.Field(errcode.LimitExceeded, "teams", "at most 100 teams")
	}
	if len(req.GetLabel()) > 200 {
		return nil, errcode.Field(errcode.InvalidArgument, "label", "label is at most 200 bytes")
	}
	for i, t := range req.GetTeams() {
		if !p.reaches(t) {
			return nil, errcode.Field(errcode.NotFound, fmt.Sprintf("teams[%d]", i), "team not found")
		}
		if _, err := s.getTeam(ctx, t); err != nil {
			return nil, errcode.Field(errcode.NotFound, fmt.Sprintf("teams[%d]", i), "team not found")
		}
	}
	k, secret, err := CreatePersonalKey(ctx, s.cat, req.GetTeams(), req.GetScopes(), req.GetLabel(), p.key.ID)
	if err != nil {
		return nil, err
	}
	for _, t := range k.Teams {
		s.announce(ctx, changes.Notice{Team: t, Kind: changes.KindKey, ID: k.ID, Version: k.Version, Op: "created"}, p.key.ID, nil)
	}
	return &adminv1.CreatePersonalKeyResponse{Key: keyProto(k), Secret: secret}, nil
}

// ListKeys lists the keys that reach a team; team 0, for an instance-wide
// caller, lists the instance-wide keys (vexil keys list against a node).
func (s *Service) ListKeys(ctx context.Context, req *adminv1.ListKeysRequest) (*adminv1.ListKeysResponse, error) {
	if req.GetTeamId() != 0 || !callerOf(ctx).instanceWide() {
		if _, err := s.getTeam(ctx, req.GetTeamId()); err != nil {
			return nil, err
		}
	}
	keys, err := s.cat.ListKeys(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListKeysResponse{}
	for _, k := range keys {
		out.Keys = append(out.Keys, keyProto(k))
	}
	return out, nil
}

// RevokeKey revokes a personal key. The caller must reach every team of
// the key (an instance-wide key for an instance-wide one); any other key is
// "not found".
func (s *Service) RevokeKey(ctx context.Context, req *adminv1.RevokeKeyRequest) (*adminv1.RevokeKeyResponse, error) {
	p := callerOf(ctx)
	notFound := errcode.Field(errcode.NotFound, "key_id", "key not found")
	k, err := s.cat.GetKey(ctx, req.GetKeyId())
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	if len(k.Teams) == 0 && !p.instanceWide() {
		return nil, notFound
	}
	for _, t := range k.Teams {
		if !p.reaches(t) {
			return nil, notFound
		}
	}
	if k.Kind != catalog.KeyPersonal {
		return nil, errcode.Field(errcode.InvalidArgument, "key_id", "team keys are replaced with RotateTeamKey")
	}
	k, err = s.cat.RevokeKey(ctx, k.ID, catalog.Change{Actor: p.key.ID})
	if errors.Is(err, catalog.ErrConflict) {
		return nil, errcode.Field(errcode.FailedPrecondition, "key_id", "the key is already revoked")
	}
	if err != nil {
		return nil, err
	}
	for _, t := range k.Teams {
		s.announce(ctx, changes.Notice{Team: t, Kind: changes.KindKey, ID: k.ID, Version: k.Version, Op: "revoked"}, p.key.ID, nil)
	}
	s.announceRevoked(ctx, k, p.key.ID)
	return &adminv1.RevokeKeyResponse{Key: keyProto(k)}, nil
}
