package natstest_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/polltest"
)

// TestStart: a server on loopback with JetStream on the test's temporary
// directory, a working connection, and everything shut down by the
// cleanup.
func TestStart(t *testing.T) {
	var servers []*natstest.Server
	t.Run("running", func(t *testing.T) {
		a, b := natstest.Start(t), natstest.Start(t)
		servers = append(servers, a, b)
		for _, s := range servers {
			u, err := url.Parse(s.ClientURL())
			if err != nil {
				t.Fatal(err)
			}
			if u.Hostname() != "127.0.0.1" || u.Port() == "" || u.Port() == "4222" {
				t.Errorf("client URL %s, want a free port of 127.0.0.1", s.ClientURL())
			}
			if !s.JetStreamEnabled() {
				t.Error("JetStream is off")
			}
			// t.TempDir makes each directory under one per test.
			if dir := s.JetStreamConfig().StoreDir; !strings.HasPrefix(dir, filepath.Dir(t.TempDir())+string(filepath.Separator)) {
				t.Errorf("JetStream store %s is not under the test's temporary directory", dir)
			}
			if !s.Conn.IsConnected() || s.Conn.ConnectedUrl() != s.ClientURL() {
				t.Errorf("connection to %s: connected %v", s.Conn.ConnectedUrl(), s.Conn.IsConnected())
			}
		}
		if a.ClientURL() == b.ClientURL() {
			t.Errorf("two servers share %s", a.ClientURL())
		}

		ctx := context.Background()
		st, err := a.JetStream.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}})
		if err != nil {
			t.Fatal(err)
		}
		ack, err := a.JetStream.Publish(ctx, "t.x", []byte("hello"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := st.GetMsg(ctx, ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "t.x" || string(m.Data) != "hello" {
			t.Errorf("stored %s %q, want t.x \"hello\"", m.Subject, m.Data)
		}
		if _, err := b.JetStream.Stream(ctx, "T"); err == nil {
			t.Error("the second server sees the first one's stream")
		}
	})
	for _, s := range servers {
		if s.Running() {
			t.Errorf("server %s still runs after its test", s.ClientURL())
		}
		if !s.Conn.IsClosed() {
			t.Errorf("connection to %s still open after its test", s.ClientURL())
		}
	}
}

// TestRestart: Stop is an outage; Restart brings the server back on the
// same port with its streams and messages, and Conn reconnects.
func TestRestart(t *testing.T) {
	s := natstest.Start(t)
	ctx := context.Background()
	url := s.ClientURL()
	if _, err := s.JetStream.CreateStream(ctx, jetstream.StreamConfig{Name: "R", Subjects: []string{"r.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.JetStream.Publish(ctx, "r.1", []byte("before")); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if s.Running() {
		t.Fatal("running after Stop")
	}
	polltest.Eventually(t, 30*time.Second, func() error {
		if s.Conn.IsConnected() {
			return errors.New("the connection has not noticed the outage")
		}
		return nil
	})
	s.Restart(t)
	if s.ClientURL() != url {
		t.Errorf("restarted on %s, want %s", s.ClientURL(), url)
	}
	polltest.Eventually(t, 30*time.Second, func() error {
		if !s.Conn.IsConnected() {
			return fmt.Errorf("connection %s", s.Conn.Status())
		}
		return nil
	})
	st, err := s.JetStream.Stream(ctx, "R")
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(ctx, 1)
	if err != nil || string(m.Data) != "before" {
		t.Fatalf("message 1 after the restart: %v, %v", m, err)
	}
	if _, err := s.JetStream.Publish(ctx, "r.2", []byte("after")); err != nil {
		t.Fatal(err)
	}
	// Restart of a running server stops it first.
	s.Restart(t)
	if !s.Running() || s.ClientURL() != url {
		t.Errorf("second restart: running %v on %s", s.Running(), s.ClientURL())
	}
}
