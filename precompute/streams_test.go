package precompute_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/precompute"
)

// TestEnsureStreamsKeepsOperatorSettings: a worker starting against streams
// it created finds nothing to warn about; against a stream its operator
// changed, it keeps the operator's settings and warns once (it used to
// overwrite them).
func TestEnsureStreamsKeepsOperatorSettings(t *testing.T) {
	e := newEnv(t, backends[0]) // created the streams with the defaults
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	if _, err := precompute.EnsureStreams(e.ctx, e.js, "", log); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Fatalf("streams as created, yet logged: %s", buf.String())
	}

	s, err := e.js.Stream(e.ctx, precompute.NamesOf("").ChangeStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxAge = time.Hour
	if _, err := e.js.UpdateStream(e.ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := precompute.EnsureStreams(e.ctx, e.js, "", log); err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != time.Hour {
		t.Errorf("max age %v, the operator set 1h", info.Config.MaxAge)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("logged %d lines, want one warning: %s", len(lines), buf.String())
	}
	var rec struct {
		Level       string   `json:"level"`
		Stream      string   `json:"stream"`
		Differences []string `json:"differences"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Level != "WARN" || rec.Stream != precompute.NamesOf("").ChangeStream || len(rec.Differences) != 1 ||
		!strings.HasPrefix(rec.Differences[0], "max_age: have 1h0m0s, default 24h0m0s") {
		t.Errorf("warning %+v", rec)
	}
}
