package web

import (
	"context"
	"fmt"
	"html"
	"strings"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/catalog"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// fakeStates is the usage statistics' flag states (package usage's rule
// is tested there): "old" is stale, "used" was evaluated at last.
type fakeStates struct{ last time.Time }

func (f fakeStates) FlagStates(_ context.Context, _ int64, recs []catalog.FlagRecord) (map[string]admin.FlagUsageState, error) {
	out := map[string]admin.FlagUsageState{}
	for _, r := range recs {
		switch r.Flag.Key {
		case "old":
			out[r.Flag.Key] = admin.FlagUsageState{Status: "STALE"}
		case "used":
			out[r.Flag.Key] = admin.FlagUsageState{Status: "ACTIVE", LastEvaluatedAt: f.last}
		}
	}
	return out, nil
}

// fakeUsage answers two hours of "used": 15 then 7 evaluations.
type fakeUsage struct {
	start time.Time
	asked map[string]int
}

func (f fakeUsage) FlagUsage(_ context.Context, _ int64, key string) (*Usage, error) {
	f.asked[key]++
	if key != "used" {
		return &Usage{Variants: map[string]int64{}}, nil
	}
	return &Usage{LastEvaluated: f.start.Add(90 * time.Minute), Total: 22, UniqueIDs: 20,
		Variants: map[string]int64{"control": 12, "test": 10},
		Buckets: []UsageBucket{
			{Start: f.start, Count: 15, Unique: 14, Variants: map[string]int64{"control": 8, "test": 7}},
			{Start: f.start.Add(time.Hour), Count: 7, Unique: 7, Variants: map[string]int64{"control": 4, "test": 3}},
		}}, nil
}

// TestUsageInTheUI: the flag list shows the statistics' status, the last
// evaluation and a sparkline; the flag page the evaluations, unique ids
// and variants as charts and counts.
func TestUsageInTheUI(t *testing.T) {
	start := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	fu := fakeUsage{start: start, asked: map[string]int{}}
	e := newEnvWith(t, fakeStates{last: start.Add(90 * time.Minute)}, fu)
	tm, err := e.client.CreateTeam(e.as(e.root), &adminv1.CreateTeamRequest{Name: "one"})
	if err != nil {
		t.Fatal(err)
	}
	team := tm.GetTeam().GetId()
	var usedID int64
	for _, key := range []string{"old", "used"} {
		f, err := e.client.CreateFlag(e.as(e.root), &adminv1.CreateFlagRequest{TeamId: team, Flag: &adminv1.FlagInput{Key: key, Active: true}})
		if err != nil {
			t.Fatal(err)
		}
		if key == "used" {
			usedID = f.GetFlag().GetId()
		}
	}
	b := e.browser(t)
	b.signIn(e.root)
	code, body, _ := b.do("GET", fmt.Sprintf("/ui/t/%d/flags", team), nil)
	if code != 200 {
		t.Fatalf("flags: %d", code)
	}
	row := func(key string) string {
		i := strings.Index(body, "<code>"+key+"</code>")
		if i < 0 {
			t.Fatalf("no row %s", key)
		}
		end := strings.Index(body[i:], "</tr>")
		return html.UnescapeString(body[i : i+end])
	}
	old, used := row("old"), row("used")
	if !strings.Contains(old, `class="badge stale">stale<`) || !strings.Contains(old, "not in 24 h") {
		t.Errorf("the stale row: %s", old)
	}
	if !strings.Contains(used, `class="badge active">active<`) || !strings.Contains(used, "2026-12-06 04:30") ||
		!strings.Contains(used, fmt.Sprintf(`data-series="[[%d,%d],[15,7]]"`, start.Unix(), start.Add(time.Hour).Unix())) ||
		!strings.Contains(used, `22 evaluations in 24 hours`) {
		t.Errorf("the used row: %s", used)
	}
	code, body, _ = b.do("GET", fmt.Sprintf("/ui/t/%d/flags/%d", team, usedID), nil)
	body = html.UnescapeString(body)
	xs := fmt.Sprintf("[%d,%d]", start.Unix(), start.Add(time.Hour).Unix())
	for _, want := range []string{
		"<strong>22</strong> evaluations and <strong>20</strong> unique ids in the last 24 hours; last evaluated 2026-12-06 04:30 UTC",
		`data-series="[` + xs + `,[15,7]]"`,                              // evaluations
		`data-series="[` + xs + `,[14,7]]" data-labels='["unique ids"]'`, // unique ids
		`data-series="[` + xs + `,[8,4],[7,3]]" data-labels="[&#34;control&#34;,&#34;test&#34;]"`,
		"<td><code>control</code></td><td>12</td>", "<td><code>test</code></td><td>10</td>",
	} {
		if !strings.Contains(body, html.UnescapeString(want)) {
			t.Errorf("flag page (%d) lacks %s", code, want)
		}
	}
	if fu.asked["used"] != 2 || fu.asked["old"] != 1 {
		t.Errorf("usage asked %v, want once per row and once for the page", fu.asked)
	}
}

// TestBlastShowsGroups: the review's blast radius shows the groups a
// group-aggregated change moves beside the persons, and no group line for
// a person flag.
func TestBlastShowsGroups(t *testing.T) {
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	render := func(j *adminv1.BlastRadiusJob) string {
		var buf strings.Builder
		if err := pages["blast"].ExecuteTemplate(&buf, "content", view{Data: j}); err != nil {
			t.Fatal(err)
		}
		return html.UnescapeString(buf.String())
	}
	out := render(&adminv1.BlastRadiusJob{State: adminv1.JobState_JOB_STATE_DONE, RowsTotal: 200, Changed: 0,
		GroupsEvaluated: 5, GroupsChanged: 3, GroupTransitions: map[string]int64{"false->true": 3}, GroupSample: []string{"0:co2", "0:co3"}})
	for _, want := range []string{`<strong data-testid="blast-changed">0</strong> person(s)`, `<strong data-testid="blast-groups-changed">3</strong> group(s) would change value, out of 5 groups`,
		"<li>false->true: 3 group(s)</li>", "0:co2, 0:co3"} {
		if !strings.Contains(out, want) {
			t.Errorf("blast radius lacks %q:\n%s", want, out)
		}
	}
	if out := render(&adminv1.BlastRadiusJob{State: adminv1.JobState_JOB_STATE_DONE, RowsTotal: 200, Changed: 7}); strings.Contains(out, "blast-groups-changed") {
		t.Errorf("a person flag shows groups:\n%s", out)
	}
}
