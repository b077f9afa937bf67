package admin

import (
	"context"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/pebblecatalog"
	"github.com/vexil-dev/vexil/errcode"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

func TestTeamsAndKeys(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx(e.root)
	team := e.createTeam("acme")
	if team.GetApiToken() == "" || team.GetVersion() != 1 {
		t.Fatalf("team %v", team)
	}
	up, err := e.client.UpdateTeam(ctx, &adminv1.UpdateTeamRequest{TeamId: team.GetId(), Version: 1, Timezone: new("Europe/Paris")})
	if err != nil || up.GetTeam().GetName() != "acme" || up.GetTeam().GetTimezone() != "Europe/Paris" {
		t.Fatalf("update %v %v", up, err)
	}
	if _, err := e.client.UpdateTeam(ctx, &adminv1.UpdateTeamRequest{TeamId: team.GetId(), Version: 2, Timezone: new("Mars/Olympus")}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad zone: %v", err)
	}
	gt, err := e.client.SetGroupType(ctx, &adminv1.SetGroupTypeRequest{TeamId: team.GetId(), Version: 2, GroupTypeIndex: 1, GroupType: "company"})
	if err != nil || len(gt.GetTeam().GetGroupTypes()) != 1 || gt.GetTeam().GetGroupTypes()[0].GetGroupType() != "company" {
		t.Fatalf("group type %v %v", gt, err)
	}
	// A team admin key mints a narrower key for its team only.
	admin := e.key([]int64{team.GetId()}, ScopeTeamAdmin, ScopeFlagRead)
	ak := e.ctx(admin)
	k, err := e.client.CreatePersonalKey(ak, &adminv1.CreatePersonalKeyRequest{Label: "ci", Scopes: []string{ScopeFlagRead}, Teams: []int64{team.GetId()}})
	if err != nil || k.GetSecret()[:4] != PrefixPersonal {
		t.Fatalf("create key %v %v", k, err)
	}
	if _, err := e.client.CreatePersonalKey(ak, &adminv1.CreatePersonalKeyRequest{Scopes: []string{ScopeFlagWrite}, Teams: []int64{team.GetId()}}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("granting a scope it lacks: %v", err)
	}
	if _, err := e.client.CreatePersonalKey(ak, &adminv1.CreatePersonalKeyRequest{Scopes: []string{ScopeFlagRead}}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("an instance-wide key from a team key: %v", err)
	}
	if _, err := e.client.CreateTeam(ak, &adminv1.CreateTeamRequest{Name: "x"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("team key creates a team: %v", err)
	}
	// The new key works, then is revoked.
	if _, err := e.client.ListFlags(e.ctx(k.GetSecret()), &adminv1.ListFlagsRequest{TeamId: team.GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.RevokeKey(ak, &adminv1.RevokeKeyRequest{KeyId: k.GetKey().GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.RevokeKey(ak, &adminv1.RevokeKeyRequest{KeyId: k.GetKey().GetId()}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("second revoke: %v", err)
	}
	if _, err := e.client.ListFlags(e.ctx(k.GetSecret()), &adminv1.ListFlagsRequest{TeamId: team.GetId()}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("revoked key: %v", err)
	}
	keys, err := e.client.ListKeys(ak, &adminv1.ListKeysRequest{TeamId: team.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, k := range keys.GetKeys() {
		kinds[k.GetKind()]++
	}
	if kinds["project_token"] != 1 || kinds["secure"] != 1 || kinds["personal"] != 2 {
		t.Errorf("keys %v", kinds)
	}
	// Rotating the secure key revokes the old one.
	rot, err := e.client.RotateTeamKey(ak, &adminv1.RotateTeamKeyRequest{TeamId: team.GetId(), Kind: adminv1.TeamKeyKind_TEAM_KEY_KIND_SECURE})
	if err != nil || rot.GetSecret()[:4] != PrefixSecure {
		t.Fatalf("rotate %v %v", rot, err)
	}
	keys, _ = e.client.ListKeys(ak, &adminv1.ListKeysRequest{TeamId: team.GetId()})
	active := 0
	for _, k := range keys.GetKeys() {
		if k.GetKind() == "secure" && !k.GetRevoked() {
			active++
		}
	}
	if active != 1 {
		t.Errorf("%d active secure keys", active)
	}
	// Team activity lists the team changes.
	act, err := e.client.ListActivity(ctx, &adminv1.ListActivityRequest{TeamId: team.GetId(), Scope: "team"})
	if err != nil || len(act.GetEntries()) != 3 || act.GetEntries()[0].GetAction() != "group_type_set" {
		t.Fatalf("team activity %v %v", act, err)
	}
}

// Two API nodes on one catalog: of two updates from the same version,
// exactly one wins and the other gets a conflict with the new version.
func TestConcurrentUpdatesOneWins(t *testing.T) {
	e := newEnv(t)
	team := e.createTeam("acme")
	f, err := e.client.CreateFlag(e.ctx(e.root), &adminv1.CreateFlagRequest{TeamId: team.GetId(), Flag: &adminv1.FlagInput{Key: "f"}})
	if err != nil {
		t.Fatal(err)
	}
	second, err := New(Config{Catalog: e.cat})
	if err != nil {
		t.Fatal(err)
	}
	k, err := e.cat.GetKeyByHash(context.Background(), HashSecret(e.root))
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*Service{e.svc, second}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			ctx := context.WithValue(context.Background(), principalKey{}, &principal{key: k})
			_, errs[i] = n.UpdateFlag(ctx, &adminv1.UpdateFlagRequest{TeamId: team.GetId(), FlagId: f.GetFlag().GetId(), Version: 1,
				Flag: &adminv1.FlagInput{Key: "f", Name: "node" + string(rune('a'+i))}})
		})
	}
	wg.Wait()
	ok, conflicts := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errcode.From(err).Code == errcode.Conflict && errcode.From(err).Meta["current_version"] == "2" &&
			errcode.From(err).Meta["sent_version"] == "1":
			conflicts++
		default:
			t.Errorf("unexpected %v", err)
		}
	}
	if ok != 1 || conflicts != 1 {
		t.Fatalf("%d won, %d conflicts", ok, conflicts)
	}
}

// The same API on the Pebble catalog, across a reopen.
func TestPebbleCatalog(t *testing.T) {
	dir := t.TempDir()
	open := func() catalog.Catalog {
		c, err := pebblecatalog.Open(pebblecatalog.Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := open()
	_, root, err := CreatePersonalKey(context.Background(), c, nil, []string{ScopeAll}, "root", "test")
	if err != nil {
		t.Fatal(err)
	}
	var flagID, teamID int64
	func() {
		e := newEnv(t, func(cfg *Config) { cfg.Catalog = c })
		e.root = root
		teamID = e.createTeam("acme").GetId()
		r, err := e.client.CreateFlag(e.ctx(root), &adminv1.CreateFlagRequest{TeamId: teamID, Flag: &adminv1.FlagInput{Key: "f", Active: true,
			Filters: js(`{"groups":[{"properties":[{"key":"n","type":"person","value":"10.50"}]}]}`)}})
		if err != nil {
			t.Fatal(err)
		}
		flagID = r.GetFlag().GetId()
		if _, err := e.client.DisableFlag(e.ctx(root), &adminv1.DisableFlagRequest{TeamId: teamID, FlagId: flagID, Version: 1}); err != nil {
			t.Fatal(err)
		}
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = open()
	e := newEnv(t, func(cfg *Config) { cfg.Catalog = c })
	g, err := e.client.GetFlag(e.ctx(root), &adminv1.GetFlagRequest{TeamId: teamID, FlagId: flagID})
	got, _ := filtersFromStruct(g.GetFlag().GetFilters())
	if err != nil || g.GetFlag().GetVersion() != 2 || g.GetFlag().GetActive() || encodeJSON(got) != `{"groups":[{"properties":[{"key":"n","value":"10.50","type":"person"}],"rollout_percentage":null}]}` {
		t.Fatalf("after reopen %v %v", g, err)
	}
}

// The same race on a team: the loser gets a conflict naming the version it
// sent and the current one (not a "team not found").
func TestConcurrentTeamUpdatesOneWins(t *testing.T) {
	e := newEnv(t)
	team := e.createTeam("acme")
	second, err := New(Config{Catalog: e.cat})
	if err != nil {
		t.Fatal(err)
	}
	k, err := e.cat.GetKeyByHash(context.Background(), HashSecret(e.root))
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*Service{e.svc, second}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			ctx := context.WithValue(context.Background(), principalKey{}, &principal{key: k})
			name := "node" + string(rune('a'+i))
			_, errs[i] = n.UpdateTeam(ctx, &adminv1.UpdateTeamRequest{TeamId: team.GetId(), Version: team.GetVersion(), Name: &name})
		})
	}
	wg.Wait()
	ok, conflicts := 0, 0
	for _, err := range errs {
		e := errcode.From(err)
		switch {
		case err == nil:
			ok++
		case e.Code == errcode.Conflict && e.Meta["current_version"] == "2" && e.Meta["sent_version"] == "1" &&
			strings.Contains(e.Message, "version 1 was sent, the current version is 2"):
			conflicts++
		default:
			t.Errorf("unexpected %v", err)
		}
	}
	if ok != 1 || conflicts != 1 {
		t.Fatalf("%d won, %d conflicts", ok, conflicts)
	}
}

// Team 0 lists the instance-wide keys, for an instance-wide caller only.
func TestListInstanceWideKeys(t *testing.T) {
	e := newEnv(t)
	team := e.createTeam("acme")
	wide := e.key(nil, ScopeFlagRead)
	scoped := e.key([]int64{team.GetId()}, ScopeAll)
	resp, err := e.client.ListKeys(e.ctx(e.root), &adminv1.ListKeysRequest{TeamId: 0})
	if err != nil {
		t.Fatal(err)
	}
	var prefixes []string
	for _, k := range resp.GetKeys() {
		if len(k.GetTeams()) != 0 {
			t.Errorf("key %s reaches teams %v", k.GetId(), k.GetTeams())
		}
		prefixes = append(prefixes, k.GetPrefix())
	}
	if len(prefixes) != 2 || !slicesContainPrefix(prefixes, e.root) || !slicesContainPrefix(prefixes, wide) {
		t.Fatalf("instance-wide keys %v, want the root key's and %s's", prefixes, wide[:12])
	}
	_, err = e.client.ListKeys(e.ctx(scoped), &adminv1.ListKeysRequest{TeamId: 0})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("a team key listing team 0: %v, want NotFound", err)
	}
}

func slicesContainPrefix(prefixes []string, secret string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(secret, p) {
			return true
		}
	}
	return false
}
