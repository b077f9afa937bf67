// Package natstest runs a real NATS server with JetStream in process, one
// per test, on a free loopback port and the test's temporary directory, with
// a connection to it. Only tests import it (deps_test.go).
package natstest

import (
	"net"
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
	// opts start the server again (Restart): the same port and directory.
	opts *server.Options
}

// Start starts a server for tb and connects to it. The server listens on a
// free port of 127.0.0.1 and keeps JetStream's files under tb.TempDir(). Its
// cleanup (registered with tb.Cleanup, so it runs after the cleanups the
// test registers later) closes the connection and waits for the server to
// shut down. Start fails tb if the server does not start.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{opts: &server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  tb.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}}
	s.start(tb)
	tb.Cleanup(s.Stop)
	// The port stays the server's own: Restart listens on it again.
	s.opts.Port = s.Addr().(*net.TCPAddr).Port
	// The connection follows the server through Stop and Restart.
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		tb.Fatalf("natstest: connect to %s: %v", s.ClientURL(), err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("natstest: jetstream: %v", err)
	}
	s.Conn, s.JetStream = nc, js
	return s
}

// start starts a server with s.opts.
func (s *Server) start(tb testing.TB) {
	tb.Helper()
	ns, err := server.NewServer(s.opts)
	if err != nil {
		tb.Fatalf("natstest: new server: %v", err)
	}
	ns.Start()
	s.Server = ns
	if !ns.ReadyForConnections(readyTimeout) {
		tb.Fatalf("natstest: server not ready for connections on port %d within %v", s.opts.Port, readyTimeout)
	}
}

// Stop shuts the server down and waits for it: an outage, for the clients.
// Restart starts it again. Stop and Restart are not safe for concurrent use
// with the other methods of s.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}

// Restart starts the server again, stopped or not, on the same port and
// JetStream directory: streams, consumers and their messages come back, and
// connections (Conn among them) reconnect. It fails tb if the server does
// not start (another process took the port meanwhile).
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Stop()
	s.start(tb)
}
