package projector

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vexil-dev/vexil/projector/ingest"
)

// deadLetterLog rate-limits the log lines about dead letters. A window
// opens with a dead letter and lasts the interval: its first burst dead
// letters are logged one line each, the others only counted; when the
// window is over (at the next dead letter, at the next flush, or when the
// run ends) one line says how many more there were, by reason, with the
// first of them as a sample. The dead-letter subject and the metrics keep
// every message; only the log is thinned.
type deadLetterLog struct {
	log      *slog.Logger
	burst    int
	interval time.Duration

	// mu guards the current window.
	mu struct {
		sync.Mutex
		start    time.Time // when the window opened; zero when none is open
		logged   int       // dead letters logged one by one in the window
		more     int       // dead letters of the window not logged
		byReason map[ingest.Reason]int
		sample   deadLetterEntry // the first of more
	}
}

// deadLetterEntry is what the log says about one dead letter.
type deadLetterEntry struct {
	subject string
	seq     uint64
	poison  *ingest.Error
}

func newDeadLetterLog(log *slog.Logger, burst int, interval time.Duration) *deadLetterLog {
	d := &deadLetterLog{log: log, burst: burst, interval: interval}
	d.mu.byReason = make(map[ingest.Reason]int)
	return d
}

// record logs or counts one dead letter published at now.
func (d *deadLetterLog) record(now time.Time, e deadLetterEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.mu.start.IsZero() && now.Sub(d.mu.start) >= d.interval {
		d.closeWindowLocked(now)
	}
	if d.mu.start.IsZero() {
		d.mu.start = now
	}
	if d.mu.logged < d.burst {
		d.mu.logged++
		d.log.Warn("dead-lettered", "subject", e.subject, "seq", e.seq, "reason", e.poison.Reason, "text", e.poison.Text)
		return
	}
	if d.mu.more == 0 {
		d.mu.sample = e
	}
	d.mu.more++
	d.mu.byReason[e.poison.Reason]++
}

// flush closes the window if it is over at now, or in any case when final
// (the run ends), logging what it did not log.
func (d *deadLetterLog) flush(now time.Time, final bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mu.start.IsZero() || (!final && now.Sub(d.mu.start) < d.interval) {
		return
	}
	d.closeWindowLocked(now)
}

// closeWindowLocked logs the count of the dead letters the window did not
// log, if any, and closes it.
func (d *deadLetterLog) closeWindowLocked(now time.Time) {
	if d.mu.more > 0 {
		in := max(0, now.Sub(d.mu.start)).Round(time.Millisecond)
		var reasons strings.Builder
		for _, r := range ingest.Reasons {
			if n := d.mu.byReason[r]; n > 0 {
				if reasons.Len() > 0 {
					reasons.WriteByte(' ')
				}
				reasons.WriteString(string(r) + "=" + strconv.Itoa(n))
			}
		}
		s := d.mu.sample
		d.log.Warn(fmt.Sprintf("%d more dead letters in the last %s", d.mu.more, in),
			"more", d.mu.more, "in_last", in, "by_reason", reasons.String(),
			"sample_subject", s.subject, "sample_seq", s.seq, "sample_reason", s.poison.Reason, "sample_text", s.poison.Text)
	}
	d.mu.start = time.Time{}
	d.mu.logged, d.mu.more = 0, 0
	clear(d.mu.byReason)
	d.mu.sample = deadLetterEntry{}
}

// flushDeadLetterLog closes the dead-letter log's windows as they end,
// until ctx ends, so that the count of a burst is logged even when no
// dead letter follows it.
func (p *Projector) flushDeadLetterLog(ctx context.Context) error {
	t := time.NewTicker(max(p.cfg.DeadLetterLogInterval/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			p.dlLog.flush(p.cfg.Now(), false)
		}
	}
}
