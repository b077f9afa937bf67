package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/vexil-dev/vexil/catalog"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// secret markers: no refused call may ever show them.
const (
	markTeam = "secret-team-marker"
	markFlag = "secret-flag-marker"
)

// securityFixture is two teams; team A holds a flag, a cohort, a feature
// and a job that the callers try to reach.
type securityFixture struct {
	e                  *env
	teamA, teamB       int64
	flagA, cohortA     int64
	featureA, jobA     string
	keyA               string // team A's personal key id, for RevokeKey
	revoked, otherTeam string // secrets
	tokenA, tokenB     string // project tokens
	revokedToken       string
}

func newSecurityFixture(t *testing.T) *securityFixture {
	// Every team's precompute run names team A's flag: a refused call must
	// not show it.
	e := newEnv(t, func(c *Config) {
		c.Precompute = func(context.Context, int64, time.Time) (*PrecomputeRun, error) {
			return &PrecomputeRun{ID: "run", Flags: []string{markFlag}, Reason: markTeam}, nil
		}
	})
	ctx := e.ctx(e.root)
	fx := &securityFixture{e: e}
	a, err := e.client.CreateTeam(ctx, &adminv1.CreateTeamRequest{Name: markTeam})
	if err != nil {
		t.Fatal(err)
	}
	fx.teamA = a.GetTeam().GetId()
	fx.teamB = e.createTeam("other").GetId()
	f, err := e.client.CreateFlag(ctx, &adminv1.CreateFlagRequest{TeamId: fx.teamA, Flag: &adminv1.FlagInput{Key: markFlag, Active: true}})
	if err != nil {
		t.Fatal(err)
	}
	fx.flagA = f.GetFlag().GetId()
	c, err := e.client.CreateCohort(ctx, &adminv1.CreateCohortRequest{TeamId: fx.teamA, Cohort: &adminv1.CohortInput{Name: markTeam,
		Kind: adminv1.CohortKind_COHORT_KIND_STATIC}})
	if err != nil {
		t.Fatal(err)
	}
	fx.cohortA = c.GetCohort().GetId()
	ea, err := e.client.CreateEarlyAccessFeature(ctx, &adminv1.CreateEarlyAccessFeatureRequest{TeamId: fx.teamA, Name: markTeam, FlagKey: markFlag + "-eaf"})
	if err != nil {
		t.Fatal(err)
	}
	fx.featureA = ea.GetFeature().GetId()
	j, err := e.client.StartBlastRadius(ctx, &adminv1.StartBlastRadiusRequest{TeamId: fx.teamA, FlagId: fx.flagA, Flag: &adminv1.FlagInput{Key: markFlag}})
	if err != nil {
		t.Fatal(err)
	}
	fx.jobA = j.GetJob().GetId()
	k, _, err := CreatePersonalKey(context.Background(), e.cat, []int64{fx.teamA}, []string{ScopeFlagRead}, markTeam, "test")
	if err != nil {
		t.Fatal(err)
	}
	fx.keyA = k.ID
	rk, secret, err := CreatePersonalKey(context.Background(), e.cat, nil, []string{ScopeAll}, "revoked", "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cat.RevokeKey(context.Background(), rk.ID, catalog.Change{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	fx.revoked = secret
	fx.otherTeam = e.key([]int64{fx.teamB}, ScopeAll)
	fx.tokenA = a.GetTeam().GetApiToken()
	tb, err := e.client.GetTeam(ctx, &adminv1.GetTeamRequest{TeamId: fx.teamB})
	if err != nil {
		t.Fatal(err)
	}
	fx.tokenB = tb.GetTeam().GetApiToken()
	// A project token of team A that was rotated away.
	old := fx.tokenA
	rot, err := e.client.RotateTeamKey(ctx, &adminv1.RotateTeamKeyRequest{TeamId: fx.teamA, Kind: adminv1.TeamKeyKind_TEAM_KEY_KIND_PROJECT_TOKEN})
	if err != nil {
		t.Fatal(err)
	}
	fx.revokedToken, fx.tokenA = old, rot.GetSecret()
	return fx
}

// withoutScope is a key of team A holding every scope but one.
func (fx *securityFixture) withoutScope(scope string) string {
	var scopes []string
	for _, s := range Scopes {
		if s != scope {
			scopes = append(scopes, s)
		}
	}
	return fx.e.key([]int64{fx.teamA}, scopes...)
}

// request builds a request of the method aimed at team A's records.
func (fx *securityFixture) request(t *testing.T, md protoreflect.MethodDescriptor) proto.Message {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
	if err != nil {
		t.Fatal(err)
	}
	m := mt.New()
	set := func(name string, v protoreflect.Value) {
		if f := m.Descriptor().Fields().ByName(protoreflect.Name(name)); f != nil {
			m.Set(f, v)
		}
	}
	set("team_id", protoreflect.ValueOfInt64(fx.teamA))
	set("flag_id", protoreflect.ValueOfInt64(fx.flagA))
	set("cohort_id", protoreflect.ValueOfInt64(fx.cohortA))
	set("feature_id", protoreflect.ValueOfString(fx.featureA))
	set("job_id", protoreflect.ValueOfString(fx.jobA))
	set("key_id", protoreflect.ValueOfString(fx.keyA))
	set("key", protoreflect.ValueOfString(markFlag))
	set("version", protoreflect.ValueOfInt64(1))
	set("distinct_id", protoreflect.ValueOfString("u1"))
	set("name", protoreflect.ValueOfString("x"))
	switch md.Name() {
	case "CreatePersonalKey":
		r := m.Interface().(*adminv1.CreatePersonalKeyRequest)
		r.Scopes, r.Teams = []string{ScopeFlagRead}, []int64{fx.teamA}
	case "AddCohortMembers", "RemoveCohortMembers":
		f := m.Descriptor().Fields().ByName("distinct_ids")
		l := m.Mutable(f).List()
		l.Append(protoreflect.ValueOfString("u1"))
	}
	return m.Interface()
}

// mustNotLeak fails when text shows team A's data.
func mustNotLeak(t *testing.T, what, text string) {
	t.Helper()
	if strings.Contains(text, markTeam) || strings.Contains(text, markFlag) {
		t.Errorf("%s leaks team A's data: %s", what, text)
	}
}

func TestEveryMethodHasAPolicy(t *testing.T) {
	sd := adminv1.File_vexil_admin_v1_admin_proto.Services().ByName("AdminService")
	for i := range sd.Methods().Len() {
		name := svc + string(sd.Methods().Get(i).Name())
		if _, ok := policies[name]; !ok {
			t.Errorf("%s has no policy", name)
		}
	}
	if len(policies) != sd.Methods().Len() {
		t.Errorf("%d policies for %d methods", len(policies), sd.Methods().Len())
	}
}

func TestSecurityGRPC(t *testing.T) {
	fx := newSecurityFixture(t)
	conn, err := grpc.NewClient(fx.e.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sd := adminv1.File_vexil_admin_v1_admin_proto.Services().ByName("AdminService")
	for i := range sd.Methods().Len() {
		md := sd.Methods().Get(i)
		method := svc + string(md.Name())
		pol := policies[method]
		if pol.public {
			continue // TestSecurityPublic
		}
		_, teamScoped := fx.request(t, md).(teamScoped)
		// The code a key of team B gets: nothing of team A exists for it.
		otherTeam := codes.NotFound
		switch md.Name() {
		case "CreateTeam":
			otherTeam = codes.PermissionDenied
		case "ListTeams":
			otherTeam = codes.OK
		}
		cases := []struct {
			name string
			key  string
			want codes.Code
		}{
			{"no key", "", codes.Unauthenticated},
			{"bad key", "phx_" + strings.Repeat("0", 64), codes.Unauthenticated},
			{"not a bearer", "garbage", codes.Unauthenticated},
			{"revoked key", fx.revoked, codes.Unauthenticated},
			{"project token", fx.tokenA, codes.Unauthenticated},
			{"other team", fx.otherTeam, otherTeam},
			{"without scope", fx.withoutScope(pol.scope), codes.PermissionDenied},
		}
		for _, c := range cases {
			t.Run(string(md.Name())+"/"+c.name, func(t *testing.T) {
				ctx := fx.e.ctx(c.key)
				if c.name == "not a bearer" {
					ctx = fx.e.ctx("")
					ctx = withRawAuth(ctx, c.key)
				}
				mt, _ := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
				resp := mt.New().Interface()
				err := conn.Invoke(ctx, method, fx.request(t, md), resp)
				if got := status.Code(err); got != c.want {
					t.Fatalf("code %v, want %v (%v)", got, c.want, err)
				}
				if err != nil {
					mustNotLeak(t, "error", err.Error())
				} else {
					b, _ := json.Marshal(resp)
					mustNotLeak(t, "answer", string(b))
				}
				_ = teamScoped
			})
		}
	}
}

func TestSecurityHTTP(t *testing.T) {
	fx := newSecurityFixture(t)
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(adminv1.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	routes := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			routes++
			name := strings.TrimPrefix(op.OperationID, "AdminService_")
			pol, ok := policies[svc+name]
			if !ok {
				t.Fatalf("%s %s: no policy for %s", method, path, op.OperationID)
			}
			url := strings.NewReplacer("{team_id}", fmt.Sprint(fx.teamA), "{flag_id}", fmt.Sprint(fx.flagA),
				"{cohort_id}", fmt.Sprint(fx.cohortA), "{feature_id}", fx.featureA, "{job_id}", fx.jobA,
				"{key_id}", fx.keyA, "{key}", markFlag, "{index}", "0", "{group_type_index}", "0").Replace(path)
			body := ""
			if method == "post" || method == "put" || method == "patch" {
				body = `{}`
				switch name {
				case "CreatePersonalKey":
					body = fmt.Sprintf(`{"scopes":["flag:read"],"teams":["%d"]}`, fx.teamA)
				case "CreateFlag":
					body = `{"key":"x"}`
				case "CreateCohort":
					body = `{"name":"x","kind":"COHORT_KIND_STATIC"}`
				case "AddCohortMembers", "RemoveCohortMembers":
					body = `{"distinct_ids":["u1"]}`
				}
			}
			otherTeam := http.StatusNotFound
			switch name {
			case "CreateTeam":
				otherTeam = http.StatusForbidden
			case "ListTeams":
				otherTeam = http.StatusOK
			}
			cases := []struct {
				name string
				auth string
				want int
			}{
				{"no key", "", http.StatusUnauthorized},
				{"bad key", "Bearer phx_" + strings.Repeat("0", 64), http.StatusUnauthorized},
				{"not a bearer", "Basic dXNlcjpwYXNz", http.StatusUnauthorized},
				{"revoked key", "Bearer " + fx.revoked, http.StatusUnauthorized},
				{"other team", "Bearer " + fx.otherTeam, otherTeam},
				{"without scope", "Bearer " + fx.withoutScope(pol.scope), http.StatusForbidden},
			}
			for _, c := range cases {
				t.Run(strings.ToUpper(method)+" "+path+"/"+c.name, func(t *testing.T) {
					req, err := http.NewRequest(strings.ToUpper(method), fx.e.base+url, strings.NewReader(body))
					if err != nil {
						t.Fatal(err)
					}
					if c.auth != "" {
						req.Header.Set("Authorization", c.auth)
					}
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					data, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != c.want {
						t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.want, data)
					}
					mustNotLeak(t, "answer", string(data))
				})
			}
		}
	}
	if routes < 40 {
		t.Errorf("only %d routes in the OpenAPI document", routes)
	}
}

func TestSecurityPublic(t *testing.T) {
	fx := newSecurityFixture(t)
	get := func(token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, fx.e.base+"/api/early_access_features?token="+token, nil)
		req.Header.Set("Origin", "https://shop.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		// posthog-js reads it cross-origin: the origin is echoed, with
		// credentials, as PostHog's server does.
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://shop.example" {
			t.Errorf("Access-Control-Allow-Origin %q, want the caller's origin", got)
		}
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	for _, c := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", 401},
		{"bad token", "phc_" + strings.Repeat("0", 64), 401},
		{"revoked token", fx.revokedToken, 401},
		{"personal key", fx.e.root, 401},
		{"other team", fx.tokenB, 200},
	} {
		code, body := get(c.token)
		if code != c.want {
			t.Errorf("%s: %d, want %d: %s", c.name, code, c.want, body)
		}
		mustNotLeak(t, c.name, body)
	}
	code, body := get(fx.tokenA)
	if code != 200 || !strings.Contains(body, `"earlyAccessFeatures":[{"name":"`+markTeam+`"`) || !strings.Contains(body, `"flagKey":"`+markFlag+`-eaf"`) {
		t.Errorf("own token: %d %s", code, body)
	}
	if !slices.Contains([]string{fx.tokenA}, fx.tokenA) {
		t.Fatal("unreachable")
	}
}
