package projector

import (
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/projector/ingest"
)

func TestDeadLetterLogWindows(t *testing.T) {
	rec := &LogRecorder{}
	d := newDeadLetterLog(slog.New(rec), 2, time.Minute)
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	entry := func(seq uint64, r ingest.Reason) deadLetterEntry {
		return deadLetterEntry{subject: "vexil.persons.1", seq: seq, poison: &ingest.Error{Reason: r, Text: "text " + strconv.FormatUint(seq, 10)}}
	}
	counts := func() (one, more int) {
		return len(rec.Lines("dead-lettered")), len(rec.Lines("")) - len(rec.Lines("dead-lettered"))
	}

	// Window 1: two logged, three counted; nothing more until it is over.
	d.record(t0, entry(1, ingest.ReasonUndecodable))
	d.record(t0.Add(time.Second), entry(2, ingest.ReasonUndecodable))
	d.record(t0.Add(2*time.Second), entry(3, ingest.ReasonUnknownTeam))
	d.record(t0.Add(3*time.Second), entry(4, ingest.ReasonUndecodable))
	d.flush(t0.Add(30*time.Second), false)
	d.record(t0.Add(59*time.Second), entry(5, ingest.ReasonUnknownTeam))
	if one, more := counts(); one != 2 || more != 0 {
		t.Fatalf("inside the window: %d single lines, %d others; want 2, 0", one, more)
	}
	if got := rec.Lines("dead-lettered")[1].Attrs; got["seq"] != "2" || got["reason"] != "undecodable" || got["text"] != "text 2" {
		t.Errorf("second line %v", got)
	}
	d.flush(t0.Add(61*time.Second), false)
	sums := rec.Lines("3 more dead letters in the last 1m1s")
	if len(sums) != 1 {
		t.Fatalf("summary lines %+v", rec.Lines(""))
	}
	want := map[string]string{
		"more": "3", "in_last": "1m1s", "by_reason": "undecodable=1 unknown_team=2",
		"sample_subject": "vexil.persons.1", "sample_seq": "3", "sample_reason": "unknown_team", "sample_text": "text 3",
	}
	for k, v := range want {
		if sums[0].Attrs[k] != v {
			t.Errorf("summary %s = %q, want %q", k, sums[0].Attrs[k], v)
		}
	}
	// A closed window stays closed.
	d.flush(t0.Add(10*time.Minute), true)
	if one, more := counts(); one != 2 || more != 1 {
		t.Fatalf("after the summary: %d single lines, %d others; want 2, 1", one, more)
	}

	// Window 2 opens with the next dead letter; a dead letter after its end
	// closes it and opens window 3, whose count the final flush logs.
	t1 := t0.Add(time.Hour)
	for i := range 4 {
		d.record(t1.Add(time.Duration(i)*time.Second), entry(uint64(10+i), ingest.ReasonTooLarge))
	}
	d.record(t1.Add(2*time.Minute), entry(20, ingest.ReasonTooLarge))
	if one, more := counts(); one != 5 || more != 2 {
		t.Fatalf("window 2: %d single lines, %d others; want 5, 2", one, more)
	}
	if got := rec.Lines("2 more dead letters in the last 2m0s"); len(got) != 1 || got[0].Attrs["sample_seq"] != "12" || got[0].Attrs["by_reason"] != "too_large=2" {
		t.Errorf("window 2 summary %+v", rec.Lines(""))
	}
	d.record(t1.Add(2*time.Minute+time.Second), entry(21, ingest.ReasonTooLarge))
	d.record(t1.Add(2*time.Minute+2*time.Second), entry(22, ingest.ReasonTooLarge))
	d.flush(t1.Add(2*time.Minute+5*time.Second), true)
	if got := rec.Lines("1 more dead letters in the last 5s"); len(got) != 1 || got[0].Attrs["sample_seq"] != "22" {
		t.Errorf("final summary %+v", rec.Lines(""))
	}
	if one, more := counts(); one != 6 || more != 3 {
		t.Fatalf("in all: %d single lines, %d others; want 6, 3", one, more)
	}
}
