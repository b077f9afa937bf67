package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// fakeClock advances only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// TestProgressBarTerminal: on a terminal the bar redraws one line (\r)
// at most every 100 ms, always for the last value, with a percentage when
// the total is known and '?' when it is not; finish ends the line.
func TestProgressBarTerminal(t *testing.T) {
	var out, logs bytes.Buffer
	clk := &fakeClock{t: time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)}
	p := &progressBar{w: &out, tty: true, log: slog.New(slog.NewTextHandler(&logs, nil)), what: "restore", now: clk.now}
	p.update("records", 0, 200)
	clk.t = clk.t.Add(50 * time.Millisecond)
	p.update("records", 20, 200) // within 100 ms: not drawn
	clk.t = clk.t.Add(60 * time.Millisecond)
	p.update("records", 50, 200)
	clk.t = clk.t.Add(10 * time.Millisecond)
	p.update("records", 200, 200) // the last value: drawn at once
	p.finish()
	want := "\rrestore [..............................]   0% records 0 rows   " +
		"\rrestore [#######.......................]  25% records 50 rows   " +
		"\rrestore [##############################] 100% records 200 rows   \n"
	if out.String() != want {
		t.Errorf("terminal output\n%q\nwant\n%q", out.String(), want)
	}
	if logs.Len() != 0 {
		t.Errorf("a terminal bar also logged %q", logs.String())
	}

	out.Reset()
	s := &progressBar{w: &out, tty: true, what: "snapshot", now: clk.now}
	s.update("persons", 8192, 0) // snapshot create: the total is unknown
	s.finish()
	if want := "\rsnapshot [??????????????????????????????] persons 8192 rows   \n"; out.String() != want {
		t.Errorf("bar without a total %q, want %q", out.String(), want)
	}
}

// TestProgressBarNotTerminal: elsewhere (a file, a pipe: newProgressBar
// on anything but a terminal) nothing is drawn; a structured log line is
// written at most every 5 s.
func TestProgressBarNotTerminal(t *testing.T) {
	var out, logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	p := newProgressBar(&out, log, "replay")
	if p.tty {
		t.Fatal("a bytes.Buffer taken for a terminal")
	}
	clk := &fakeClock{t: time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)}
	p.now = clk.now
	for _, step := range []struct {
		after time.Duration
		done  int64
	}{{0, 10}, {time.Second, 20}, {4 * time.Second, 30}, {2 * time.Second, 40}, {time.Second, 100}} {
		clk.t = clk.t.Add(step.after)
		p.update("messages", step.done, 100)
	}
	p.finish()
	want := []string{
		`level=INFO msg="replay progress" at=messages rows=10 total=100`,
		`level=INFO msg="replay progress" at=messages rows=30 total=100`, // 5 s after the first
	}
	if got := strings.Split(strings.TrimSpace(logs.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log lines\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if out.Len() != 0 {
		t.Errorf("a non-terminal bar drew %q", out.String())
	}
}
