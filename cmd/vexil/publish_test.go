package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/ingest"
	"github.com/vexil-dev/vexil/streams"
)

// streamMessages returns every message of the ingest stream, in order.
func streamMessages(t *testing.T, url string) []*jetstream.RawStreamMsg {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	s, err := js.Stream(ctx, projector.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestPublishExampleFile(t *testing.T) {
	example, err := os.ReadFile("../../docs/examples/persons.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(example)), "\n")
	for _, encoding := range []string{"json", "protobuf"} {
		t.Run(encoding, func(t *testing.T) {
			url := natstest.Start(t).ClientURL()
			var out, errb bytes.Buffer
			code := run(context.Background(), []string{"publish", "--nats-url", url, "--file", "../../docs/examples/persons.jsonl", "--encoding", encoding}, &out, &errb)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			if want := "published 9 messages\n"; out.String() != want {
				t.Fatalf("stdout %q, want %q", out.String(), want)
			}
			msgs := streamMessages(t, url)
			if len(msgs) != len(lines) {
				t.Fatalf("%d messages in the stream, want %d", len(msgs), len(lines))
			}
			for i, m := range msgs {
				want, err := ingest.DecodePayload(ingest.JSON, []byte(lines[i]), ingest.Limits{})
				if err != nil {
					t.Fatal(err)
				}
				wantSubject, _ := ingest.SubjectOf("", want)
				if m.Subject != wantSubject {
					t.Errorf("message %d on %s, want %s", i, m.Subject, wantSubject)
				}
				got, err := ingest.Decode("", m.Subject, m.Header.Get(ingest.HeaderContentType), m.Data, ingest.Limits{})
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if !proto.Equal(got, want) {
					t.Errorf("message %d = %v, want %v", i, got, want)
				}
				if encoding == "json" && string(m.Data) != lines[i] {
					t.Errorf("message %d payload %q, want the line as written %q", i, m.Data, lines[i])
				}
			}
		})
	}
}

func TestPublishBadLine(t *testing.T) {
	url := natstest.Start(t).ClientURL()
	path := filepath.Join(t.TempDir(), "bad.jsonl")
	content := `{"type":"person_delete","team":1,"person_id":"p","version":1}

{"type":"person_update","team":"1","person_id":"p","version":2}
{"type":"person_delete","team":1,"person_id":"q","version":1}
`
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"publish", "--nats-url", url, "--file", path}, &out, &errb)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (stderr %q)", code, errb.String())
	}
	for _, want := range []string{"line 3:", "wrong_type", "team", "1 messages before it were published"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr %q does not contain %q", errb.String(), want)
		}
	}
	if n := len(streamMessages(t, url)); n != 1 {
		t.Errorf("%d messages in the stream, want the 1 before the bad line", n)
	}
}

func TestPublishFromReader(t *testing.T) {
	ns := natstest.Start(t)
	url, js := ns.ClientURL(), ns.JetStream
	ctx := context.Background()
	if _, err := streams.Ensure(ctx, js, projector.IngestStreamConfig(projector.DefaultStream, ""), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	p := publisher{js: js, enc: ingest.JSON, timeout: 10 * time.Second}
	in := strings.NewReader(`{"type":"group_type_mapping","team":3,"group_type_index":1,"name":"team"}` + "\n" +
		`{"type":"event","team":3,"distinct_id":"a","event":"e","uuid":"u","timestamp":"2026-11-25T00:00:00Z"}`)
	n, err := p.publishLines(ctx, in)
	if err != nil || n != 2 {
		t.Fatalf("publishLines = %d, %v; want 2, nil", n, err)
	}
	msgs := streamMessages(t, url)
	if len(msgs) != 2 || msgs[0].Subject != "vexil.groups.3" || msgs[1].Subject != "vexil.events.3" {
		t.Fatalf("subjects %v", msgs)
	}
}

func TestPublishUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"publish"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--file is required") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"publish", "--file", "x", "--encoding", "xml"}, &out, &errb); code != 2 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

func TestPublishStdin(t *testing.T) {
	url := natstest.Start(t).ClientURL()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = r
	t.Cleanup(func() { os.Stdin = old; r.Close() })
	go func() {
		w.WriteString(`{"type":"person_delete","team":5,"person_id":"p","version":1}` + "\n")
		w.Close()
	}()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"publish", "--nats-url", url, "--file", "-"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if out.String() != "published 1 messages\n" {
		t.Fatalf("stdout %q", out.String())
	}
	if msgs := streamMessages(t, url); len(msgs) != 1 || msgs[0].Subject != "vexil.persons.5" {
		t.Fatalf("stream holds %v", msgs)
	}
}
