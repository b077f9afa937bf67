// Package natstest runs a real NATS server with JetStream in process, one
// per test, on a free loopback port and the test's temporary directory, with
// a connection to it. Only tests import it (deps_test.go).
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// readyTimeout bounds how long Start waits for the server to accept
// connections: a hang guard on a loaded machine, not a speed assertion.
const readyTimeout = 30 * time.Second

// Server is a NATS server running in the test's process, with JetStream on,
// and a connection to it. The embedded *server.Server gives its URL
// (ClientURL) and state; Conn and JetStream are ready to use.
type Server struct {
	*server.Server
	Conn      *nats.Conn
	JetStream jetstream.JetStream
}

// Start starts a server for tb and connects to it. The server listens on a
// free port of 127.0.0.1 and keeps JetStream's files under tb.TempDir(). Its
// cleanup (registered with tb.Cleanup, so it runs after the cleanups the
// test registers later) closes the connection and waits for the server to
// shut down. Start fails tb if the server does not start.
func Start(tb testing.TB) *Server {
	tb.Helper()
	ns, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  tb.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	})
	if err != nil {
		tb.Fatalf("natstest: new server: %v", err)
	}
	ns.Start()
	tb.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(readyTimeout) {
		tb.Fatalf("natstest: server not ready for connections within %v", readyTimeout)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		tb.Fatalf("natstest: connect to %s: %v", ns.ClientURL(), err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("natstest: jetstream: %v", err)
	}
	return &Server{Server: ns, Conn: nc, JetStream: js}
}
