package projector_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/polltest"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/ingest"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
	"github.com/vexil-dev/vexil/streams"
)

// natsEnv is an in-process NATS server with JetStream on a temp dir and a
// client connection to it.
type natsEnv struct {
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

func startNATS(t testing.TB) *natsEnv {
	t.Helper()
	ns := natstest.Start(t)
	if _, err := streams.Ensure(context.Background(), ns.JetStream, projector.IngestStreamConfig(projector.DefaultStream, ""), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	return &natsEnv{srv: ns.Server, nc: ns.Conn, js: ns.JetStream}
}

// publish sends env to its subject in the given encoding and waits for the
// JetStream ack.
func (e *natsEnv) publish(t testing.TB, env *ingestv1.Envelope, enc ingest.Encoding) uint64 {
	t.Helper()
	subject, err := ingest.SubjectOf("", env)
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(subject)
	if enc == ingest.JSON {
		m.Header.Set(ingest.HeaderContentType, ingest.ContentTypeJSON)
		m.Data, err = ingest.MarshalJSON(env)
	} else {
		m.Data, err = proto.Marshal(env)
	}
	if err != nil {
		t.Fatal(err)
	}
	return e.publishMsg(t, m)
}

func (e *natsEnv) publishMsg(t testing.TB, m *nats.Msg) uint64 {
	t.Helper()
	ack, err := e.js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatalf("publish %s: %v", m.Subject, err)
	}
	return ack.Sequence
}

// publishRaw sends a payload as is.
func (e *natsEnv) publishRaw(t testing.TB, subject, contentType string, data []byte) uint64 {
	t.Helper()
	m := nats.NewMsg(subject)
	if contentType != "" {
		m.Header.Set(ingest.HeaderContentType, contentType)
	}
	m.Data = data
	return e.publishMsg(t, m)
}

// waitApplied waits until the durable consumer has acknowledged every
// message of the ingest stream.
func (e *natsEnv) waitApplied(t testing.TB, durable string) {
	t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, projector.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := info.State.LastSeq
	polltest.Eventually(t, 2*time.Minute, func() error {
		c, err := s.Consumer(ctx, durable)
		if err != nil {
			if !errors.Is(err, jetstream.ErrConsumerNotFound) {
				t.Fatal(err)
			}
			return err
		}
		ci, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if ci.AckFloor.Stream < last {
			return fmt.Errorf("consumer %s acknowledged up to %d, not %d", durable, ci.AckFloor.Stream, last)
		}
		return nil
	})
}

// allAcked reports whether the durable consumer acknowledged every
// message of the ingest stream.
func (e *natsEnv) allAcked() bool {
	ctx := context.Background()
	s, err := e.js.Stream(ctx, projector.DefaultStream)
	if err != nil {
		return false
	}
	info, err := s.Info(ctx)
	if err != nil {
		return false
	}
	c, err := s.Consumer(ctx, projector.DefaultDurable)
	if err != nil {
		return false
	}
	ci, err := c.Info(ctx)
	return err == nil && ci.AckFloor.Stream >= info.State.LastSeq
}

// deadLetters returns every message of the dead-letter stream, in order.
func (e *natsEnv) deadLetters(t testing.TB) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, projector.DefaultDeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// running is a projector run in the background.
type running struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// run starts p.Run; stop cancels it and returns Run's error.
func run(p *projector.Projector) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	return r
}

func (r *running) stop() error {
	r.once.Do(func() {
		r.cancel()
		r.err = <-r.done
	})
	return r.err
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b))
	return len(b), nil
}

// counterValue reads a counter (with the given label values) from reg.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metrics
				}
			}
			return value(m)
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

func i64(v int64) *int64 { return &v }

// metricSum sums every series of a metric in reg.
func metricSum(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += value(m)
			}
		}
	}
	return sum
}
