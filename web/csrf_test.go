package web

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// TestEveryWriteNeedsCSRF: every POST of the UI (each a write through the
// management API) is refused with 403, and changes nothing, without the
// session's CSRF token, with another session's token, or from another
// site's Origin, even for a key with every scope.
func TestEveryWriteNeedsCSRF(t *testing.T) {
	e := newEnv(t)
	ctx := e.as(e.root)
	tm, err := e.client.CreateTeam(ctx, &adminv1.CreateTeamRequest{Name: "one"})
	if err != nil {
		t.Fatal(err)
	}
	team := tm.GetTeam().GetId()
	f, err := e.client.CreateFlag(ctx, &adminv1.CreateFlagRequest{TeamId: team, Flag: &adminv1.FlagInput{Key: "guarded", Active: true}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.client.CreateCohort(ctx, &adminv1.CreateCohortRequest{TeamId: team, Cohort: &adminv1.CohortInput{Name: "static", IsStatic: true,
		Kind: adminv1.CohortKind_COHORT_KIND_STATIC}})
	if err != nil {
		t.Fatal(err)
	}
	ea, err := e.client.CreateEarlyAccessFeature(ctx, &adminv1.CreateEarlyAccessFeatureRequest{TeamId: team, Name: "Beta thing", Stage: adminv1.Stage_STAGE_BETA})
	if err != nil {
		t.Fatal(err)
	}
	k, err := e.client.CreatePersonalKey(ctx, &adminv1.CreatePersonalKeyRequest{Label: "victim", Scopes: []string{"flag:read"}, Teams: []int64{team}})
	if err != nil {
		t.Fatal(err)
	}

	// state is everything those writes could change, as JSON.
	state := func() string {
		t.Helper()
		var b strings.Builder
		add := func(m proto.Message, err error) {
			if err != nil {
				t.Fatal(err)
			}
			b.Write([]byte(protojson.Format(m)))
		}
		add(e.client.GetTeam(ctx, &adminv1.GetTeamRequest{TeamId: team}))
		add(e.client.ListFlags(ctx, &adminv1.ListFlagsRequest{TeamId: team, Status: adminv1.FlagStatus_FLAG_STATUS_ALL}))
		add(e.client.ListCohorts(ctx, &adminv1.ListCohortsRequest{TeamId: team}))
		add(e.client.ListCohortMembers(ctx, &adminv1.ListCohortMembersRequest{TeamId: team, CohortId: c.GetCohort().GetId()}))
		add(e.client.ListEarlyAccessFeatures(ctx, &adminv1.ListEarlyAccessFeaturesRequest{TeamId: team}))
		keys, err := e.client.ListKeys(ctx, &adminv1.ListKeysRequest{TeamId: team})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys.GetKeys() { // not last_used_at: the UI's reads use the root key
			fmt.Fprintf(&b, "key %s %s revoked=%v\n", k.GetId(), k.GetLabel(), k.GetRevokedAt() != nil)
		}
		return b.String()
	}

	base := fmt.Sprintf("/ui/t/%d", team)
	fl := fmt.Sprintf("%s/flags/%d", base, f.GetFlag().GetId())
	flagForm := url.Values{"action": {"save"}, "key": {"forged"}, "conds": {"0"}, "variants": {"0"}, "overrides": {"0"}, "active": {"on"}}
	writes := []struct {
		path string
		form url.Values
	}{
		{base + "/flags/new", flagForm},
		{fl + "/edit", url.Values{"action": {"save"}, "key": {"guarded"}, "conds": {"0"}, "variants": {"0"}, "overrides": {"0"}, "version": {"1"}}},
		{fl + "/state", url.Values{"op": {"disable"}, "version": {"1"}}},
		{fl + "/state", url.Values{"op": {"archive"}, "version": {"1"}}},
		{base + "/cohorts", url.Values{"name": {"forged"}, "kind": {"static"}}},
		{fmt.Sprintf("%s/cohorts/%d/members", base, c.GetCohort().GetId()), url.Values{"ids": {"user-1"}}},
		{base + "/early-access", url.Values{"name": {"forged"}, "flag": {"forged-ea"}, "stage": {"2"}}},
		{fmt.Sprintf("%s/early-access/%s/stage", base, ea.GetFeature().GetId()), url.Values{"stage": {"4"}, "version": {"1"}}},
		{base + "/keys", url.Values{"label": {"forged"}, "scopes": {"flag:read"}}},
		{fmt.Sprintf("%s/keys/%s/revoke", base, k.GetKey().GetId()), url.Values{}},
		{base + "/settings/group-types", url.Values{"index": {"1"}, "name": {"forged"}}},
	}

	victim := e.browser(t)
	victim.signIn(e.root)
	victim.do("GET", base+"/flags", nil)
	other := e.browser(t)
	other.signIn(e.root)
	other.do("GET", base+"/flags", nil)
	if victim.csrf == "" || other.csrf == "" || victim.csrf == other.csrf {
		t.Fatalf("CSRF tokens %q and %q: want two different ones", victim.csrf, other.csrf)
	}
	post := func(path string, form url.Values, origin string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", e.base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := victim.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	with := func(form url.Values, csrf string) url.Values {
		v := url.Values{}
		for k, x := range form {
			v[k] = x
		}
		if csrf != "" {
			v.Set("csrf", csrf)
		}
		return v
	}

	before := state()
	for _, w := range append(writes, struct {
		path string
		form url.Values
	}{"/ui/logout", url.Values{}}) {
		for _, c := range []struct {
			name         string
			csrf, origin string
			msg          string
		}{
			{"no token", "", "", "security token is missing or stale"},
			{"another session's token", other.csrf, "", "security token is missing or stale"},
			{"another site", victim.csrf, "https://evil.example", "came from another site"},
		} {
			code, body := post(w.path, with(w.form, c.csrf), c.origin)
			if code != http.StatusForbidden || !strings.Contains(body, c.msg) {
				t.Errorf("POST %s, %s: %d; want 403 saying %q", w.path, c.name, code, c.msg)
			}
		}
	}
	if after := state(); after != before {
		t.Errorf("refused writes changed something:\nbefore %s\nafter  %s", before, after)
	}
	// The session survived the refused sign-outs, and its token works.
	if code, _, _ := victim.do("GET", base+"/flags", nil); code != 200 {
		t.Fatalf("the session after refused sign-outs: %d", code)
	}
	if code, body := post(fl+"/state", with(url.Values{"op": {"disable"}, "version": {"1"}}, victim.csrf), e.base); code != http.StatusSeeOther {
		t.Fatalf("the same write with the token: %d %s", code, body)
	}
	if state() == before {
		t.Error("the accepted write changed nothing")
	}
}
