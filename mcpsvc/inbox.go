package mcpsvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/signals"
	"github.com/vexil-dev/vexil/streams"
)

// Inbox bounds.
const (
	// MaxSignalsPage bounds one signals_list page.
	MaxSignalsPage = 100
	// MaxFindingBytes bounds one finding added through Append.
	MaxFindingBytes = 16 << 10
	// InboxMaxAge is how long the inbox keeps a signal.
	InboxMaxAge = 30 * 24 * time.Hour
)

// Signal kinds of the inbox. A finding added through Append carries its
// own kind (stale_flag, evaluation_anomaly ...).
const (
	KindRollout = "rollout"
	KindCohort  = "cohort"
)

// Inbox is the durable per-team signal inbox (package doc, "Signals").
type Inbox struct {
	js     jetstream.JetStream
	ns     namespace.Name
	stream jetstream.Stream
	acks   jetstream.KeyValue

	mu      sync.Mutex
	pending map[int64]pendingCount
}

// InboxNames are the inbox's names on NATS in ns: the stream
// ("VEXIL_INBOX" in namespace.Default) and the acknowledgement bucket
// ("vexil_signal_acks").
func InboxNames(ns namespace.Name) (stream, bucket string) {
	return ns.Stream("INBOX"), ns.Bucket("signal_acks")
}

// FindingSubject is the subject Append publishes team's findings on:
// vexil.signals.<team>.finding in namespace.Default.
func FindingSubject(ns namespace.Name, team int64) string {
	return ns.Subject("signals", strconv.FormatInt(team, 10), "finding")
}

// OpenInbox creates the inbox stream and bucket when missing. The stream
// captures rollout signals and findings and sources the cohort signal
// stream (signals.Ensure creates it if needed), whose subjects it cannot
// also capture.
func OpenInbox(ctx context.Context, js jetstream.JetStream, ns namespace.Name, log *slog.Logger) (*Inbox, error) {
	if log == nil {
		log = slog.Default()
	}
	if _, err := signals.Ensure(ctx, js, ns, log); err != nil {
		return nil, err
	}
	name, bucket := InboxNames(ns)
	st, err := streams.Ensure(ctx, js, jetstream.StreamConfig{Name: name, Description: "Vexil per-team signal inbox (MCP)",
		Subjects: []string{ns.Subject("signals", "*", "rollout"), ns.Subject("signals", "*", "finding")},
		Sources:  []*jetstream.StreamSource{{Name: signals.NamesOf(ns).Stream}},
		Storage:  jetstream.FileStorage, Retention: jetstream.LimitsPolicy, MaxAge: InboxMaxAge, Duplicates: 2 * time.Minute}, log)
	if err != nil {
		return nil, fmt.Errorf("mcpsvc: inbox: %w", err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, Description: "Vexil signal inbox: acknowledged position per team",
		Storage: jetstream.FileStorage, History: 1})
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.KeyValue(ctx, bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("mcpsvc: inbox bucket %s: %w", bucket, err)
	}
	return &Inbox{js: js, ns: ns, stream: st, acks: kv, pending: map[int64]pendingCount{}}, nil
}

// Finding is a signal added through Append: a stale flag, an evaluation
// anomaly, anything a detector finds about a team's flags.
type Finding struct {
	Team int64 `json:"team_id"`
	// Kind names the finding: stale_flag, evaluation_anomaly ...
	Kind string `json:"kind"`
	// FlagKey is the flag concerned, if any.
	FlagKey string `json:"flag_key,omitempty"`
	// Summary is one line for an agent to read.
	Summary string          `json:"summary"`
	At      time.Time       `json:"at"`
	Data    json.RawMessage `json:"data,omitempty"`
	// ID, when set, deduplicates (the JetStream message id): a detector
	// that reports the same finding twice within two minutes adds one.
	ID string `json:"id,omitempty"`
}

// Append adds a finding to its team's inbox, durably (it returns after
// JetStream stored it).
func (in *Inbox) Append(ctx context.Context, f Finding) error {
	if f.Team <= 0 || f.Kind == "" || f.Summary == "" {
		return errcode.New(errcode.InvalidArgument, "a finding needs team_id, kind and summary")
	}
	data, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if len(data) > MaxFindingBytes {
		return errcode.Field(errcode.InvalidArgument, "data", "a finding is at most %d bytes", MaxFindingBytes)
	}
	var opts []jetstream.PublishOpt
	if f.ID != "" {
		opts = append(opts, jetstream.WithMsgID(f.ID))
	}
	_, err = in.js.Publish(ctx, FindingSubject(in.ns, f.Team), data, opts...)
	in.Touch(f.Team)
	return err
}

// Entry is one signal of a team's inbox as signals_list shows it.
type Entry struct {
	// Cursor is the signal's position; signals_ack acknowledges up to it.
	Cursor  uint64          `json:"cursor"`
	Kind    string          `json:"kind"`
	At      time.Time       `json:"at"`
	Summary string          `json:"summary"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (in *Inbox) filter(team int64) string {
	return in.ns.Subject("signals", strconv.FormatInt(team, 10), "*")
}

// Acked returns the position up to which team acknowledged.
func (in *Inbox) Acked(ctx context.Context, team int64) (uint64, uint64, error) {
	e, err := in.acks.Get(ctx, strconv.FormatInt(team, 10))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	n, err := strconv.ParseUint(string(e.Value()), 10, 64)
	return n, e.Revision(), err
}

// consumer opens an ephemeral consumer of team's signals after after;
// done deletes it (and the server drops a forgotten one after a minute).
func (in *Inbox) consumer(ctx context.Context, team int64, after uint64) (jetstream.Consumer, func(), error) {
	cfg := jetstream.ConsumerConfig{FilterSubjects: []string{in.filter(team)}, DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute, MemoryStorage: true}
	if after > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	}
	c, err := in.stream.CreateConsumer(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	name := c.CachedInfo().Name
	return c, func() { _ = in.stream.DeleteConsumer(context.WithoutCancel(ctx), name) }, nil
}

// pendingTTL bounds how long a pending count is reused while no signal
// of the team was seen (another node's acknowledgement is seen that late).
const pendingTTL = 2 * time.Second

type pendingCount struct {
	n  uint64
	at time.Time
}

// Pending counts team's unacknowledged signals. The count is reused until
// a signal of the team arrives (Touch), an acknowledgement, or pendingTTL,
// so that the note on every tool answer costs no JetStream call.
func (in *Inbox) Pending(ctx context.Context, team int64) (uint64, error) {
	in.mu.Lock()
	p, ok := in.pending[team]
	in.mu.Unlock()
	if ok && time.Since(p.at) < pendingTTL {
		return p.n, nil
	}
	acked, _, err := in.Acked(ctx, team)
	if err != nil {
		return 0, err
	}
	c, done, err := in.consumer(ctx, team, acked)
	if err != nil {
		return 0, err
	}
	defer done()
	n := c.CachedInfo().NumPending
	in.mu.Lock()
	if len(in.pending) >= maxPendingTeams {
		clear(in.pending)
	}
	in.pending[team] = pendingCount{n: n, at: time.Now()}
	in.mu.Unlock()
	return n, nil
}

// maxPendingTeams bounds the cached counts.
const maxPendingTeams = 10000

// Touch forgets team's cached pending count: a signal arrived.
func (in *Inbox) Touch(team int64) {
	in.mu.Lock()
	delete(in.pending, team)
	in.mu.Unlock()
}

// List returns up to limit of team's signals after cursor (0: after the
// acknowledged position), and whether more follow.
func (in *Inbox) List(ctx context.Context, team int64, cursor uint64, limit int) ([]Entry, bool, error) {
	if limit <= 0 || limit > MaxSignalsPage {
		limit = MaxSignalsPage
	}
	if cursor == 0 {
		acked, _, err := in.Acked(ctx, team)
		if err != nil {
			return nil, false, err
		}
		cursor = acked
	}
	c, done, err := in.consumer(ctx, team, cursor)
	if err != nil {
		return nil, false, err
	}
	defer done()
	info := c.CachedInfo()
	n := min(int(info.NumPending), limit)
	if n == 0 {
		return nil, false, nil
	}
	batch, err := c.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		return nil, false, err
	}
	var out []Entry
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			return nil, false, err
		}
		out = append(out, entryOf(md.Sequence.Stream, md.Timestamp, m.Subject(), m.Data()))
	}
	if err := batch.Error(); err != nil && len(out) == 0 {
		return nil, false, err
	}
	return out, int(info.NumPending) > len(out), nil
}

// Ack acknowledges team's signals up to cursor (a later position never
// moves back).
func (in *Inbox) Ack(ctx context.Context, team int64, cursor uint64) (uint64, error) {
	for range 8 {
		acked, rev, err := in.Acked(ctx, team)
		if err != nil {
			return 0, err
		}
		if cursor <= acked {
			return acked, nil
		}
		val := []byte(strconv.FormatUint(cursor, 10))
		key := strconv.FormatInt(team, 10)
		if rev == 0 {
			_, err = in.acks.Create(ctx, key, val)
		} else {
			_, err = in.acks.Update(ctx, key, val, rev)
		}
		if err == nil {
			in.Touch(team)
			return cursor, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return 0, err
		}
	}
	return 0, errcode.New(errcode.Conflict, "signals_ack raced with another acknowledgement; retry")
}

// entryOf turns a stored signal into an Entry with a one-line summary.
func entryOf(seq uint64, at time.Time, subject string, data []byte) Entry {
	e := Entry{Cursor: seq, At: at.UTC(), Data: json.RawMessage(data)}
	if !json.Valid(data) {
		e.Data = nil
	}
	switch {
	case hasSuffix(subject, ".rollout"):
		var r admin.RolloutSignal
		_ = json.Unmarshal(data, &r)
		e.Kind = KindRollout
		name := r.Key
		if name == "" {
			name = r.ID
		}
		e.Summary = fmt.Sprintf("%s %s %s %s (version %d)", r.Actor, r.Op, r.Kind, name, r.Version)
		if !r.At.IsZero() {
			e.At = r.At
		}
	case hasSuffix(subject, ".cohort"):
		var s signals.Signal
		_ = json.Unmarshal(data, &s)
		e.Kind = KindCohort
		who := s.DistinctID
		if s.GroupKey != "" {
			who = s.GroupType + " " + s.GroupKey // a group's signal
		}
		e.Summary = fmt.Sprintf("%s %s cohort %d (%s)", who, s.Direction, s.Cohort, s.Cause)
		if !s.Time.IsZero() {
			e.At = s.Time
		}
	default:
		var f Finding
		_ = json.Unmarshal(data, &f)
		e.Kind, e.Summary = f.Kind, f.Summary
		if !f.At.IsZero() {
			e.At = f.At
		}
	}
	return e
}

func hasSuffix(s, suffix string) bool {
	return len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix
}
