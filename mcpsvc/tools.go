package mcpsvc

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"google.golang.org/protobuf/proto"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/errcode"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// toolSpec describes one tool: its feature (for ?features=), the scope a
// key needs to see it, its hints, and how it registers.
type toolSpec struct {
	name, feature, scope, desc  string
	readOnly, destructive, idem bool
	add                         func(*mcp.Server, *mcp.Tool, *env)
}

func toolByName(name string) *toolSpec {
	for i := range toolSpecs {
		if toolSpecs[i].name == name {
			return &toolSpecs[i]
		}
	}
	return nil
}

// env is one session's view: the server and what the session acts as.
type env struct {
	s    *Server
	sess *session
}

// call is one tool call.
type call struct {
	env  *env
	auth string
	req  *mcp.CallToolRequest
	tool string
}

func (c *call) svc() *admin.Service { return c.env.s.cfg.Service }

// team resolves a tool's team_id argument.
func (c *call) team(id int64) (int64, error) {
	if id > 0 {
		return id, nil
	}
	if c.env.sess.team > 0 {
		return c.env.sess.team, nil
	}
	return 0, errcode.Field(errcode.InvalidArgument, "team_id", "team_id is required: the key reaches several teams")
}

// invoke runs a management method through the service layer
// (admin.Service.Invoke) as the call's key.
func invoke[Req, Resp any](ctx context.Context, c *call, method string, fn func(*admin.Service, context.Context, Req) (Resp, error), req Req) (Resp, error) {
	out, err := c.svc().Invoke(ctx, c.auth, admin.Method(method), req, func(ctx context.Context, r any) (any, error) {
		return fn(c.svc(), ctx, r.(Req))
	})
	if err != nil {
		var zero Resp
		return zero, err
	}
	return out.(Resp), nil
}

// handler adapts a tool body to the go-sdk: errors become tool errors
// with their stable code (the agent reads them), and every answer carries
// the pending-signals note.
func handler[In any](body func(context.Context, *call, In) (any, error)) func(*mcp.Server, *mcp.Tool, *env) {
	return func(srv *mcp.Server, t *mcp.Tool, e *env) {
		name := t.Name
		scope := toolByName(name).scope
		mcp.AddTool(srv, t, func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, any, error) {
			c := &call{env: e, auth: e.sess.auth, req: req, tool: name}
			if req.Extra != nil && req.Extra.Header != nil {
				if h := req.Extra.Header.Get("Authorization"); h != "" {
					if h != e.sess.auth {
						return errorResult(errcode.New(errcode.PermissionDenied, "this MCP session belongs to another key")), nil, nil
					}
				}
			}
			// The key again (revoked keys stop at once) and the tool's
			// scope, before any confirmation step; the service checks
			// both once more on every method it runs.
			caller, err := e.s.cfg.Service.Authenticate(ctx, c.auth)
			if err != nil {
				return errorResult(err), nil, nil
			}
			if !caller.Has(scope) {
				return errorResult(errcode.New(errcode.PermissionDenied, "the API key lacks the scope %q", scope)), nil, nil
			}
			out, err := body(ctx, c, in)
			if err != nil {
				return errorResult(err), nil, nil
			}
			if ni, ok := out.(needInput); ok {
				return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{"confirm": ni.params}, RequestState: ni.state}, nil, nil
			}
			res := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: compact(out)}}}
			if note := e.pendingNote(ctx); note != "" {
				res.Content = append(res.Content, &mcp.TextContent{Text: note})
			}
			return res, nil, nil
		})
	}
}

func errorResult(err error) *mcp.CallToolResult {
	e := errcode.From(err)
	out := map[string]any{"code": e.Code, "message": e.Message}
	if e.Field != "" {
		out["field"] = e.Field
	}
	if len(e.Meta) > 0 {
		out["details"] = e.Meta
	}
	b, _ := json.Marshal(out)
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}
}

// pendingNote is the one line "N pending signals" while the session's
// team has unacknowledged signals and the key may read them.
func (e *env) pendingNote(ctx context.Context) string {
	in := e.s.cfg.Inbox
	if in == nil || e.sess.team == 0 || !e.sess.caller.Has(admin.ScopeFlagRead) || !e.sess.caller.Reaches(e.sess.team) {
		return ""
	}
	n, err := in.Pending(ctx, e.sess.team)
	if err != nil || n == 0 {
		return ""
	}
	return fmt.Sprintf("%d pending signals (signals_list, then signals_ack)", n)
}

// compact renders a tool's answer: proto messages as protojson with proto
// field names, the rest as JSON.
func compact(v any) string {
	if m, ok := v.(proto.Message); ok {
		b, err := admin.MarshalREST(m)
		if err == nil {
			var x any
			if json.Unmarshal(b, &x) == nil {
				v = prune(x)
			}
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(b)
}

// prune drops empty strings, nulls, empty lists and objects from a JSON
// value, to spend little of an agent's context; false and 0 stay.
func prune(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			e = prune(e)
			if empty(e) {
				delete(x, k)
			} else {
				x[k] = e
			}
		}
	case []any:
		for i, e := range x {
			x[i] = prune(e)
		}
	}
	return v
}

func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// newMCPServer builds the MCP server of one session: the tools its key
// may use, narrowed by its options, and the resources.
func (s *Server) newMCPServer(sess *session) *mcp.Server {
	e := &env{s: s, sess: sess}
	srv := mcp.NewServer(&mcp.Implementation{Name: "vexil", Title: "Vexil feature flags", Version: s.cfg.Version}, &mcp.ServerOptions{
		Instructions: "Vexil feature flags, cohorts and early access features. Tools go through the management API with your key. " +
			"Mutations take dry_run; deletes, bulk changes and jumps to 100% ask for confirmation. Pending signals are noted on every answer.",
		Logger:           discard(),
		HasTools:         true,
		SchemaCache:      s.schemas,
		SubscribeHandler: func(context.Context, *mcp.SubscribeRequest) error { return nil },
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error {
			return nil
		},
	})
	for i := range toolSpecs {
		t := &toolSpecs[i]
		if !sess.visible(t) {
			continue
		}
		destructive := t.destructive
		t.add(srv, &mcp.Tool{Name: t.name, Description: t.desc, Annotations: &mcp.ToolAnnotations{
			ReadOnlyHint: t.readOnly, DestructiveHint: &destructive, IdempotentHint: t.idem}}, e)
	}
	e.addResources(srv)
	return srv
}

// visible: the key's scopes allow the tool, and the options keep it.
func (sess *session) visible(t *toolSpec) bool {
	if !sess.showAll && !sess.caller.Has(t.scope) {
		return false
	}
	if len(sess.opts.features) > 0 && !slices.Contains(sess.opts.features, t.feature) {
		return false
	}
	if len(sess.opts.tools) > 0 && !slices.Contains(sess.opts.tools, t.name) {
		return false
	}
	return true
}

// SignalsURI is the signal inbox resource.
const SignalsURI = "vexil://signals"

func flagURI(key string) string { return "vexil://flags/" + key }

func (e *env) addResources(srv *mcp.Server) {
	srv.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "vexil://flags/{key}", Name: "flag",
		Description: "a flag's full definition; subscribe to be told when it changes", MIMEType: "application/json"},
		func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			key := strings.TrimPrefix(req.Params.URI, "vexil://flags/")
			c := &call{env: e, auth: e.sess.auth}
			team, err := c.team(0)
			if err != nil {
				return nil, err
			}
			resp, err := invoke(ctx, c, "GetFlagByKey", (*admin.Service).GetFlagByKey, &adminv1.GetFlagByKeyRequest{TeamId: team, Key: key})
			if err != nil {
				if errcode.From(err).Code == errcode.NotFound {
					return nil, mcp.ResourceNotFoundError(req.Params.URI)
				}
				return nil, err
			}
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "application/json",
				Text: compact(resp.GetFlag())}}}, nil
		})
	srv.AddResource(&mcp.Resource{URI: SignalsURI, Name: "signals",
		Description: "the team's unacknowledged signals (rollout changes, cohort membership changes, findings); subscribe to be told of new ones",
		MIMEType:    "application/json"},
		func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			c := &call{env: e, auth: e.sess.auth}
			out, err := signalsList(ctx, c, signalsListIn{Limit: 20})
			if err != nil {
				return nil, err
			}
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: SignalsURI, MIMEType: "application/json",
				Text: compact(out)}}}, nil
		})
}
