package admin

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/errcode"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// policy is what a method requires of its caller.
type policy struct {
	// scope is required of the personal key.
	scope string
	// public methods authenticate with a project token in the request.
	public bool
}

const svc = "/" + "vexil.admin.v1.AdminService/"

// policies holds every method of the service; a method missing here is
// refused (a test checks that each one is listed).
var policies = map[string]policy{
	svc + "CreateTeam":    {scope: ScopeTeamAdmin},
	svc + "GetTeam":       {scope: ScopeTeamRead},
	svc + "ListTeams":     {scope: ScopeTeamRead},
	svc + "UpdateTeam":    {scope: ScopeTeamAdmin},
	svc + "SetGroupType":  {scope: ScopeTeamAdmin},
	svc + "RotateTeamKey": {scope: ScopeTeamAdmin},

	svc + "CreatePersonalKey": {scope: ScopeTeamAdmin},
	svc + "ListKeys":          {scope: ScopeTeamAdmin},
	svc + "RevokeKey":         {scope: ScopeTeamAdmin},

	svc + "CreateFlag":        {scope: ScopeFlagWrite},
	svc + "GetFlag":           {scope: ScopeFlagRead},
	svc + "GetFlagByKey":      {scope: ScopeFlagRead},
	svc + "ListFlags":         {scope: ScopeFlagRead},
	svc + "UpdateFlag":        {scope: ScopeFlagWrite},
	svc + "PatchFlag":         {scope: ScopeFlagWrite},
	svc + "EnableFlag":        {scope: ScopeFlagWrite},
	svc + "DisableFlag":       {scope: ScopeFlagWrite},
	svc + "ArchiveFlag":       {scope: ScopeFlagWrite},
	svc + "UnarchiveFlag":     {scope: ScopeFlagWrite},
	svc + "DeleteFlag":        {scope: ScopeFlagWrite},
	svc + "AddCondition":      {scope: ScopeFlagWrite},
	svc + "UpdateCondition":   {scope: ScopeFlagWrite},
	svc + "RemoveCondition":   {scope: ScopeFlagWrite},
	svc + "ReorderConditions": {scope: ScopeFlagWrite},
	svc + "SetRollout":        {scope: ScopeFlagWrite},
	svc + "SetOverrides":      {scope: ScopeFlagWrite},
	svc + "ListDependents":    {scope: ScopeFlagRead},

	svc + "CreateCohort":        {scope: ScopeCohortWrite},
	svc + "GetCohort":           {scope: ScopeCohortRead},
	svc + "ListCohorts":         {scope: ScopeCohortRead},
	svc + "UpdateCohort":        {scope: ScopeCohortWrite},
	svc + "DeleteCohort":        {scope: ScopeCohortWrite},
	svc + "AddCohortMembers":    {scope: ScopeCohortWrite},
	svc + "RemoveCohortMembers": {scope: ScopeCohortWrite},
	svc + "ListCohortMembers":   {scope: ScopeCohortRead},
	svc + "BackfillCohort":      {scope: ScopeCohortWrite},
	svc + "GetCohortBackfill":   {scope: ScopeCohortRead},

	svc + "CreateEarlyAccessFeature":      {scope: ScopeEarlyAccessWrite},
	svc + "GetEarlyAccessFeature":         {scope: ScopeEarlyAccessRead},
	svc + "ListEarlyAccessFeatures":       {scope: ScopeEarlyAccessRead},
	svc + "UpdateEarlyAccessFeature":      {scope: ScopeEarlyAccessWrite},
	svc + "DeleteEarlyAccessFeature":      {scope: ScopeEarlyAccessWrite},
	svc + "ListPublicEarlyAccessFeatures": {public: true},

	svc + "ListActivity":     {scope: ScopeActivityRead},
	svc + "ListFlagActivity": {scope: ScopeActivityRead},

	svc + "ExplainFlag":          {scope: ScopeFlagRead},
	svc + "StartBlastRadius":     {scope: ScopeFlagRead},
	svc + "GetBlastRadiusJob":    {scope: ScopeFlagRead},
	svc + "ListBlastRadiusJobs":  {scope: ScopeFlagRead},
	svc + "CancelBlastRadiusJob": {scope: ScopeFlagRead},

	svc + "GetPrecomputeStatus": {scope: ScopeFlagRead},

	// Cohorts and group types of an import need cohort:write and
	// team:admin as well (checked by ImportDefinitions).
	svc + "ImportDefinitions": {scope: ScopeFlagWrite},

	// Webhook endpoints carry a signing secret: changing them is team:admin.
	svc + "CreateWebhookEndpoint":  {scope: ScopeTeamAdmin},
	svc + "GetWebhookEndpoint":     {scope: ScopeTeamRead},
	svc + "ListWebhookEndpoints":   {scope: ScopeTeamRead},
	svc + "UpdateWebhookEndpoint":  {scope: ScopeTeamAdmin},
	svc + "DeleteWebhookEndpoint":  {scope: ScopeTeamAdmin},
	svc + "GetWebhookStatus":       {scope: ScopeTeamRead},
	svc + "ListWebhookDeadLetters": {scope: ScopeTeamRead},
	svc + "RedeliverWebhook":       {scope: ScopeTeamAdmin},
}

type principalKey struct{}

// callerOf returns the authenticated caller; the interceptor guarantees
// one for every non-public method.
func callerOf(ctx context.Context) *principal {
	p, _ := ctx.Value(principalKey{}).(*principal)
	return p
}

// teamScoped is a request naming a team.
type teamScoped interface{ GetTeamId() int64 }

var (
	errNoKey      = errcode.New(errcode.Unauthenticated, "no API key: send Authorization: Bearer phx_...")
	errBadKey     = errcode.New(errcode.Unauthenticated, "invalid API key")
	errRevokedKey = errcode.New(errcode.Unauthenticated, "the API key was revoked")
)

// errTeamNotFound is what a key that does not reach a team sees: the same
// answer as for a team that does not exist.
func errTeamNotFound() *errcode.Error {
	return errcode.Field(errcode.NotFound, "team_id", "team not found")
}

// authenticate resolves an "authorization" header value to a key of the
// wanted kind.
func (s *Service) authenticate(ctx context.Context, header string, kind catalog.KeyKind) (catalog.APIKey, error) {
	secret, ok := parseBearer(header)
	if !ok {
		if header == "" {
			return catalog.APIKey{}, errNoKey
		}
		return catalog.APIKey{}, errBadKey
	}
	return s.lookupKey(ctx, secret, kind)
}

func (s *Service) lookupKey(ctx context.Context, secret string, kind catalog.KeyKind) (catalog.APIKey, error) {
	if !strings.HasPrefix(secret, keyPrefix(kind)) {
		return catalog.APIKey{}, errBadKey
	}
	k, err := s.cfg.Catalog.GetKeyByHash(ctx, HashSecret(secret))
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		return catalog.APIKey{}, errBadKey
	case err != nil:
		return catalog.APIKey{}, err
	case k.Kind != kind:
		return catalog.APIKey{}, errBadKey
	case k.Revoked():
		return catalog.APIKey{}, errRevokedKey
	}
	return k, nil
}

// UnaryInterceptor authenticates and authorizes every call (401, then 404
// for a team the key does not reach, then 403), turns every returned error
// into a gRPC status with Vexil's error code, and counts calls.
func (s *Service) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		done := s.metrics.start(info.FullMethod)
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("admin: panic", "method", info.FullMethod, "panic", r)
				err = errcode.New(errcode.Internal, "internal error")
			}
			code := errcode.From(err)
			if code != nil && code.Code == errcode.Internal {
				s.log.Error("admin: internal error", "method", info.FullMethod, "err", err)
			}
			done(code)
			if err != nil {
				resp, err = nil, errcode.GRPCStatus(err).Err()
			}
		}()
		ctx, err = s.authorize(ctx, req, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

func (s *Service) authorize(ctx context.Context, req any, method string) (context.Context, error) {
	pol, ok := policies[method]
	if !ok {
		return ctx, errcode.New(errcode.Unimplemented, "unknown method")
	}
	if pol.public {
		return ctx, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	var header string
	if v := md.Get("authorization"); len(v) > 0 {
		header = v[0]
	}
	k, err := s.authenticate(ctx, header, catalog.KeyPersonal)
	if err != nil {
		return ctx, err
	}
	p := &principal{key: k}
	if ts, ok := req.(teamScoped); ok && !p.reaches(ts.GetTeamId()) {
		return ctx, errTeamNotFound()
	}
	if !p.has(pol.scope) {
		return ctx, errcode.New(errcode.PermissionDenied, "the API key lacks the scope %q", pol.scope)
	}
	return context.WithValue(ctx, principalKey{}, p), nil
}

// compile-time check that the service implements the generated interface.
var _ adminv1.AdminServiceServer = (*Service)(nil)
