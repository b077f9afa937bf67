package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/memcatalog"
	"github.com/vexil-dev/vexil/errcode"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
	"github.com/vexil-dev/vexil/store"
)

func TestExplain(t *testing.T) {
	e := newEnv(t)
	team := e.createTeam("acme")
	ctx := e.ctx(e.root)
	e.putRows(team.GetId(), map[string]string{"u1": `{"email":"a@corp.com","plan":"pro"}`})
	f, err := e.client.CreateFlag(ctx, &adminv1.CreateFlagRequest{TeamId: team.GetId(), Flag: &adminv1.FlagInput{Key: "f", Active: true,
		Filters: js(`{"groups":[
			{"properties":[{"key":"plan","type":"person","value":"free"}]},
			{"properties":[{"key":"email","type":"person","operator":"icontains","value":"@corp.com"},{"key":"plan","type":"person","value":"pro"}],"rollout_percentage":100}]}`)}})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := e.client.ExplainFlag(ctx, &adminv1.ExplainFlagRequest{TeamId: team.GetId(), FlagId: f.GetFlag().GetId(), DistinctId: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	if !ex.GetEnabled() || ex.GetReason() != "condition_match" || ex.GetConditionIndex() != 1 || !ex.GetFromStore() || len(ex.GetConditions()) != 2 {
		t.Fatalf("explain %v", ex)
	}
	c0, c1 := ex.GetConditions()[0], ex.GetConditions()[1]
	if c0.GetPropertiesMatched() || c0.GetDecisive() || c0.GetFilters()[0].GetMatched() {
		t.Errorf("condition 0 %v", c0)
	}
	if !c1.GetPropertiesMatched() || !c1.GetInRollout() || !c1.GetDecisive() || len(c1.GetFilters()) != 2 ||
		!c1.GetFilters()[0].GetMatched() || !c1.GetFilters()[1].GetMatched() || c1.GetTarget() != "persons" {
		t.Errorf("condition 1 %v", c1)
	}
	// Properties given in the request replace the row's.
	ex, err = e.client.ExplainFlag(ctx, &adminv1.ExplainFlagRequest{TeamId: team.GetId(), FlagId: f.GetFlag().GetId(), DistinctId: "u1",
		PersonProperties: js(`{"plan":"free"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if !ex.GetEnabled() || ex.GetConditionIndex() != 0 || ex.GetFromStore() || ex.GetConditions()[1].GetFilters()[0].GetMatched() {
		t.Errorf("explain with properties %v", ex)
	}
	// Merged: the row's email, the request's plan.
	ex, err = e.client.ExplainFlag(ctx, &adminv1.ExplainFlagRequest{TeamId: team.GetId(), FlagId: f.GetFlag().GetId(), DistinctId: "u1",
		PersonProperties: js(`{"plan":"enterprise"}`), MergeProperties: true})
	if err != nil {
		t.Fatal(err)
	}
	if ex.GetEnabled() || ex.GetReason() != "no_condition_match" || !ex.GetConditions()[1].GetFilters()[0].GetMatched() ||
		ex.GetConditions()[1].GetFilters()[1].GetMatched() {
		t.Errorf("explain merged %v", ex)
	}
	if _, err := e.client.ExplainFlag(ctx, &adminv1.ExplainFlagRequest{TeamId: team.GetId(), FlagId: f.GetFlag().GetId(), DistinctId: "u1",
		Groups: map[string]string{"company": "acme"}, GroupProperties: js(`{"company":5}`)}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad properties: %v", err)
	}
}

func blastRows(n int) map[string]string {
	rows := map[string]string{}
	for i := range n {
		country := "US"
		if i%2 == 1 {
			country = "DE"
		}
		rows[fmt.Sprintf("u%03d", i)] = fmt.Sprintf(`{"country":%q}`, country)
	}
	return rows
}

func TestBlastRadiusSync(t *testing.T) {
	e := newEnv(t)
	team := e.createTeam("acme")
	ctx := e.ctx(e.root)
	e.putRows(team.GetId(), blastRows(10))
	f, err := e.client.CreateFlag(ctx, &adminv1.CreateFlagRequest{TeamId: team.GetId(), Flag: &adminv1.FlagInput{Key: "f", Active: true,
		Filters: js(`{"groups":[{"properties":[{"key":"country","type":"person","value":"US"}]}]}`)}})
	if err != nil {
		t.Fatal(err)
	}
	// Proposed: everyone in DE instead of US: all 10 change.
	resp, err := e.client.StartBlastRadius(ctx, &adminv1.StartBlastRadiusRequest{TeamId: team.GetId(), FlagId: f.GetFlag().GetId(), SampleSize: 3,
		Flag: &adminv1.FlagInput{Key: "f", Active: true, Filters: js(`{"groups":[{"properties":[{"key":"country","type":"person","value":"DE"}]}]}`)}})
	if err != nil {
		t.Fatal(err)
	}
	j := resp.GetJob()
	if j.GetState() != adminv1.JobState_JOB_STATE_DONE || j.GetRowsDone() != 10 || j.GetRowsTotal() != 10 || j.GetChanged() != 10 ||
		j.GetTransitions()["true->false"] != 5 || j.GetTransitions()["false->true"] != 5 || len(j.GetSample()) != 3 {
		t.Fatalf("job %v", j)
	}
	// A proposal that changes nothing.
	resp, err = e.client.StartBlastRadius(ctx, &adminv1.StartBlastRadiusRequest{TeamId: team.GetId(), FlagId: f.GetFlag().GetId(),
		Flag: &adminv1.FlagInput{Key: "f", Active: true, Filters: js(`{"groups":[{"properties":[{"key":"country","type":"person","value":"US"}]}]}`)}})
	if err != nil || resp.GetJob().GetChanged() != 0 || resp.GetJob().GetRowsDone() != 10 {
		t.Fatalf("no change: %v %v", resp, err)
	}
	// The job is stored and listed.
	g, err := e.client.GetBlastRadiusJob(ctx, &adminv1.GetBlastRadiusJobRequest{TeamId: team.GetId(), JobId: j.GetId()})
	if err != nil || g.GetJob().GetChanged() != 10 {
		t.Fatalf("get job %v %v", g, err)
	}
	l, err := e.client.ListBlastRadiusJobs(ctx, &adminv1.ListBlastRadiusJobsRequest{TeamId: team.GetId()})
	if err != nil || len(l.GetJobs()) != 2 {
		t.Fatalf("list jobs %v %v", l, err)
	}
	// A new flag: everyone it gives true changes.
	resp, err = e.client.StartBlastRadius(ctx, &adminv1.StartBlastRadiusRequest{TeamId: team.GetId(),
		Flag: &adminv1.FlagInput{Key: "new", Active: true, Filters: js(`{"groups":[{"properties":[],"rollout_percentage":100}]}`)}})
	if err != nil || resp.GetJob().GetChanged() != 10 || resp.GetJob().GetTransitions()["false->true"] != 10 {
		t.Fatalf("new flag %v %v", resp, err)
	}
	// Invalid proposals are refused like writes.
	_, err = e.client.StartBlastRadius(ctx, &adminv1.StartBlastRadiusRequest{TeamId: team.GetId(),
		Flag: &adminv1.FlagInput{Key: "x", Filters: js(`{"groups":[{"properties":[],"rollout_percentage":120}]}`)}})
	if errcode.FromStatus(status.Convert(err)).Code != errcode.InvalidDefinition {
		t.Errorf("invalid proposal: %v", err)
	}
	// Cancelling a finished job is refused.
	_, err = e.client.CancelBlastRadiusJob(ctx, &adminv1.CancelBlastRadiusJobRequest{TeamId: team.GetId(), JobId: j.GetId()})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("cancel a finished job: %v", err)
	}
}

// gatedPersons blocks ScanRows calls after the first `free` ones until
// released, so a test can act while a job is in the middle of a scan.
type gatedPersons struct {
	Persons
	mu      sync.Mutex
	free    int
	reached chan struct{}
	release chan struct{}
}

func (g *gatedPersons) ScanRows(ctx context.Context, team int64, cursor string, limit int) (store.RowPage, error) {
	g.mu.Lock()
	g.free--
	gate := g.free < 0
	g.mu.Unlock()
	if gate {
		select {
		case g.reached <- struct{}{}:
		default:
		}
		<-g.release
	}
	return g.Persons.ScanRows(ctx, team, cursor, limit)
}

func waitJob(t *testing.T, e *env, team int64, id string) *adminv1.BlastRadiusJob {
	t.Helper()
	for {
		g, err := e.client.GetBlastRadiusJob(e.ctx(e.root), &adminv1.GetBlastRadiusJobRequest{TeamId: team, JobId: id})
		if err != nil {
			t.Fatal(err)
		}
		switch g.GetJob().GetState() {
		case adminv1.JobState_JOB_STATE_DONE, adminv1.JobState_JOB_STATE_FAILED, adminv1.JobState_JOB_STATE_CANCELLED:
			return g.GetJob()
		}
		if err := e.nc.Flush(); err != nil { // a round trip, instead of a sleep
			t.Fatal(err)
		}
	}
}

func TestBlastRadiusJob(t *testing.T) {
	gate := &gatedPersons{free: 1 << 30, reached: make(chan struct{}, 1), release: make(chan struct{})}
	e := newEnv(t, func(c *Config) {
		gate.Persons = c.Persons
		c.Persons = gate
		c.BlastRadiusPage = 3
	})
	team := e.createTeam("acme")
	ctx := e.ctx(e.root)
	e.putRows(team.GetId(), blastRows(10))
	proposal := &adminv1.FlagInput{Key: "f", Active: true, Filters: js(`{"groups":[{"properties":[{"key":"country","type":"person","value":"DE"}]}]}`)}

	// Ten rows in pages of three: a job; it counts, then evaluates.
	resp, err := e.client.StartBlastRadius(ctx, &adminv1.StartBlastRadiusRequest{TeamId: team.GetId(), Flag: proposal})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetJob().GetState() != adminv1.JobState_JOB_STATE_QUEUED {
		t.Fatalf("job %v", resp.GetJob())
	}
	j := waitJob(t, e, team.GetId(), resp.GetJob().GetId())
	if j.GetState() != adminv1.JobState_JOB_STATE_DONE || j.GetRowsDone() != 10 || j.GetRowsTotal() != 10 || j.GetChanged() != 5 ||
		j.GetTransitions()["false->true"] != 5 || len(j.GetSample()) != 5 {
		t.Fatalf("finished job %v", j)
	}

	// Cancel while the job waits in the middle of its scan.
	gate.mu.Lock()
	gate.free = 3 // the first page, then two counting pages; the fourth call blocks
	gate.mu.Unlock()
	resp, err = e.client.StartBlastRadius(ctx, &adminv1.StartBlastRadiusRequest{TeamId: team.GetId(), Flag: proposal})
	if err != nil {
		t.Fatal(err)
	}
	<-gate.reached
	c, err := e.client.CancelBlastRadiusJob(ctx, &adminv1.CancelBlastRadiusJobRequest{TeamId: team.GetId(), JobId: resp.GetJob().GetId()})
	if err != nil || !c.GetJob().GetCancelRequested() {
		t.Fatalf("cancel %v %v", c, err)
	}
	close(gate.release)
	j = waitJob(t, e, team.GetId(), resp.GetJob().GetId())
	if j.GetState() != adminv1.JobState_JOB_STATE_CANCELLED || j.GetRowsDone() == 10 {
		t.Fatalf("cancelled job %v", j)
	}
	// A stored job of another team is not found.
	other := e.createTeam("other")
	if _, err := e.client.GetBlastRadiusJob(ctx, &adminv1.GetBlastRadiusJobRequest{TeamId: other.GetId(), JobId: j.GetId()}); status.Code(err) != codes.NotFound {
		t.Errorf("other team's job: %v", err)
	}
}

func TestCohorts(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.MaxMembers = 3 })
	team := e.createTeam("acme")
	ctx := e.ctx(e.root)
	st, err := e.client.CreateCohort(ctx, &adminv1.CreateCohortRequest{TeamId: team.GetId(), Cohort: &adminv1.CohortInput{Name: "beta",
		Kind: adminv1.CohortKind_COHORT_KIND_STATIC}})
	if err != nil {
		t.Fatal(err)
	}
	id := st.GetCohort().GetId()
	if _, err := e.client.AddCohortMembers(ctx, &adminv1.AddCohortMembersRequest{TeamId: team.GetId(), CohortId: id, DistinctIds: []string{"b", "a", "a"}}); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.AddCohortMembers(ctx, &adminv1.AddCohortMembersRequest{TeamId: team.GetId(), CohortId: id, DistinctIds: []string{"1", "2", "3", "4"}})
	if errcode.FromStatus(status.Convert(err)).Code != errcode.LimitExceeded {
		t.Errorf("member limit: %v", err)
	}
	if _, err := e.client.RemoveCohortMembers(ctx, &adminv1.RemoveCohortMembersRequest{TeamId: team.GetId(), CohortId: id, DistinctIds: []string{"b"}}); err != nil {
		t.Fatal(err)
	}
	m, err := e.client.ListCohortMembers(ctx, &adminv1.ListCohortMembersRequest{TeamId: team.GetId(), CohortId: id})
	if err != nil || !slices.Equal(m.GetDistinctIds(), []string{"a"}) {
		t.Fatalf("members %v %v", m, err)
	}
	// A flag on the static cohort: explain sees the membership.
	f, err := e.client.CreateFlag(ctx, &adminv1.CreateFlagRequest{TeamId: team.GetId(), Flag: &adminv1.FlagInput{Key: "f", Active: true,
		Filters: js(fmt.Sprintf(`{"groups":[{"properties":[{"key":"id","type":"cohort","value":%d}]}]}`, id))}})
	if err != nil {
		t.Fatal(err)
	}
	for did, want := range map[string]bool{"a": true, "b": false} {
		ex, err := e.client.ExplainFlag(ctx, &adminv1.ExplainFlagRequest{TeamId: team.GetId(), FlagId: f.GetFlag().GetId(), DistinctId: did, PersonProperties: js(`{}`)})
		if err != nil || ex.GetEnabled() != want {
			t.Errorf("%s: %v %v", did, ex, err)
		}
	}
	// Deleting a cohort in use is refused.
	_, err = e.client.DeleteCohort(ctx, &adminv1.DeleteCohortRequest{TeamId: team.GetId(), CohortId: id, Version: 1})
	if ee := errcode.FromStatus(status.Convert(err)); ee.Code != errcode.HasDependents || ee.Meta["dependents"] != "f" {
		t.Errorf("delete used cohort: %v", err)
	}
	// Property cohorts are validated by the engine, with the path.
	_, err = e.client.CreateCohort(ctx, &adminv1.CreateCohortRequest{TeamId: team.GetId(), Cohort: &adminv1.CohortInput{Name: "p",
		Kind: adminv1.CohortKind_COHORT_KIND_PROPERTY, Filters: js(`{"properties":{"type":"AND","values":[{"key":"age","type":"person","operator":"nope","value":"x"}]}}`)}})
	if ee := errcode.FromStatus(status.Convert(err)); ee.Code != errcode.InvalidDefinition || ee.Field != "cohort.filters.properties.values[0].operator" {
		t.Errorf("bad property cohort: %v (%+v)", err, ee)
	}
	p, err := e.client.CreateCohort(ctx, &adminv1.CreateCohortRequest{TeamId: team.GetId(), Cohort: &adminv1.CohortInput{Name: "p",
		Kind: adminv1.CohortKind_COHORT_KIND_PROPERTY, Filters: js(`{"type":"AND","values":[{"key":"age","type":"person","operator":"gt","value":18}]}`)}})
	if err != nil || !strings.Contains(jtext(p.GetCohort().GetFilters()), `"value":18`) {
		t.Fatalf("property cohort %v %v", p, err)
	}
	// Behavioural cohorts: accepted and validated.
	_, err = e.client.CreateCohort(ctx, &adminv1.CreateCohortRequest{TeamId: team.GetId(), Cohort: &adminv1.CohortInput{Name: "b",
		Kind: adminv1.CohortKind_COHORT_KIND_BEHAVIORAL, Filters: js(`{"type":"AND","values":[{"type":"behavioral","key":"checkout","value":"performed_event_multiple","operator_value":2,"time_value":5,"time_interval":"minute"}]}`)}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.client.CreateCohort(ctx, &adminv1.CreateCohortRequest{TeamId: team.GetId(), Cohort: &adminv1.CohortInput{Name: "b",
		Kind: adminv1.CohortKind_COHORT_KIND_BEHAVIORAL, Filters: js(`{"properties":{"type":"AND","values":[{"type":"behavioral","key":"checkout","value":"performed_event","time_interval":"fortnight"}]}}`)}})
	if ee := errcode.FromStatus(status.Convert(err)); ee.Code != errcode.InvalidArgument || ee.Field != "cohort.filters.properties.values[0].time_interval" {
		t.Errorf("bad behavioural cohort: %v", err)
	}
	// Update with a stale version.
	_, err = e.client.UpdateCohort(ctx, &adminv1.UpdateCohortRequest{TeamId: team.GetId(), CohortId: p.GetCohort().GetId(), Version: 9,
		Cohort: &adminv1.CohortInput{Name: "p2", Kind: adminv1.CohortKind_COHORT_KIND_PROPERTY, Filters: js(`{"type":"AND","values":[]}`)}})
	if ee := errcode.FromStatus(status.Convert(err)); ee.Code != errcode.Conflict || ee.Meta["current_version"] != "1" {
		t.Errorf("stale cohort update: %v", err)
	}
	l, err := e.client.ListCohorts(ctx, &adminv1.ListCohortsRequest{TeamId: team.GetId(), PageSize: 2})
	if err != nil || len(l.GetResults()) != 2 || l.GetNextPageToken() == "" {
		t.Fatalf("cohort page %v %v", l, err)
	}
	l, err = e.client.ListCohorts(ctx, &adminv1.ListCohortsRequest{TeamId: team.GetId(), PageSize: 2, PageToken: l.GetNextPageToken()})
	if err != nil || len(l.GetResults()) != 1 || l.GetNextPageToken() != "" {
		t.Fatalf("cohort page 2 %v %v", l, err)
	}
}

func TestEarlyAccess(t *testing.T) {
	e := newEnv(t)
	team := e.createTeam("acme")
	ctx := e.ctx(e.root)
	ea, err := e.client.CreateEarlyAccessFeature(ctx, &adminv1.CreateEarlyAccessFeatureRequest{TeamId: team.GetId(), Name: "New Editor!",
		Stage: adminv1.Stage_STAGE_BETA, DocumentationUrl: "https://docs.example.com/editor"})
	if err != nil {
		t.Fatal(err)
	}
	feat := ea.GetFeature()
	if feat.GetFlagKey() != "new-editor" || feat.GetFlagId() == 0 {
		t.Fatalf("feature %v", feat)
	}
	flagOf := func() *adminv1.FeatureFlag {
		f, err := e.client.GetFlag(ctx, &adminv1.GetFlagRequest{TeamId: team.GetId(), FlagId: feat.GetFlagId()})
		if err != nil {
			t.Fatal(err)
		}
		return f.GetFlag()
	}
	fl := flagOf()
	if !strings.Contains(jtext(fl.GetFilters()), `"super_groups":[{"properties":[{"key":"$feature_enrollment/new-editor"`) ||
		strings.Contains(jtext(fl.GetFilters()), gaDescription) {
		t.Fatalf("beta flag %s", fl.GetFilters())
	}
	explain := func(props string) bool {
		ex, err := e.client.ExplainFlag(ctx, &adminv1.ExplainFlagRequest{TeamId: team.GetId(), FlagId: feat.GetFlagId(), DistinctId: "u", PersonProperties: js(props)})
		if err != nil {
			t.Fatal(err)
		}
		return ex.GetEnabled()
	}
	if !explain(`{"$feature_enrollment/new-editor": true}`) || explain(`{}`) {
		t.Errorf("beta: enrolled persons only")
	}
	up, err := e.client.UpdateEarlyAccessFeature(ctx, &adminv1.UpdateEarlyAccessFeatureRequest{TeamId: team.GetId(), FeatureId: feat.GetId(),
		Version: feat.GetVersion(), Stage: adminv1.Stage_STAGE_GENERAL_AVAILABILITY})
	if err != nil || up.GetFeature().GetStage() != adminv1.Stage_STAGE_GENERAL_AVAILABILITY {
		t.Fatalf("to GA %v %v", up, err)
	}
	if !strings.Contains(jtext(flagOf().GetFilters()), gaDescription) || !explain(`{}`) {
		t.Errorf("GA: everyone: %s", flagOf().GetFilters())
	}
	up, err = e.client.UpdateEarlyAccessFeature(ctx, &adminv1.UpdateEarlyAccessFeatureRequest{TeamId: team.GetId(), FeatureId: feat.GetId(),
		Version: up.GetFeature().GetVersion(), Stage: adminv1.Stage_STAGE_ALPHA})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(jtext(flagOf().GetFilters()), gaDescription) || explain(`{}`) {
		t.Errorf("back to alpha: %s", flagOf().GetFilters())
	}
	// The public list, PostHog's shape.
	var pub struct {
		Features []map[string]string `json:"earlyAccessFeatures"`
	}
	if code := e.do("GET", "/api/early_access_features?token="+team.GetApiToken(), "", nil, &pub); code != 200 || len(pub.Features) != 1 ||
		pub.Features[0]["flagKey"] != "new-editor" || pub.Features[0]["stage"] != "alpha" || pub.Features[0]["documentationUrl"] != "https://docs.example.com/editor" {
		t.Errorf("public list %d %+v", code, pub)
	}
	if _, err := e.client.CreateEarlyAccessFeature(ctx, &adminv1.CreateEarlyAccessFeatureRequest{TeamId: team.GetId(), Name: "new editor"}); errcode.FromStatus(status.Convert(err)).Code != errcode.AlreadyExists {
		t.Errorf("same flag key: %v", err)
	}
	if _, err := e.client.DeleteEarlyAccessFeature(ctx, &adminv1.DeleteEarlyAccessFeatureRequest{TeamId: team.GetId(), FeatureId: feat.GetId(), Version: up.GetFeature().GetVersion()}); err != nil {
		t.Fatal(err)
	}
	pub.Features = nil
	if code := e.do("GET", "/api/early_access_features?token="+team.GetApiToken(), "", nil, &pub); code != 200 || len(pub.Features) != 0 {
		t.Errorf("after delete %d %+v", code, pub)
	}
	_ = json.Valid
	_ = catalog.StageGA
}

func TestAbandonedJobsAreReaped(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	cat := memcatalog.New(memcatalog.Config{Now: clock})
	defer cat.Close()
	team, err := cat.CreateTeam(context.Background(), catalog.Team{Name: "acme"}, catalog.Change{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	old, err := cat.CreateJob(context.Background(), catalog.BlastRadiusJob{TeamID: team.ID, Status: catalog.JobRunning})
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(20 * time.Minute)
	fresh, err := cat.CreateJob(context.Background(), catalog.BlastRadiusJob{TeamID: team.ID, Status: catalog.JobQueued})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Catalog: cat, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.reapJobs(context.Background()); err != nil {
		t.Fatal(err)
	}
	if j, _ := cat.GetJob(context.Background(), team.ID, old.ID); j.Status != catalog.JobFailed || !strings.Contains(j.Error, "abandoned") {
		t.Errorf("old job %+v", j)
	}
	if j, _ := cat.GetJob(context.Background(), team.ID, fresh.ID); j.Status != catalog.JobQueued {
		t.Errorf("fresh job %+v", j)
	}
}

func TestExplainGroupCondition(t *testing.T) {
	e := newEnv(t)
	team := e.createTeam("acme")
	ctx := e.ctx(e.root)
	if _, err := e.client.SetGroupType(ctx, &adminv1.SetGroupTypeRequest{TeamId: team.GetId(), Version: 1, GroupTypeIndex: 0, GroupType: "company"}); err != nil {
		t.Fatal(err)
	}
	var b store.Batch
	b.PutGroup(&store.Group{Team: team.GetId(), TypeIndex: 0, Key: "acme", Version: 1, Properties: []byte(`{"plan":"enterprise"}`)})
	if err := e.store.Apply(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	f, err := e.client.CreateFlag(ctx, &adminv1.CreateFlagRequest{TeamId: team.GetId(), Flag: &adminv1.FlagInput{Key: "g", Active: true,
		Filters: js(`{"groups":[{"properties":[{"key":"email","type":"person","operator":"icontains","value":"@corp.com"}],"aggregation_group_type_index":null},
			{"properties":[{"key":"plan","type":"group","group_type_index":0,"value":"enterprise"}],"aggregation_group_type_index":0}]}`)}})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := e.client.ExplainFlag(ctx, &adminv1.ExplainFlagRequest{TeamId: team.GetId(), FlagId: f.GetFlag().GetId(), DistinctId: "u1",
		PersonProperties: js(`{"email":"x@home.org"}`), Groups: map[string]string{"company": "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	if !ex.GetEnabled() || ex.GetConditionIndex() != 1 || ex.GetConditions()[0].GetTarget() != "persons" ||
		ex.GetConditions()[1].GetTarget() != "company" || !ex.GetConditions()[1].GetDecisive() || ex.GetConditions()[0].GetPropertiesMatched() {
		t.Fatalf("explain %v", ex)
	}
	if _, err := e.client.ExplainFlag(ctx, &adminv1.ExplainFlagRequest{TeamId: team.GetId(), FlagId: f.GetFlag().GetId(), DistinctId: "u1",
		Groups: map[string]string{"planet": "earth"}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("unknown group type: %v", err)
	}
}

// A person with several distinct ids counts once in changed.
func TestBlastRadiusCountsPersons(t *testing.T) {
	e := newEnv(t)
	team := e.createTeam("acme")
	ctx := e.ctx(e.root)
	var b store.Batch
	for i, did := range []string{"a1", "a2", "a3", "b1", "c1"} {
		person := map[int]string{0: "pa", 1: "pa", 2: "pa", 3: "pb", 4: "pc"}[i]
		b.PutRow(&store.Row{Team: team.GetId(), DistinctID: did, PersonID: person, PersonVersion: 1, Properties: []byte(`{"country":"US"}`)})
	}
	if err := e.store.Apply(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	resp, err := e.client.StartBlastRadius(ctx, &adminv1.StartBlastRadiusRequest{TeamId: team.GetId(), SampleSize: 10,
		Flag: &adminv1.FlagInput{Key: "new", Active: true, Filters: js(`{"groups":[{"properties":[{"key":"country","type":"person","value":"US"}]}]}`)}})
	if err != nil {
		t.Fatal(err)
	}
	j := resp.GetJob()
	if j.GetRowsDone() != 5 || j.GetChanged() != 3 || j.GetTransitions()["false->true"] != 5 || len(j.GetSample()) != 3 {
		t.Errorf("rows %d, changed %d (want 3 persons), transitions %v, sample %v", j.GetRowsDone(), j.GetChanged(), j.GetTransitions(), j.GetSample())
	}
}

// TestExplainProposed: a proposed definition is explained without being
// saved (a change of a flag, or a flag not created yet, also over REST),
// and refused as a write would be.
func TestExplainProposed(t *testing.T) {
	e := newEnv(t)
	team := e.createTeam("acme")
	ctx := e.ctx(e.root)
	e.putRows(team.GetId(), map[string]string{"u1": `{"plan":"pro"}`})
	f, err := e.client.CreateFlag(ctx, &adminv1.CreateFlagRequest{TeamId: team.GetId(), Flag: &adminv1.FlagInput{Key: "f", Active: true,
		Filters: js(`{"groups":[{"properties":[{"key":"plan","type":"person","value":"free"}]}]}`)}})
	if err != nil {
		t.Fatal(err)
	}
	id := f.GetFlag().GetId()
	proposed := &adminv1.FlagInput{Active: true, Filters: js(`{"groups":[{"properties":[{"key":"plan","type":"person","value":"pro"}]}]}`)}
	ex, err := e.client.ExplainFlag(ctx, &adminv1.ExplainFlagRequest{TeamId: team.GetId(), FlagId: id, DistinctId: "u1", Proposed: proposed})
	if err != nil {
		t.Fatal(err)
	}
	if !ex.GetEnabled() || ex.GetKey() != "f" || ex.GetReason() != "condition_match" || !ex.GetConditions()[0].GetDecisive() {
		t.Fatalf("proposed change: %v", ex)
	}
	// Nothing was saved.
	got, err := e.client.GetFlag(ctx, &adminv1.GetFlagRequest{TeamId: team.GetId(), FlagId: id})
	if err != nil || got.GetFlag().GetVersion() != f.GetFlag().GetVersion() {
		t.Fatalf("after a proposed explain: %v %v", got, err)
	}
	if ex, err := e.client.ExplainFlag(ctx, &adminv1.ExplainFlagRequest{TeamId: team.GetId(), FlagId: id, DistinctId: "u1"}); err != nil || ex.GetEnabled() {
		t.Fatalf("the stored flag: %v %v", ex, err)
	}
	// A flag that does not exist yet, over REST.
	body := `{"distinct_id":"u1","proposed":{"key":"brand-new","active":true,"filters":{"groups":[{"properties":[],"rollout_percentage":100}]}}}`
	var out map[string]any
	if code := e.do("POST", fmt.Sprintf("/api/projects/%d/feature_flags/0/explain", team.GetId()), e.root, body, &out); code != 200 ||
		out["enabled"] != true || out["key"] != "brand-new" {
		t.Fatalf("REST proposed new flag: %d %v", code, out)
	}
	// Refused as a write: variants that do not sum to 100.
	bad := &adminv1.FlagInput{Key: "g", Filters: js(`{"groups":[{"properties":[]}],"multivariate":{"variants":[{"key":"a","rollout_percentage":10}]}}`)}
	if _, err := e.client.ExplainFlag(ctx, &adminv1.ExplainFlagRequest{TeamId: team.GetId(), DistinctId: "u1", Proposed: bad}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("invalid proposed flag: %v", err)
	}
}
