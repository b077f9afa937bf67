package openfeature_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	of "github.com/open-feature/go-sdk/openfeature"

	"github.com/vexil-dev/vexil/polltest"
	"github.com/vexil-dev/vexil/vexilclient"
	"github.com/vexil-dev/vexil/vexilclient/internal/vexiltest"
	vexilof "github.com/vexil-dev/vexil/vexilclient/openfeature"
)

// setup registers a provider on a real server under a domain of its own
// and returns an OpenFeature client of that domain.
func setup(t *testing.T, srv *vexiltest.Server, onEval func(vexilof.Evaluation)) (*of.Client, *vexilof.Provider) {
	t.Helper()
	p, err := vexilof.New(vexilclient.Config{Target: srv.Addr, ProjectToken: "phc_team1", SecretKey: "phs_team1", Timeout: time.Minute,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, ReportInterval: time.Hour},
		vexilof.Options{InitTimeout: time.Minute, OnEvaluation: onEval})
	if err != nil {
		t.Fatal(err)
	}
	if err := of.SetNamedProviderAndWait(t.Name(), p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Shutdown)
	return of.NewClient(t.Name()), p
}

type detail struct {
	Value   any
	Variant string
	Reason  of.Reason
	Code    of.ErrorCode
	Path    string
}

func TestProviderEvaluations(t *testing.T) {
	srv := vexiltest.New(t)
	var mu sync.Mutex
	var reported []string
	c, _ := setup(t, srv, func(e vexilof.Evaluation) {
		mu.Lock()
		reported = append(reported, fmt.Sprintf("%s:%v:%s:%s", e.Flag, e.Value, e.Path, e.ErrorCode))
		mu.Unlock()
	})
	ctx := context.Background()
	u1 := of.NewEvaluationContext("u1", nil)
	pro := of.NewEvaluationContext("u9", map[string]any{"plan": "pro", "groups": map[string]any{"company": "acme"},
		"groupProperties": map[string]any{"company": map[string]any{"plan": "enterprise"}}})
	get := func(kind string, flag string, ec of.EvaluationContext) detail {
		t.Helper()
		var d of.InterfaceEvaluationDetails
		switch kind {
		case "bool":
			b, _ := c.BooleanValueDetails(ctx, flag, false, ec)
			d = of.InterfaceEvaluationDetails{Value: b.Value, EvaluationDetails: b.EvaluationDetails}
		case "string":
			s, _ := c.StringValueDetails(ctx, flag, "default", ec)
			d = of.InterfaceEvaluationDetails{Value: s.Value, EvaluationDetails: s.EvaluationDetails}
		case "object":
			d, _ = c.ObjectValueDetails(ctx, flag, "default", ec)
		case "int":
			i, _ := c.IntValueDetails(ctx, flag, -1, ec)
			d = of.InterfaceEvaluationDetails{Value: i.Value, EvaluationDetails: i.EvaluationDetails}
		}
		path, _ := d.FlagMetadata.GetString(vexilof.MetaPath)
		return detail{Value: d.Value, Variant: d.Variant, Reason: d.Reason, Code: d.ErrorCode, Path: path}
	}
	for _, tc := range []struct {
		kind, flag string
		ec         of.EvaluationContext
		want       detail
	}{
		{"bool", "everyone", u1, detail{true, "true", of.TargetingMatchReason, "", "local"}},
		{"bool", "beta", u1, detail{true, "true", of.TargetingMatchReason, "", "remote"}}, // the stored plan
		{"bool", "beta", pro, detail{true, "true", of.TargetingMatchReason, "", "local"}},
		{"bool", "company-flag", pro, detail{true, "true", of.TargetingMatchReason, "", "local"}},
		{"bool", "static-cohort", u1, detail{true, "true", of.TargetingMatchReason, "", "remote"}},
		{"bool", "static-cohort", of.NewEvaluationContext("u2", nil), detail{false, "false", of.DefaultReason, "", "remote"}},
		{"string", "mv", u1, detail{"test", "test", of.TargetingMatchReason, "", "local"}},
		{"object", "mv", u1, detail{map[string]any{"price": 9.0}, "test", of.TargetingMatchReason, "", "local"}},
		{"object", "beta", pro, detail{"on", "true", of.TargetingMatchReason, "", "local"}},
		{"string", "everyone", u1, detail{"default", "true", of.ErrorReason, of.TypeMismatchCode, "local"}},
		{"int", "mv", u1, detail{int64(-1), "test", of.ErrorReason, of.TypeMismatchCode, "local"}},
		{"bool", "nope", u1, detail{false, "", of.ErrorReason, of.FlagNotFoundCode, ""}},
		{"bool", "everyone", of.NewTargetlessEvaluationContext(nil), detail{false, "", of.ErrorReason, of.TargetingKeyMissingCode, ""}},
		{"bool", "everyone", of.NewEvaluationContext("u1", map[string]any{"groups": []string{"acme"}}), detail{false, "", of.ErrorReason, of.InvalidContextCode, ""}},
	} {
		if got := get(tc.kind, tc.flag, tc.ec); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s %s %v:\n got  %+v\n want %+v", tc.kind, tc.flag, tc.ec.Attributes(), got, tc.want)
		}
	}
	// Metadata: id, version, PostHog's reason, the definitions' age.
	d, err := c.BooleanValueDetails(ctx, "beta", false, pro)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := d.FlagMetadata.GetInt(vexilof.MetaFlagID)
	version, _ := d.FlagMetadata.GetInt(vexilof.MetaVersion)
	reason, _ := d.FlagMetadata.GetString(vexilof.MetaPostHogReason)
	age, ageErr := d.FlagMetadata.GetInt(vexilof.MetaDefinitionsAge)
	if id != 1 || version != 3 || reason != "condition_match" || age != 0 || ageErr != nil {
		t.Fatalf("metadata %v", d.FlagMetadata)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 15 || reported[0] != "everyone:true:local:" || reported[11] != "nope:false::FLAG_NOT_FOUND" {
		t.Fatalf("the hook reported %d: %v", len(reported), reported)
	}
}

func TestProviderEvents(t *testing.T) {
	srv := vexiltest.New(t)
	c, _ := setup(t, srv, nil)
	var mu sync.Mutex
	var got []string
	record := func(d of.EventDetails) {
		mu.Lock()
		got = append(got, fmt.Sprint(d.FlagChanges))
		mu.Unlock()
	}
	changed := func(d of.EventDetails) { record(d) }
	stale := func(of.EventDetails) { mu.Lock(); got = append(got, "stale"); mu.Unlock() }
	c.AddHandler(of.ProviderConfigChange, &changed)
	c.AddHandler(of.ProviderStale, &stale)
	seen := func(want string) func() error {
		return func() error {
			mu.Lock()
			defer mu.Unlock()
			if !slices.Contains(got, want) {
				return fmt.Errorf("events %v, waiting for %s", got, want)
			}
			return nil
		}
	}
	srv.ChangeBeta("free", 4)
	polltest.Eventually(t, time.Minute, func() error {
		err := seen("[beta]")()
		if err != nil {
			_ = srv.Publish()
		}
		return err
	})
	if v, _ := c.BooleanValue(context.Background(), "beta", false, of.NewEvaluationContext("x", map[string]any{"plan": "free"})); !v {
		t.Fatal("the change is not in use")
	}
	srv.Stop(t)
	polltest.Eventually(t, time.Minute, seen("stale"))
	polltest.Eventually(t, time.Minute, func() error {
		if s := c.State(); s != of.StaleState {
			return errors.New(string(s))
		}
		return nil
	})
	// Still answering from the last definitions.
	if v, _ := c.BooleanValue(context.Background(), "beta", false, of.NewEvaluationContext("x", map[string]any{"plan": "free"})); !v {
		t.Fatal("stale definitions no longer answer")
	}
	srv.Start(t, srv.Addr)
	polltest.Eventually(t, time.Minute, func() error {
		if s := c.State(); s != of.ReadyState {
			return errors.New(string(s))
		}
		return nil
	})
}
