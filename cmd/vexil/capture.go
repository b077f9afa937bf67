package main

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/vexil-dev/vexil/capture"
	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
)

// bindCORSFlag binds the management API's CORS allow-list (serve, admin).
func bindCORSFlag(b configFlags, c *config.Config) {
	b.list(&c.Admin.CORSOrigins, "cors-origins", "admin.cors-origins",
		"comma-separated browser origins (scheme://host[:port], or *) the management API under /api answers cross-origin; empty keeps CORS off there (PostHog's public endpoints answer every origin)")
}

// captureRoutes serves PostHog's capture endpoints on n's HTTP listener:
// the project token resolves through evaluation's key cache, the person of
// a distinct id through the store, and the messages go to the ingest
// stream on n's NATS connection.
func captureRoutes(n *node, log *slog.Logger) (map[string]http.Handler, error) {
	h, err := capture.New(capture.Config{
		Projects: func(ctx context.Context, token string) (capture.Project, error) {
			p, err := n.eval.ProjectForToken(ctx, token)
			return capture.Project{Team: p.Team, GroupTypes: p.GroupTypes}, err
		},
		Mappings: n.store, JetStream: n.js, Conn: n.nc, Namespace: n.ns,
		Logger: log.With("role", "capture"), Registry: n.registry,
		FlagCalls: n.usage.flagCalls(),
	})
	if err != nil {
		return nil, err
	}
	return h.Routes(), nil
}
