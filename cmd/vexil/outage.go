package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/admin/outbox"
	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/streams"
)

// connectServeNATS connects vexil serve to NATS. A server that cannot be
// reached does not stop the node: the client keeps trying (forever, as
// after a disconnection) while /flags answers from the store and the
// catalog; ingest and change notices catch up when NATS is there.
func connectServeNATS(url string, log *slog.Logger) (*nats.Conn, error) {
	log = log.With("role", "nats")
	nc, err := nats.Connect(url, nats.Name("vexil serve"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(time.Second),
		nats.ConnectHandler(func(nc *nats.Conn) { log.Info("nats connected", "url", nc.ConnectedUrl()) }),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return // closed on shutdown
			}
			log.Warn("nats disconnected: serving from the store, ingest and change notices wait", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "url", nc.ConnectedUrl()) }))
	if err != nil {
		return nil, fmt.Errorf("nats: connect %s: %w", url, err)
	}
	if !nc.IsConnected() {
		log.Warn("nats not reachable yet: starting without it", "url", url, "err", nc.LastError())
	}
	return nc, nil
}

// untilDone runs a role that needs NATS to start (its streams and
// consumers) until ctx ends: an error while ctx lives (NATS away at start,
// or lost while the role set up) is logged and the role is run again after
// a backoff, so the node keeps serving and catches up when NATS is back.
// It returns nil when ctx ends or run returns nil (done), and the error in
// a *fatalError at once.
func untilDone(ctx context.Context, log *slog.Logger, role string, run func(context.Context) error) error {
	const minBackoff, maxBackoff = 500 * time.Millisecond, 15 * time.Second
	backoff := minBackoff
	for {
		start := time.Now()
		err := run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if fe, ok := errors.AsType[*fatalError](err); ok {
			return fe.err
		}
		if time.Since(start) > maxBackoff {
			backoff = minBackoff // it ran a while: this is a new failure
		}
		if err == nil {
			return nil // done
		}
		log.Error("role failed; starting it again", "role", role, "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// claimLater parses c's namespace for a node started while NATS is away
// and returns claim, which binds it to the node's store (streams.Claim)
// once NATS is there, retrying while it is not. A refusal (the namespace
// serves another store) is claim's error and stops the node, as it stops
// one at start.
func claimLater(c config.Config, js jetstream.JetStream, log *slog.Logger) (namespace.Name, func(context.Context) error, error) {
	ns, err := namespace.Parse(c.NATS.Namespace)
	if err != nil {
		return "", nil, err
	}
	id, err := storeIdentity(c)
	if err != nil {
		return "", nil, err
	}
	claim := func(ctx context.Context) error {
		return untilDone(ctx, log, "namespace claim", func(ctx context.Context) error {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			err := streams.Claim(cctx, js, ns, id)
			if errors.Is(err, streams.ErrClaimed) {
				return &fatalError{err}
			}
			return err
		})
	}
	return ns, claim, nil
}

// fatalError ends untilDone: its role is not run again.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// openOutbox opens the outbox of the change notices in the data directory:
// the management API's writes answer without waiting for NATS, and what
// they announce is published, in order, once NATS has it.
func openOutbox(dataDir string, nc *nats.Conn, log *slog.Logger, reg prometheus.Registerer) (*outbox.Outbox, error) {
	return outbox.Open(outbox.Config{Dir: filepath.Join(dataDir, "outbox"), Sender: connectedSender{nc},
		Logger: log.With("role", "outbox"), Registerer: reg})
}

// connectedSender publishes only while connected: the client would
// otherwise buffer a message for its reconnect while the outbox, seeing the
// flush fail, keeps it and sends it again.
type connectedSender struct{ nc *nats.Conn }

func (s connectedSender) Publish(ctx context.Context, subject string, data []byte) error {
	if !s.nc.IsConnected() {
		return fmt.Errorf("publish %s: nats %s", subject, s.nc.Status())
	}
	return admin.NATSPublisher{Conn: s.nc}.Publish(ctx, subject, data)
}

// probeTimeout bounds a readiness probe's store and catalog reads: the
// store deadline of /flags, at least a second (a probe must not call a
// slow but working store down).
func probeTimeout(c config.Config) time.Duration {
	return max(c.Eval.StoreTimeout, time.Second)
}
