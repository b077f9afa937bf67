package catalogtest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"testing"

	"github.com/vexil-dev/vexil/catalog"
)

func testTeams(t *testing.T, h Harness) {
	c := open(t, h)
	ctx := t.Context()
	ch := catalog.Change{Actor: "k1"}

	a, err := c.CreateTeam(ctx, catalog.Team{Name: "alpha", Timezone: "Europe/Paris", GroupTypes: map[int]string{0: "company", 2: "project"}}, ch)
	must(t, "create alpha", err)
	if a.ID <= 0 || a.Version != 1 || a.Name != "alpha" || a.CreatedAt.IsZero() || !a.UpdatedAt.Equal(a.CreatedAt) {
		t.Fatalf("created team = %+v, want an id, version 1 and equal timestamps", a)
	}
	b := newTeam(t, c, "beta")
	if b.ID <= a.ID {
		t.Fatalf("team ids: beta %d after alpha %d, want increasing", b.ID, a.ID)
	}

	got, err := c.GetTeam(ctx, a.ID)
	must(t, "get alpha", err)
	sameJSON(t, "get alpha", got, a)
	if got.GroupTypes[2] != "project" {
		t.Fatalf("group types = %v", got.GroupTypes)
	}

	_, err = c.CreateTeam(ctx, catalog.Team{ID: a.ID, Name: "again"}, ch)
	wantErr(t, "create with a taken id", err, catalog.ErrExists)
	_, err = c.GetTeam(ctx, b.ID+1_000_000)
	wantErr(t, "get a missing team", err, catalog.ErrNotFound)
	_, err = c.CreateTeam(ctx, catalog.Team{Name: "bad", PropertyMatchingVersion: 3}, ch)
	wantErr(t, "property matching version 3", err, catalog.ErrInvalid)

	upd := got
	upd.Name = "alpha2"
	upd.PropertyMatchingVersion = 2
	upd.GroupTypes = map[int]string{0: "company", 1: "org"}
	a2, err := c.UpdateTeam(ctx, upd, ch)
	must(t, "update alpha", err)
	if a2.Version != 2 || a2.Name != "alpha2" || a2.PropertyMatchingVersion != 2 || !a2.CreatedAt.Equal(a.CreatedAt) || a2.UpdatedAt.Before(a.UpdatedAt) {
		t.Fatalf("updated team = %+v", a2)
	}
	_, err = c.UpdateTeam(ctx, upd, ch) // upd still carries version 1
	wantErr(t, "update with a stale version", err, catalog.ErrConflict)
	_, err = c.UpdateTeam(ctx, catalog.Team{ID: b.ID + 1_000_000, Version: 1}, ch)
	wantErr(t, "update a missing team", err, catalog.ErrNotFound)
	got, err = c.GetTeam(ctx, a.ID)
	must(t, "get alpha after update", err)
	sameJSON(t, "alpha after update", got, a2)

	all, err := c.ListTeams(ctx)
	must(t, "list teams", err)
	var ids []int64
	for _, tm := range all {
		ids = append(ids, tm.ID)
	}
	if !slices.IsSorted(ids) || !slices.Contains(ids, a.ID) || !slices.Contains(ids, b.ID) {
		t.Fatalf("ListTeams ids = %v, want sorted and holding %d and %d", ids, a.ID, b.ID)
	}

	// An explicit id is taken, and later allocations skip past it.
	explicit := b.ID + 500
	e, err := c.CreateTeam(ctx, catalog.Team{ID: explicit, Name: "explicit"}, ch)
	must(t, "create with an explicit id", err)
	if e.ID != explicit {
		t.Fatalf("explicit id = %d, want %d", e.ID, explicit)
	}
	n := newTeam(t, c, "next")
	if n.ID == explicit {
		t.Fatalf("allocated id %d collides with the explicit one", n.ID)
	}

	acts, _, err := c.ListActivity(ctx, catalog.ActivityQuery{TeamID: a.ID, Scope: catalog.ScopeTeam, ItemID: itemID(a.ID)})
	must(t, "team activity", err)
	if len(acts) != 2 || acts[0].Action != "updated" || acts[1].Action != "created" || acts[0].Actor != "k1" {
		t.Fatalf("team activity = %+v", acts)
	}
	var before, after catalog.Team
	must(t, "decode before", json.Unmarshal(acts[0].Before, &before))
	must(t, "decode after", json.Unmarshal(acts[0].After, &after))
	if before.Version != 1 || before.Name != "alpha" || after.Version != 2 || after.Name != "alpha2" {
		t.Fatalf("team update entry: before %+v, after %+v", before, after)
	}
}

// secret returns a random key secret and its SHA-256.
func secret(t *testing.T, prefix string) (string, []byte) {
	t.Helper()
	var b [16]byte
	_, _ = rand.Read(b[:])
	s := prefix + hex.EncodeToString(b[:])
	h := sha256.Sum256([]byte(s))
	return s, h[:]
}

func randomID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func testKeys(t *testing.T, h Harness) {
	c := open(t, h)
	ctx := t.Context()
	ch := catalog.Change{Actor: "admin"}
	t1, t2 := newTeam(t, c, "k1"), newTeam(t, c, "k2")

	tokSecret, tokHash := secret(t, "phc_")
	tok, err := c.PutKey(ctx, catalog.APIKey{ID: randomID("key_"), Kind: catalog.KeyProjectToken, Prefix: tokSecret[:8], Hash: tokHash, Teams: []int64{t1.ID}, Label: "web"}, ch)
	must(t, "put project token", err)
	if tok.Version != 1 || tok.CreatedAt.IsZero() || tok.Revoked() {
		t.Fatalf("stored token = %+v", tok)
	}
	_, perHash := secret(t, "phx_")
	per, err := c.PutKey(ctx, catalog.APIKey{ID: randomID("key_"), Kind: catalog.KeyPersonal, Prefix: "phx_abcd", Hash: perHash, Teams: []int64{t2.ID, t1.ID, t2.ID}, Scopes: []string{"flag:read", "flag:write"}, CreatedBy: "admin"}, ch)
	must(t, "put personal key", err)
	if !slices.Equal(per.Teams, sortedIDs(t1.ID, t2.ID)) {
		t.Fatalf("personal key teams = %v, want sorted without duplicates", per.Teams)
	}
	_, wideHash := secret(t, "phx_")
	wide, err := c.PutKey(ctx, catalog.APIKey{ID: randomID("key_"), Kind: catalog.KeyPersonal, Hash: wideHash, Scopes: []string{"team:admin"}}, ch)
	must(t, "put instance-wide key", err)

	byHash, err := c.GetKeyByHash(ctx, tokHash)
	must(t, "get token by hash", err)
	sameJSON(t, "token by hash", byHash, tok)
	byID, err := c.GetKey(ctx, per.ID)
	must(t, "get personal key", err)
	sameJSON(t, "personal key by id", byID, per)

	_, otherHash := secret(t, "phx_")
	_, err = c.GetKeyByHash(ctx, otherHash)
	wantErr(t, "unknown hash", err, catalog.ErrNotFound)
	_, err = c.GetKey(ctx, "key_missing")
	wantErr(t, "unknown id", err, catalog.ErrNotFound)

	cases := []struct {
		name string
		key  catalog.APIKey
		want error
	}{
		{"duplicate id", catalog.APIKey{ID: tok.ID, Kind: catalog.KeyPersonal, Hash: otherHash}, catalog.ErrExists},
		{"duplicate hash", catalog.APIKey{ID: randomID("key_"), Kind: catalog.KeyPersonal, Hash: tokHash}, catalog.ErrExists},
		{"project token with two teams", catalog.APIKey{ID: randomID("key_"), Kind: catalog.KeyProjectToken, Hash: otherHash, Teams: []int64{t1.ID, t2.ID}}, catalog.ErrInvalid},
		{"secure key with no team", catalog.APIKey{ID: randomID("key_"), Kind: catalog.KeySecure, Hash: otherHash}, catalog.ErrInvalid},
		{"no hash", catalog.APIKey{ID: randomID("key_"), Kind: catalog.KeyPersonal}, catalog.ErrInvalid},
		{"no id", catalog.APIKey{Kind: catalog.KeyPersonal, Hash: otherHash}, catalog.ErrInvalid},
		{"unknown kind", catalog.APIKey{ID: randomID("key_"), Kind: "root", Hash: otherHash}, catalog.ErrInvalid},
	}
	for _, tc := range cases {
		_, err := c.PutKey(ctx, tc.key, ch)
		wantErr(t, tc.name, err, tc.want)
	}

	for _, tc := range []struct {
		team int64
		want []string
	}{
		{t1.ID, sortedStrings(tok.ID, per.ID)},
		{t2.ID, []string{per.ID}},
	} {
		keys, err := c.ListKeys(ctx, tc.team)
		must(t, "list keys", err)
		if got := keyIDs(keys); !slices.Equal(got, tc.want) {
			t.Fatalf("ListKeys(%d) = %v, want %v", tc.team, got, tc.want)
		}
	}
	wideKeys, err := c.ListKeys(ctx, 0)
	must(t, "list instance-wide keys", err)
	if !slices.Contains(keyIDs(wideKeys), wide.ID) || slices.Contains(keyIDs(wideKeys), per.ID) {
		t.Fatalf("ListKeys(0) = %v, want %s and not %s", keyIDs(wideKeys), wide.ID, per.ID)
	}

	rev, err := c.RevokeKey(ctx, tok.ID, ch)
	must(t, "revoke", err)
	if !rev.Revoked() || rev.Version != 2 || rev.RevokedAt.Before(tok.CreatedAt) {
		t.Fatalf("revoked key = %+v", rev)
	}
	_, err = c.RevokeKey(ctx, tok.ID, ch)
	wantErr(t, "revoke twice", err, catalog.ErrConflict)
	_, err = c.RevokeKey(ctx, "key_missing", ch)
	wantErr(t, "revoke a missing key", err, catalog.ErrNotFound)
	byHash, err = c.GetKeyByHash(ctx, tokHash)
	must(t, "get revoked token by hash", err)
	if !byHash.Revoked() || !byHash.RevokedAt.Equal(rev.RevokedAt) {
		t.Fatalf("revoked key by hash = %+v, want RevokedAt %v", byHash, rev.RevokedAt)
	}
	keys, err := c.ListKeys(ctx, t1.ID)
	must(t, "list keys after revoke", err)
	if len(keys) != 2 {
		t.Fatalf("ListKeys after revoke = %v, want revoked keys listed too", keyIDs(keys))
	}

	// Key activity is recorded under every team the key reaches.
	for _, tc := range []struct {
		team int64
		key  string
		want []string
	}{
		{t1.ID, tok.ID, []string{"revoked", "created"}},
		{t1.ID, per.ID, []string{"created"}},
		{t2.ID, per.ID, []string{"created"}},
		{t2.ID, tok.ID, nil},
		{0, wide.ID, []string{"created"}},
	} {
		acts, _, err := c.ListActivity(ctx, catalog.ActivityQuery{TeamID: tc.team, Scope: catalog.ScopeKey, ItemID: tc.key})
		must(t, "key activity", err)
		var got []string
		for _, a := range acts {
			got = append(got, a.Action)
			if a.Actor != "admin" {
				t.Fatalf("key activity actor = %q", a.Actor)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Fatalf("activity of key %s in team %d = %v, want %v", tc.key, tc.team, got, tc.want)
		}
	}
}

func keyIDs(keys []catalog.APIKey) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.ID)
	}
	return out
}

func sortedIDs(ids ...int64) []int64 { slices.Sort(ids); return ids }

func sortedStrings(s ...string) []string { slices.Sort(s); return s }
