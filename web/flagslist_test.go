package web

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"testing"

	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

var flagKeyRE = regexp.MustCompile(`<td><a href="/ui/t/\d+/flags/\d+"><code>([^<]+)</code></a>`)

// TestFlagsListFilters: the flags list's search, tag and status filters
// reach the management API's list and show only what it answers.
func TestFlagsListFilters(t *testing.T) {
	e := newEnv(t)
	ctx := e.as(e.root)
	tm, err := e.client.CreateTeam(ctx, &adminv1.CreateTeamRequest{Name: "one"})
	if err != nil {
		t.Fatal(err)
	}
	team := tm.GetTeam().GetId()
	for _, f := range []*adminv1.FlagInput{
		{Key: "checkout-v2", Name: "New checkout", Active: true, Tags: []string{"payments"}},
		{Key: "dark-mode", Name: "Dark theme", Active: false, Tags: []string{"ui"}},
		{Key: "old-banner", Active: true, Tags: []string{"ui"}},
		{Key: "search-ranking", Description: "ranks the checkout's suggestions", Active: true},
	} {
		if _, err := e.client.CreateFlag(ctx, &adminv1.CreateFlagRequest{TeamId: team, Flag: f}); err != nil {
			t.Fatal(err)
		}
	}
	old, err := e.client.GetFlagByKey(ctx, &adminv1.GetFlagByKeyRequest{TeamId: team, Key: "old-banner"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.ArchiveFlag(ctx, &adminv1.ArchiveFlagRequest{TeamId: team, FlagId: old.GetFlag().GetId(), Version: old.GetFlag().GetVersion()}); err != nil {
		t.Fatal(err)
	}

	b := e.browser(t)
	b.signIn(e.root)
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"", []string{"checkout-v2", "dark-mode", "search-ranking"}},
		{"search=checkout", []string{"checkout-v2", "search-ranking"}}, // key and description
		{"search=THEME", []string{"dark-mode"}},                        // name, any case
		{"tag=ui", []string{"dark-mode"}},                              // the archived one is hidden by default
		{"tag=ui&status=all", []string{"dark-mode", "old-banner"}},
		{"status=active", []string{"checkout-v2", "search-ranking"}},
		{"status=inactive", []string{"dark-mode"}},
		{"status=archived", []string{"old-banner"}},
		{"search=nothing-like-this", nil},
	} {
		t.Run(c.query, func(t *testing.T) {
			code, body, _ := b.do("GET", fmt.Sprintf("/ui/t/%d/flags?%s", team, c.query), nil)
			if code != 200 {
				t.Fatalf("%d %s", code, body)
			}
			var got []string
			for _, m := range flagKeyRE.FindAllStringSubmatch(body, -1) {
				got = append(got, m[1])
			}
			slices.Sort(got)
			if !slices.Equal(got, c.want) {
				t.Errorf("flags %v, want %v", got, c.want)
			}
		})
	}
	for _, q := range []string{"status=bogus", "search=" + url.QueryEscape(string(make([]byte, 201)))} {
		if code, _, _ := b.do("GET", fmt.Sprintf("/ui/t/%d/flags?%s", team, q), nil); code != 400 {
			t.Errorf("%.30s: %d, want 400", q, code)
		}
	}
}
