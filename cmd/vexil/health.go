package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vexil-dev/vexil/admin/outbox"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/store"
)

// The states of a dependency in /healthz.
const (
	stateOK       = "ok"       // working
	stateDegraded = "degraded" // away, and the node serves without it (NATS reconnecting)
	stateDown     = "down"     // away, and the node cannot answer /flags as it should
)

// probeTTL is how long a probe's result answers /healthz and /readyz: a
// load balancer polling every node often costs one store and one catalog
// read per node per probeTTL.
const probeTTL = time.Second

// health answers /livez, /readyz and /healthz of vexil serve.
//
//   - /livez: 200 while the process serves HTTP. A failing liveness probe
//     restarts the process, which never helps with a dependency away.
//   - /readyz: 200 when /flags can be answered from the store and the
//     definitions (store and catalog not down), else 503. NATS away does
//     not make a node unready: /flags keeps answering from what it has,
//     ingest and change notices catch up when NATS is back.
//   - /healthz: /readyz's status with a JSON body naming each dependency
//     (nats, store, catalog) with its state (ok, degraded, down), and the
//     change notices waiting in the outbox.
type health struct {
	nc      *nats.Conn
	store   store.Reader
	catalog catalog.Catalog
	outbox  *outbox.Outbox // nil: none
	// timeout bounds one store or catalog probe.
	timeout time.Duration
	log     *slog.Logger

	mu struct {
		sync.Mutex
		// last is the latest probe, taken at at.
		last map[string]dependency
		at   time.Time
	}
}

// dependency is one dependency's entry in /healthz.
type dependency struct {
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}

// healthReport is /healthz's body.
type healthReport struct {
	// Status is ok when every dependency is, down when the node is not
	// ready, degraded otherwise.
	Status       string                `json:"status"`
	Dependencies map[string]dependency `json:"dependencies"`
	// OutboxPending counts the change notices and rollout signals not yet
	// published.
	OutboxPending int `json:"outbox_pending"`
}

// probeTeam and probeDistinctID (a row) and probeHash (a key) are read to
// probe the store and the catalog; a not-found answer is a healthy one.
const probeTeam, probeDistinctID = 1, "vexil:readiness-probe"

var probeHash = make([]byte, 32)

func (h *health) routes() map[string]http.Handler {
	return map[string]http.Handler{
		"/livez": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte("ok\n"))
		}),
		"/readyz": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rep := h.report(r.Context())
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			if rep.Status == stateDown {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("not ready\n"))
				return
			}
			_, _ = w.Write([]byte("ready\n"))
		}),
		"/healthz": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rep := h.report(r.Context())
			w.Header().Set("Content-Type", "application/json")
			if rep.Status == stateDown {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			_ = json.NewEncoder(w).Encode(rep)
		}),
	}
}

// report returns the node's health; the store and catalog probes are
// shared by the calls of one probeTTL.
func (h *health) report(ctx context.Context) healthReport {
	rep := healthReport{Dependencies: map[string]dependency{"nats": h.natsState()}}
	if h.outbox != nil {
		rep.OutboxPending = h.outbox.Pending()
	}
	h.mu.Lock()
	if h.mu.last == nil || time.Since(h.mu.at) >= probeTTL {
		h.mu.last = h.probe(ctx)
		h.mu.at = time.Now()
	}
	for k, v := range h.mu.last {
		rep.Dependencies[k] = v
	}
	h.mu.Unlock()
	rep.Status = stateOK
	for name, d := range rep.Dependencies {
		switch {
		case d.State == stateDown && name != "nats":
			rep.Status = stateDown
		case d.State != stateOK && rep.Status == stateOK:
			rep.Status = stateDegraded
		}
	}
	return rep
}

func (h *health) natsState() dependency {
	switch s := h.nc.Status(); s {
	case nats.CONNECTED:
		return dependency{State: stateOK}
	case nats.CLOSED:
		return dependency{State: stateDown, Error: "connection closed"}
	default:
		// The client reconnects: /flags answers from what the node has.
		d := dependency{State: stateDegraded, Error: "nats: " + s.String()}
		if err := h.nc.LastError(); err != nil {
			d.Error += ": " + err.Error()
		}
		return d
	}
}

// probe reads the store and the catalog once each, bounded by h.timeout.
func (h *health) probe(ctx context.Context) map[string]dependency {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.timeout)
	defer cancel()
	deps := map[string]dependency{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	check := func(name string, read func(context.Context) error, notFound error) {
		defer wg.Done()
		d := dependency{State: stateOK}
		if err := read(ctx); err != nil && !errors.Is(err, notFound) {
			d = dependency{State: stateDown, Error: err.Error()}
			h.log.Warn("readiness probe failed", "dependency", name, "err", err)
		}
		mu.Lock()
		deps[name] = d
		mu.Unlock()
	}
	wg.Add(2)
	go check("store", func(ctx context.Context) error {
		_, err := h.store.GetRow(ctx, probeTeam, probeDistinctID)
		return err
	}, store.ErrNotFound)
	go check("catalog", func(ctx context.Context) error {
		_, err := h.catalog.GetKeyByHash(ctx, probeHash)
		return err
	}, catalog.ErrNotFound)
	wg.Wait()
	return deps
}
