package streams_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/streams"
)

// logRecords is a slog handler's output, one JSON object a record.
type logRecords struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logRecords) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logRecords) records(t *testing.T) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(l.buf.String()) {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

func (l *logRecords) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func defaults(name string) jetstream.StreamConfig {
	return jetstream.StreamConfig{Name: name, Description: "test defaults", Subjects: []string{"t.a.*", "t.b.*"},
		Storage: jetstream.FileStorage, Retention: jetstream.WorkQueuePolicy, MaxAge: 24 * time.Hour,
		Duplicates: 10 * time.Minute}
}

// TestEnsureCreatesAbsent: an absent stream is created with the defaults,
// and a second Ensure finds it as created, without a warning.
func TestEnsureCreatesAbsent(t *testing.T) {
	js := natstest.Start(t).JetStream
	ctx := context.Background()
	var logs logRecords
	want := defaults("ABSENT")
	s, err := streams.Ensure(ctx, js, want, logs.logger())
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := info.Config
	if got.Name != "ABSENT" || !slices.Equal(got.Subjects, want.Subjects) || got.Retention != jetstream.WorkQueuePolicy ||
		got.Storage != jetstream.FileStorage || got.MaxAge != 24*time.Hour || got.Duplicates != 10*time.Minute ||
		got.Description != "test defaults" {
		t.Errorf("created with %+v", got)
	}
	if d := streams.Differences(got, want); len(d) != 0 {
		t.Errorf("created stream differs from the defaults: %v", d)
	}
	if _, err := streams.Ensure(ctx, js, want, logs.logger()); err != nil {
		t.Fatal(err)
	}
	recs := logs.records(t)
	if len(recs) != 1 || recs[0]["level"] != "INFO" || recs[0]["stream"] != "ABSENT" {
		t.Errorf("logs %v, want one INFO of the creation", recs)
	}
}

// TestEnsureKeepsExisting: a stream the operator configured otherwise is
// left alone, and one warning names every setting that differs.
func TestEnsureKeepsExisting(t *testing.T) {
	js := natstest.Start(t).JetStream
	ctx := context.Background()
	operator := jetstream.StreamConfig{Name: "EXISTING", Subjects: []string{"t.a.*", "t.b.*", "t.c.*"},
		Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy, MaxAge: time.Hour,
		Duplicates: 10 * time.Minute, MaxBytes: 1 << 20}
	if _, err := js.CreateStream(ctx, operator); err != nil {
		t.Fatal(err)
	}
	var logs logRecords
	s, err := streams.Ensure(ctx, js, defaults("EXISTING"), logs.logger())
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := info.Config
	if !slices.Equal(got.Subjects, operator.Subjects) || got.Retention != jetstream.LimitsPolicy ||
		got.MaxAge != time.Hour || got.MaxBytes != 1<<20 || got.Description != "" {
		t.Errorf("stream changed to %+v", got)
	}
	recs := logs.records(t)
	if len(recs) != 1 || recs[0]["level"] != "WARN" || recs[0]["stream"] != "EXISTING" {
		t.Fatalf("logs %v, want one WARN", recs)
	}
	var names []string
	for _, d := range recs[0]["differences"].([]any) {
		name, _, _ := strings.Cut(d.(string), ":")
		names = append(names, name)
	}
	if want := []string{"subjects", "retention", "max_age", "max_bytes"}; !slices.Equal(names, want) {
		t.Errorf("warned of %v (%v), want %v", names, recs[0]["differences"], want)
	}
}

func TestEnsureRefusesNoName(t *testing.T) {
	js := natstest.Start(t).JetStream
	if _, err := streams.Ensure(context.Background(), js, jetstream.StreamConfig{Subjects: []string{"x"}}, nil); err == nil ||
		!strings.Contains(err.Error(), "no stream name") {
		t.Errorf("err %v", err)
	}
}

func TestDifferences(t *testing.T) {
	base := jetstream.StreamConfig{Name: "S", Subjects: []string{"a.*", "b.*"}, MaxAge: time.Hour}
	cases := []struct {
		name string
		have func(*jetstream.StreamConfig)
		want []string
	}{
		{"same", func(*jetstream.StreamConfig) {}, nil},
		{"server defaults for zero limits", func(c *jetstream.StreamConfig) {
			c.MaxMsgs, c.MaxBytes, c.MaxMsgsPerSubject, c.MaxMsgSize, c.MaxConsumers = -1, -1, -1, -1, -1
			c.Replicas, c.Duplicates = 1, 2*time.Minute
		}, nil},
		{"subjects in another order", func(c *jetstream.StreamConfig) { c.Subjects = []string{"b.*", "a.*"} }, nil},
		{"name and description are not settings", func(c *jetstream.StreamConfig) { c.Name, c.Description = "T", "x" }, nil},
		{"fewer subjects", func(c *jetstream.StreamConfig) { c.Subjects = []string{"a.*"} },
			[]string{"subjects: have [a.*], default [a.* b.*]"}},
		{"every limit", func(c *jetstream.StreamConfig) {
			c.Retention, c.Storage, c.Discard = jetstream.InterestPolicy, jetstream.MemoryStorage, jetstream.DiscardNew
			c.MaxAge, c.Duplicates, c.MaxMsgs, c.MaxBytes = 0, time.Second, 5, 6
			c.MaxMsgSize, c.MaxMsgsPerSubject, c.MaxConsumers, c.Replicas = 7, 8, 9, 3
		}, []string{"retention", "storage", "discard", "max_age", "duplicate_window", "max_msgs", "max_bytes",
			"max_msg_size", "max_msgs_per_subject", "max_consumers", "num_replicas"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			have := base
			have.Subjects = slices.Clone(base.Subjects)
			c.have(&have)
			got := streams.Differences(have, base)
			if len(c.want) == 1 && strings.Contains(c.want[0], ":") {
				if !slices.Equal(got, c.want) {
					t.Errorf("got %q, want %q", got, c.want)
				}
				return
			}
			var names []string
			for _, d := range got {
				name, _, _ := strings.Cut(d, ":")
				names = append(names, name)
			}
			if !slices.Equal(names, c.want) {
				t.Errorf("got %q, want settings %q", got, c.want)
			}
		})
	}
}
