package admin

import (
	"context"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/errcode"
)

// Invoke runs one management call in process exactly as the gRPC server
// runs it: admission, then authentication of authorization (the
// "Authorization" header's value), the team check and the method's scope
// (UnaryInterceptor), then call. Other front ends of the same service
// layer (the MCP server, package mcpsvc) go through it, so that they can
// do nothing a key could not do over REST. method is the gRPC full method
// name ("/vexil.admin.v1.AdminService/CreateFlag"). The error, if any, is an
// *errcode.Error.
func (s *Service) Invoke(ctx context.Context, authorization, method string, req any, call func(context.Context, any) (any, error)) (any, error) {
	ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", authorization))
	info := &grpc.UnaryServerInfo{Server: s, FullMethod: method}
	resp, err := admit(s.cfg.Admission)(ctx, req, info, func(ctx context.Context, req any) (any, error) {
		return s.UnaryInterceptor()(ctx, req, info, call)
	})
	if err != nil {
		return nil, errcode.FromStatus(status.Convert(err))
	}
	return resp, nil
}

// Caller describes an authenticated personal API key, for front ends
// that show only what a key may do (the MCP server hides the tools its
// scopes do not allow). It grants nothing: every call still goes through
// Invoke.
type Caller struct {
	KeyID  string
	Scopes []string
	// Teams the key reaches; empty: every team.
	Teams []int64
}

// Has reports whether the key carries scope (or every scope).
func (c Caller) Has(scope string) bool {
	return slices.Contains(c.Scopes, ScopeAll) || slices.Contains(c.Scopes, scope)
}

// Reaches reports whether the key may see team.
func (c Caller) Reaches(team int64) bool { return len(c.Teams) == 0 || slices.Contains(c.Teams, team) }

// Authenticate resolves an "Authorization: Bearer phx_..." value to its
// personal key, refusing a missing, unknown or revoked one
// (unauthenticated).
func (s *Service) Authenticate(ctx context.Context, authorization string) (Caller, error) {
	k, err := s.authenticate(ctx, authorization, catalog.KeyPersonal)
	if err != nil {
		return Caller{}, errcode.From(err)
	}
	return Caller{KeyID: k.ID, Scopes: slices.Clone(k.Scopes), Teams: slices.Clone(k.Teams)}, nil
}

// Method returns the gRPC full method name of an AdminService method.
func Method(name string) string { return svc + name }

// MarshalREST writes m as the REST surface does: PostHog's JSON, proto
// field names, 64-bit integers (ids, versions) as numbers.
func MarshalREST(m proto.Message) ([]byte, error) { return marshaler.Marshal(m) }
