package mcpsvc

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/store/memstore"
	"github.com/vexil-dev/vexil/usage"
)

// testClock is the usage statistics' clock: real time moved by an offset
// (a stale period passes in a test without waiting).
type testClock struct{ offset atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// usageAdapter is cmd/vexil's mcpUsage and flagUsageAdapter for the tests
// (mcpsvc and admin depend on no usage type; the wiring adapts).
type usageAdapter struct{ svc *usage.Service }

func (a usageAdapter) FlagUsage(ctx context.Context, team int64, key, res, from, to string) (any, error) {
	return a.svc.FlagReport(ctx, team, key, res, from, to)
}

func (a usageAdapter) TeamUsage(ctx context.Context, team int64, days int) (any, error) {
	return a.svc.TeamReport(ctx, team, days)
}

func (a usageAdapter) Now() time.Time { return a.svc.Now() }

func (a usageAdapter) StaleAfterDays(ctx context.Context, team int64) (int, error) {
	return a.svc.StaleAfterDays(ctx, team)
}

func (a usageAdapter) SetStaleAfterDays(ctx context.Context, team int64, days int) error {
	return a.svc.SetStaleAfterDays(ctx, team, days)
}

func (a usageAdapter) Findings(ctx context.Context, team int64, now time.Time) ([]Finding, error) {
	fs, err := a.svc.Findings(ctx, team, now)
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, f := range fs {
		data, _ := json.Marshal(f)
		out = append(out, Finding{Team: f.Team, Kind: f.Kind, FlagKey: f.Flag, Summary: f.Message, At: f.Since, Data: data, ID: f.ID()})
	}
	return out, nil
}

func (a usageAdapter) FlagStates(ctx context.Context, team int64, recs []catalog.FlagRecord) (map[string]admin.FlagUsageState, error) {
	st, err := a.svc.FlagStates(ctx, team, recs, a.svc.Now())
	if err != nil {
		return nil, err
	}
	out := map[string]admin.FlagUsageState{}
	for k, s := range st {
		u := admin.FlagUsageState{Status: string(s.Status)}
		if s.LastEvaluatedAt != nil {
			u.LastEvaluatedAt = *s.LastEvaluatedAt
		}
		out[k] = u
	}
	return out, nil
}

// evaluate sends POST /flags for each distinct id through the real
// evaluation service and flushes its usage counts to the store.
func (f *fixture) evaluate(ids ...string) {
	f.t.Helper()
	h := f.eval.Handler()
	for _, id := range ids {
		req := httptest.NewRequest(http.MethodPost, "/flags/?v=2", strings.NewReader(fmt.Sprintf(`{"token":%q,"distinct_id":%q}`, f.token, id)))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			f.t.Fatalf("/flags for %s: %d %s", id, w.Code, w.Body)
		}
	}
	if err := f.rec.Flush(context.Background()); err != nil {
		f.t.Fatal(err)
	}
}

// findingsJob is the job vexil serve runs, on the fixture's clock.
func (f *fixture) findingsJob() *FindingsJob {
	return &FindingsJob{Inbox: f.inbox, Source: f.mcp.cfg.Usage, Now: f.clock.now,
		Teams: func(context.Context) ([]int64, error) { return []int64{f.team}, nil }}
}

// TestAppendOnceAcrossReopen: a finding's id is remembered in the
// store, so a reopened inbox (a restarted node, another node) does not
// add it again, past JetStream's two-minute window; bad ids are refused.
func TestAppendOnceAcrossReopen(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	st := memstore.New()
	open := func() *Inbox {
		in, err := OpenInbox(ctx, InboxConfig{Store: st, JetStream: ns.JetStream, Namespace: namespace.Default, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	f := Finding{Team: 7, Kind: "stale_flag", FlagKey: "old", Summary: "flag old is stale", ID: "abc123"}
	if ok, err := open().AppendOnce(ctx, f); !ok || err != nil {
		t.Fatalf("first: %v %v", ok, err)
	}
	in := open()
	if ok, err := in.AppendOnce(ctx, f); ok || err != nil {
		t.Fatalf("after reopening: %v %v", ok, err)
	}
	f.ID = "def456" // another finding of the same flag (a later since)
	if ok, err := in.AppendOnce(ctx, f); !ok || err != nil {
		t.Fatalf("another id: %v %v", ok, err)
	}
	if n, err := in.Pending(ctx, 7); n != 2 || err != nil {
		t.Fatalf("pending: %d %v", n, err)
	}
	for _, id := range []string{"", "a.b", "a b", strings.Repeat("x", 65)} {
		f.ID = id
		if _, err := in.AppendOnce(ctx, f); errcode.From(err).Field != "id" {
			t.Errorf("id %q: %v", id, err)
		}
	}
}
