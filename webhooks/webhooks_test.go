package webhooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/polltest"
	"github.com/vexil-dev/vexil/signals"
	"github.com/vexil-dev/vexil/webhooks"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// receiver is a webhook endpoint that verifies signatures and dedupes by
// id. Its plan says, per signal id, how its coming attempts go: "fail"
// answers 500, "hang" never answers before the sender gives up; once the
// plan of an id is used up, it accepts it.
type receiver struct {
	t      *testing.T
	secret atomic.Value // string
	srv    *httptest.Server

	mu struct {
		sync.Mutex
		plan     map[string][]string
		accepted map[string]int
		got      []signals.Signal
		requests int
		badSig   int
	}
	release chan struct{}
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, release: make(chan struct{})}
	r.mu.accepted = map[string]int{}
	r.mu.plan = map[string][]string{}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() { close(r.release); r.srv.Close() })
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id := req.Header.Get(webhooks.HeaderID)
	r.mu.Lock()
	r.mu.requests++
	step := ""
	if p := r.mu.plan[id]; len(p) > 0 {
		step, r.mu.plan[id] = p[0], p[1:]
	}
	r.mu.Unlock()
	switch step {
	case "fail":
		http.Error(w, "down", http.StatusInternalServerError)
		return
	case "hang":
		select {
		case <-req.Context().Done(): // the sender timed out
		case <-r.release:
		}
		return
	}
	secret, _ := r.secret.Load().(string)
	if err := webhooks.Verify(secret, req.Header.Get(webhooks.HeaderSignature), body, time.Now(), 0); err != nil {
		r.mu.Lock()
		r.mu.badSig++
		r.mu.Unlock()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var s signals.Signal
	if err := json.Unmarshal(body, &s); err != nil || s.ID != req.Header.Get(webhooks.HeaderID) {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	if r.mu.accepted[s.ID] == 0 {
		r.mu.got = append(r.mu.got, s)
	}
	r.mu.accepted[s.ID]++
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) plan(id string, steps ...string) {
	r.mu.Lock()
	r.mu.plan[id] = append(r.mu.plan[id], steps...)
	r.mu.Unlock()
}

func (r *receiver) planLeft() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, p := range r.mu.plan {
		n += len(p)
	}
	return n
}

// ids returns the ids it accepted, and how many times the most repeated one was.
func (r *receiver) ids() (map[string]bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, most := map[string]bool{}, 0
	for id, n := range r.mu.accepted {
		out[id] = true
		most = max(most, n)
	}
	return out, most
}

type env struct {
	ctx context.Context
	js  jetstream.JetStream
	wh  *webhooks.Webhooks
}

func newEnv(t *testing.T, cfg webhooks.Config) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ns := natstest.Start(t)
	wh, err := webhooks.Open(ctx, ns.JetStream, "", nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Webhooks, cfg.JetStream, cfg.Logger = wh, ns.JetStream, quiet()
	d, err := webhooks.NewDispatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("dispatcher: %v", err)
		}
	})
	return &env{ctx: ctx, js: ns.JetStream, wh: wh}
}

func (e *env) endpoint(t *testing.T, team int64, r *receiver, scopes []string) webhooks.Endpoint {
	t.Helper()
	ep, err := e.wh.Create(e.ctx, webhooks.Endpoint{Team: team, URL: r.srv.URL + "/hook", Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	r.secret.Store(ep.Secret)
	return ep
}

// publish publishes signals as the precompute worker does, with their
// ids as message ids.
func (e *env) publish(t *testing.T, ss ...signals.Signal) {
	t.Helper()
	for _, s := range ss {
		data, _ := json.Marshal(s)
		if _, err := e.js.Publish(e.ctx, signals.CohortSubject("", s.Team), data, jetstream.WithMsgID(s.ID)); err != nil {
			t.Fatal(err)
		}
	}
}

func signal(team int64, did string, cohort int64, d signals.Direction, n uint64) signals.Signal {
	return signals.Signal{ID: signals.SignalID(team, did, cohort, d, n), Type: signals.TypeOf(d), Team: team, Cohort: cohort,
		DistinctID: did, Direction: d, Cause: signals.CauseEvent, Time: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC), Ordinal: n}
}

// waitEndpoints waits until the dispatcher's fan-out sees every endpoint:
// a signal sent before that would not be queued for it.
func waitEndpoints(t *testing.T, e *env, team int64, probe *receiver, ep webhooks.Endpoint) {
	t.Helper()
	n := uint64(1)
	polltest.Eventually(t, time.Minute, func() error {
		s := signal(team, "probe", 1, signals.Entered, n)
		n++
		e.publish(t, s)
		ids, _ := probe.ids()
		if len(ids) == 0 {
			return fmt.Errorf("endpoint %s not served yet", ep.ID)
		}
		return nil
	})
}

// TestDeliveryFailsTimesOutRecovers: an endpoint that answers 500, then
// hangs past the timeout, then recovers gets every signal once it is up,
// none accepted twice; a healthy endpoint of the same team gets them all
// meanwhile; another team's endpoint only its own team's signals of its
// scope.
func TestDeliveryFailsTimesOutRecovers(t *testing.T) {
	e := newEnv(t, webhooks.Config{Timeout: 300 * time.Millisecond, Backoff: 10 * time.Millisecond, MaxBackoff: 80 * time.Millisecond,
		MaxAttempts: 1000, PerEndpoint: 2})
	flaky, healthy, other := newReceiver(t), newReceiver(t), newReceiver(t)
	epOther := e.endpoint(t, 2, other, []string{"cohort.left"})
	epHealthy := e.endpoint(t, 1, healthy, nil)
	epFlaky := e.endpoint(t, 1, flaky, nil)
	waitEndpoints(t, e, 1, healthy, epHealthy)
	waitEndpoints(t, e, 1, flaky, epFlaky) // the fan-out has seen all three

	// The flaky receiver fails every signal once; every fourth one it
	// fails twice more and then hangs past the timeout twice.
	var want []signals.Signal
	for i := range 10 {
		did := fmt.Sprintf("u%d", i)
		want = append(want, signal(1, did, 7, signals.Entered, 1), signal(1, did, 7, signals.Left, 2))
	}
	failed := 0
	for i, s := range want {
		steps := []string{"fail"}
		if i%4 == 0 {
			steps = append(steps, "fail", "fail", "hang", "hang")
		}
		flaky.plan(s.ID, steps...)
		failed += len(steps)
	}
	_ = epOther
	e.publish(t, want...)
	e.publish(t, want[:5]...) // republished: one message each
	e.publish(t, signal(2, "w", 7, signals.Entered, 1), signal(2, "w", 7, signals.Left, 2))

	for _, r := range []struct {
		name string
		r    *receiver
	}{{"flaky", flaky}, {"healthy", healthy}} {
		polltest.Eventually(t, time.Minute, func() error {
			ids, _ := r.r.ids()
			for _, s := range want {
				if !ids[s.ID] {
					return fmt.Errorf("%s: %s not delivered yet", r.name, s.ID)
				}
			}
			return nil
		})
		if _, most := r.r.ids(); most != 1 {
			t.Errorf("%s: a signal was accepted %d times", r.name, most)
		}
	}
	flaky.mu.Lock()
	bad := flaky.mu.badSig
	flaky.mu.Unlock()
	if left := flaky.planLeft(); left != 0 || bad != 0 {
		t.Errorf("flaky: %d failures left unused, %d bad signatures", left, bad)
	}
	polltest.Eventually(t, time.Minute, func() error {
		ids, _ := other.ids()
		if len(ids) != 1 || !ids[signal(2, "w", 7, signals.Left, 2).ID] {
			return fmt.Errorf("other team: %v, want only its left signal", ids)
		}
		return nil
	})
	polltest.Eventually(t, time.Minute, func() error {
		st, err := e.wh.Status(e.ctx, 1, epFlaky.ID)
		if err != nil {
			return err
		}
		if st.Delivered < uint64(len(want)) || st.Failed != uint64(failed) || st.Pending != 0 || st.Dead != 0 {
			return fmt.Errorf("flaky status %+v: want %d delivered (probes besides), %d failed, none pending or dead", st, len(want), failed)
		}
		if st.LastSuccess.Before(st.LastFailure) || st.LastError == "" {
			return fmt.Errorf("flaky status %+v: the last success must follow the last failure, which is described", st)
		}
		return nil
	})
}

// TestDeadLettersAndRedeliver: after MaxAttempts failed attempts a
// delivery is a dead letter; the redeliver call queues it again and the
// recovered endpoint gets it, once.
func TestDeadLettersAndRedeliver(t *testing.T) {
	e := newEnv(t, webhooks.Config{Timeout: 300 * time.Millisecond, Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxAttempts: 3})
	r := newReceiver(t)
	ep := e.endpoint(t, 1, r, []string{"cohort.entered"})
	waitEndpoints(t, e, 1, r, ep)
	ss := []signals.Signal{signal(1, "a", 3, signals.Entered, 1), signal(1, "b", 3, signals.Entered, 1)}
	for _, s := range ss {
		r.plan(s.ID, "fail", "fail", "fail")
	}
	e.publish(t, ss...)
	var dead []webhooks.DeadLetter
	polltest.Eventually(t, time.Minute, func() error {
		var err error
		if dead, err = e.wh.DeadLetters(e.ctx, 1, ep.ID, 0, 0); err != nil {
			return err
		}
		if len(dead) != 2 {
			st, err := e.wh.Status(e.ctx, 1, ep.ID)
			return fmt.Errorf("%d dead letters, want 2 (status %+v %v)", len(dead), st, err)
		}
		return nil
	})
	for _, d := range dead {
		if d.Attempts != 3 || d.LastStatusCode != http.StatusInternalServerError || (d.Signal.ID != ss[0].ID && d.Signal.ID != ss[1].ID) {
			t.Errorf("dead letter %+v: want 3 attempts, status 500, one of the signals", d)
		}
	}
	st, err := e.wh.Status(e.ctx, 1, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Dead != 2 || st.Failed != 6 || st.DeadLetters != 2 || st.LastStatusCode != 500 {
		t.Errorf("status %+v: want 2 dead, 6 failed, 2 dead letters kept, last status 500", st)
	}
	if _, err := e.wh.Redeliver(e.ctx, 1, ep.ID, dead[0].Seq+dead[1].Seq+100); !errors.Is(err, webhooks.ErrNotFound) {
		t.Errorf("redeliver of an unknown dead letter: %v, want ErrNotFound", err)
	}
	n, err := e.wh.Redeliver(e.ctx, 1, ep.ID, 0)
	if err != nil || n != 2 {
		t.Fatalf("redeliver: %d, %v; want 2", n, err)
	}
	polltest.Eventually(t, time.Minute, func() error {
		ids, _ := r.ids()
		for _, s := range ss {
			if !ids[s.ID] {
				return fmt.Errorf("%s not redelivered yet", s.ID)
			}
		}
		return nil
	})
	if _, most := r.ids(); most != 1 {
		t.Errorf("a signal was accepted %d times", most)
	}
	if dead, err := e.wh.DeadLetters(e.ctx, 1, ep.ID, 0, 0); err != nil || len(dead) != 0 {
		t.Errorf("dead letters after redeliver: %v, %v; want none", dead, err)
	}
}

func TestEndpointValidation(t *testing.T) {
	e := newEnv(t, webhooks.Config{})
	for _, c := range []struct {
		name  string
		ep    webhooks.Endpoint
		field string
	}{
		{"relative url", webhooks.Endpoint{URL: "/hook"}, "url"},
		{"ftp", webhooks.Endpoint{URL: "ftp://example.com/x"}, "url"},
		{"credentials", webhooks.Endpoint{URL: "https://u:p@example.com/x"}, "url"},
		{"long url", webhooks.Endpoint{URL: "https://example.com/" + strings.Repeat("a", webhooks.MaxURLLen)}, "url"},
		{"unknown scope", webhooks.Endpoint{URL: "https://example.com", Scopes: []string{"cohort.entered", "flag.changed"}}, "scopes[1]"},
		{"bad cohort", webhooks.Endpoint{URL: "https://example.com", Cohorts: []int64{0}}, "cohorts[0]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.ep.Team = 1
			_, err := e.wh.Create(e.ctx, c.ep)
			var fe *webhooks.FieldError
			if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, webhooks.ErrInvalid) {
				t.Fatalf("got %v, want a field error on %s", err, c.field)
			}
		})
	}
	for i := range webhooks.MaxEndpointsPerTeam {
		if _, err := e.wh.Create(e.ctx, webhooks.Endpoint{Team: 5, URL: fmt.Sprintf("https://example.com/%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.wh.Create(e.ctx, webhooks.Endpoint{Team: 5, URL: "https://example.com/x"}); !errors.Is(err, webhooks.ErrLimit) {
		t.Fatalf("endpoint %d: %v, want ErrLimit", webhooks.MaxEndpointsPerTeam+1, err)
	}
	list, err := e.wh.List(e.ctx, 5)
	if err != nil || len(list) != webhooks.MaxEndpointsPerTeam {
		t.Fatalf("list: %d, %v", len(list), err)
	}
	up, err := e.wh.Update(e.ctx, 5, list[0].ID, func(ep *webhooks.Endpoint) { ep.Disabled = true; ep.Secret = "stolen" })
	if err != nil || !up.Disabled || up.Secret != list[0].Secret {
		t.Fatalf("update: %+v, %v: want disabled with the secret kept", up, err)
	}
	if err := e.wh.Delete(e.ctx, 5, list[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.wh.Get(e.ctx, 5, list[0].ID); !errors.Is(err, webhooks.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := e.wh.Get(e.ctx, 6, list[1].ID); !errors.Is(err, webhooks.ErrNotFound) {
		t.Fatalf("another team's endpoint: %v, want ErrNotFound", err)
	}
}

func TestSignVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"x"}`)
	h := webhooks.Sign("whsec_k", now, body)
	if want := "t=1800000000,v1="; !strings.HasPrefix(h, want) || len(h) != len(want)+64 {
		t.Fatalf("header %q", h)
	}
	for _, c := range []struct {
		name   string
		secret string
		header string
		body   []byte
		at     time.Time
		ok     bool
	}{
		{"valid", "whsec_k", h, body, now, true},
		{"within tolerance", "whsec_k", h, body, now.Add(4 * time.Minute), true},
		{"rotating: second v1 matches", "whsec_k", "t=1800000000,v1=00," + strings.Split(h, ",")[1], body, now, true},
		{"replayed later", "whsec_k", h, body, now.Add(6 * time.Minute), false},
		{"from the future", "whsec_k", h, body, now.Add(-6 * time.Minute), false},
		{"body changed", "whsec_k", h, []byte(`{"id":"y"}`), now, false},
		{"other secret", "whsec_j", h, body, now, false},
		{"timestamp changed", "whsec_k", strings.Replace(h, "t=1800000000", "t=1800000001", 1), body, now, false},
		{"no timestamp", "whsec_k", strings.Split(h, ",")[1], body, now, false},
		{"garbage", "whsec_k", "nonsense", body, now, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := webhooks.Verify(c.secret, c.header, c.body, c.at, 0)
			if (err == nil) != c.ok || err != nil && !errors.Is(err, webhooks.ErrSignature) {
				t.Fatalf("Verify: %v, want ok=%v", err, c.ok)
			}
		})
	}
}
