package precompute

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/precompute/results"
)

// RunState is a team's latest run: the checkpoint a resumed scan starts
// from, and its progress. It is stored in Names.RunBucket under the team id.
type RunState struct {
	ID   string `json:"id"`
	Team int64  `json:"team"`
	// Fingerprint is the plan's (results.Plan.Fingerprint) the run
	// computes; Stamps are its flags' stamps and subjects, which the next
	// run compares against to know what changed.
	Fingerprint uint64                       `json:"fingerprint"`
	Stamps      map[string]results.FlagStamp `json:"stamps,omitempty"`
	// Flags are the flags to recompute; nil means all of them.
	Flags  []string `json:"flags"`
	Reason string   `json:"reason,omitempty"`

	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`

	// Subjects are scanned in order: results.Persons, then group types.
	Subjects []int `json:"subjects"`
	// ScanSubject indexes Subjects; ScanCursor is the store cursor of the
	// next page to publish within it.
	ScanSubject int    `json:"scan_subject"`
	ScanCursor  string `json:"scan_cursor,omitempty"`
	ScanDone    bool   `json:"scan_done"`

	Pages     int   `json:"pages"`
	PagesDone int   `json:"pages_done"`
	RowsTotal int64 `json:"rows_total"` // rows published in pages so far (the total once ScanDone)
	RowsDone  int64 `json:"rows_done"`
	// RowsExpected estimates the total while scanning: the previous run's.
	RowsExpected int64 `json:"rows_expected,omitempty"`
	// Done is a bitmap of the pages computed, by page Seq: a page computed
	// twice (its message redelivered after a worker died between writing
	// and acking) counts once. 1M rows in pages of 500 take 250 bytes.
	Done []byte `json:"done,omitempty"`
}

// markPageDone records page seq as computed; false when it already was.
func (s *RunState) markPageDone(seq int) bool {
	if seq < 0 {
		return false
	}
	i, bit := seq/8, byte(1)<<(seq%8)
	if i >= len(s.Done) {
		s.Done = append(s.Done, make([]byte, i+1-len(s.Done))...)
	}
	if s.Done[i]&bit != 0 {
		return false
	}
	s.Done[i] |= bit
	return true
}

// Finished reports whether every page of the run is done.
func (s *RunState) Finished() bool { return !s.FinishedAt.IsZero() }

// Progress is a run's progress for logs and the management API.
type Progress struct {
	RowsDone, RowsTotal int64
	// RowsPerSecond is the average rate since the run started.
	RowsPerSecond float64
	// ETA is the estimated time left; zero when finished or unknown.
	ETA time.Duration
}

// Progress computes the run's progress at now.
func (s *RunState) Progress(now time.Time) Progress {
	p := Progress{RowsDone: s.RowsDone, RowsTotal: s.RowsTotal}
	if !s.ScanDone && s.RowsExpected > p.RowsTotal {
		p.RowsTotal = s.RowsExpected
	}
	end := now
	if s.Finished() {
		end = s.FinishedAt
	}
	if el := end.Sub(s.StartedAt).Seconds(); el > 0 {
		p.RowsPerSecond = float64(s.RowsDone) / el
	}
	if !s.Finished() && p.RowsPerSecond > 0 && p.RowsTotal > p.RowsDone {
		p.ETA = time.Duration(float64(p.RowsTotal-p.RowsDone) / p.RowsPerSecond * float64(time.Second))
	}
	return p
}

// runs wraps the run-state bucket.
type runs struct{ kv jetstream.KeyValue }

func runKey(team int64) string { return strconv.FormatInt(team, 10) }

// get returns the team's state and its revision; nil and 0 when none.
func (r runs) get(ctx context.Context, team int64) (*RunState, uint64, error) {
	e, err := r.kv.Get(ctx, runKey(team))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("precompute: read run state of team %d: %w", team, err)
	}
	var s RunState
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return nil, 0, fmt.Errorf("precompute: run state of team %d: %w", team, err)
	}
	return &s, e.Revision(), nil
}

// put writes s if the stored revision is still rev (0: absent). It returns
// false on a lost race.
func (r runs) put(ctx context.Context, s *RunState, rev uint64) (bool, error) {
	data, err := json.Marshal(s)
	if err != nil {
		return false, err
	}
	if rev == 0 {
		_, err = r.kv.Create(ctx, runKey(s.Team), data)
	} else {
		_, err = r.kv.Update(ctx, runKey(s.Team), data, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("precompute: write run state of team %d: %w", s.Team, err)
	}
	return true, nil
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// update applies fn to the state of run id with compare-and-set retries.
// fn returns false to write nothing. It returns the state written (or
// read), or nil when the team's state is now another run's.
func (r runs) update(ctx context.Context, team int64, id string, fn func(*RunState) bool) (*RunState, error) {
	for {
		s, rev, err := r.get(ctx, team)
		if err != nil {
			return nil, err
		}
		if s == nil || s.ID != id {
			return nil, nil
		}
		if !fn(s) {
			return s, nil
		}
		ok, err := r.put(ctx, s, rev)
		if err != nil {
			return nil, err
		}
		if ok {
			return s, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// Status returns a team's latest run state, or nil when it has none. The
// management API calls it.
func Status(ctx context.Context, js jetstream.JetStream, ns namespace.Name, team int64) (*RunState, error) {
	kv, err := js.KeyValue(ctx, NamesOf(ns).RunBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("precompute: run bucket: %w", err)
	}
	s, _, err := runs{kv}.get(ctx, team)
	return s, err
}
