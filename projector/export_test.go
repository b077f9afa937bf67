package projector

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/vexil-dev/vexil/store"
)

// CheckIndexCache reports the first person whose cached distinct ids
// differ from st's index (nil when every cached entry is exact). Call it
// only after p's run ended with every batch it prepared written.
func CheckIndexCache(ctx context.Context, p *Projector, st store.Store) error {
	if p.cache == nil {
		return nil
	}
	for _, gen := range []map[store.PersonKey][]string{p.cache.cur, p.cache.prev} {
		for k, cached := range gen {
			ids, err := st.DistinctIDs(ctx, k.Team, k.ID)
			if err != nil {
				return err
			}
			if !slices.Equal(ids, cached) && len(ids)+len(cached) > 0 {
				return fmt.Errorf("index cache of %d/%s = %q, the store has %q", k.Team, k.ID, cached, ids)
			}
		}
	}
	return nil
}

// LogRecorder is a slog.Handler that keeps every record, for tests that
// count log lines.
type LogRecorder struct {
	mu   sync.Mutex
	recs []LogLine
}

// LogLine is a recorded log line: its message and attributes as text.
type LogLine struct {
	Msg   string
	Attrs map[string]string
}

func (r *LogRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *LogRecorder) Handle(_ context.Context, rec slog.Record) error {
	l := LogLine{Msg: rec.Message, Attrs: map[string]string{}}
	rec.Attrs(func(a slog.Attr) bool {
		l.Attrs[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	r.recs = append(r.recs, l)
	r.mu.Unlock()
	return nil
}

func (r *LogRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *LogRecorder) WithGroup(string) slog.Handler      { return r }

// Lines returns the lines recorded so far whose message has prefix.
func (r *LogRecorder) Lines(prefix string) []LogLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []LogLine
	for _, l := range r.recs {
		if strings.HasPrefix(l.Msg, prefix) {
			out = append(out, l)
		}
	}
	return out
}
