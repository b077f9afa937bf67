package mcpsvc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/signals"
	"github.com/vexil-dev/vexil/store"
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
	cfg    InboxConfig
	st     store.InboxStore
	js     jetstream.JetStream // nil: read only (a stopped server's data directory)
	ns     namespace.Name
	stream jetstream.Stream
	log    *slog.Logger

	// copying is set while Run runs: reads then wait for the copy to
	// catch up (catchUp) once Run has its consumer.
	copying atomic.Bool
	// consumer is Run's durable consumer, once created.
	consumer atomic.Pointer[jetstream.Consumer]

	// mu guards pending.
	mu      sync.Mutex
	pending map[int64]pendingCount
}

// InboxConfig configures an Inbox.
type InboxConfig struct {
	// Store keeps the inbox's signals, acknowledged positions and finding
	// ids (required).
	Store store.InboxStore
	// JetStream is where signals flow; nil opens the inbox read only
	// (signals_list, signals_ack and the pending note answer from Store,
	// Append is unavailable and Run copies nothing).
	JetStream jetstream.JetStream
	// Namespace on NATS.
	Namespace namespace.Name
	// StoreID identifies Store (a ScyllaDB keyspace, a Pebble directory on
	// a host): the nodes that share a store share the durable consumer that
	// copies the stream into it, and a node with its own store has its own.
	// Default "default".
	StoreID string
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Now is the clock of retention; default time.Now.
	Now func() time.Time
}

// Validate checks the Config.
func (c InboxConfig) Validate() error {
	if c.Store == nil {
		return errors.New("mcpsvc: InboxConfig.Store is required")
	}
	return nil
}

// InboxNames are the inbox's names on NATS in ns: the stream
// ("VEXIL_INBOX" in namespace.Default) and the durable consumer that
// copies it into the store identified by storeID.
func InboxNames(ns namespace.Name, storeID string) (stream, consumer string) {
	if storeID == "" {
		storeID = "default"
	}
	sum := sha256.Sum256([]byte(storeID))
	return ns.Stream("INBOX"), "inbox_store_" + hex.EncodeToString(sum[:8])
}

// FindingSubject is the subject Append publishes team's findings on:
// vexil.signals.<team>.finding in namespace.Default.
func FindingSubject(ns namespace.Name, team int64) string {
	return ns.Subject("signals", strconv.FormatInt(team, 10), "finding")
}

// OpenInbox opens the inbox on cfg.Store and, with JetStream, creates the
// inbox stream when missing. The stream captures rollout signals and
// findings and sources the cohort signal stream (signals.Ensure creates it
// if needed), whose subjects it cannot also capture.
func OpenInbox(ctx context.Context, cfg InboxConfig) (*Inbox, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	in := &Inbox{cfg: cfg, st: cfg.Store, js: cfg.JetStream, ns: cfg.Namespace, log: cfg.Logger, pending: map[int64]pendingCount{}}
	if in.js == nil {
		return in, nil
	}
	if _, err := signals.Ensure(ctx, in.js, in.ns, in.log); err != nil {
		return nil, err
	}
	name, _ := InboxNames(in.ns, cfg.StoreID)
	st, err := streams.Ensure(ctx, in.js, jetstream.StreamConfig{Name: name, Description: "Vexil per-team signal inbox (MCP)",
		Subjects: []string{in.ns.Subject("signals", "*", "rollout"), in.ns.Subject("signals", "*", "finding")},
		Sources:  []*jetstream.StreamSource{{Name: signals.NamesOf(in.ns).Stream}},
		Storage:  jetstream.FileStorage, Retention: jetstream.LimitsPolicy, MaxAge: InboxMaxAge, Duplicates: 2 * time.Minute}, in.log)
	if err != nil {
		return nil, fmt.Errorf("mcpsvc: inbox: %w", err)
	}
	in.stream = st
	if err := in.importLegacy(ctx); err != nil {
		return nil, fmt.Errorf("mcpsvc: inbox: import %s: %w", legacyBucket(in.ns), err)
	}
	return in, nil
}

// legacyBucket is the key-value bucket earlier versions kept the
// acknowledged positions and AppendOnce's finding ids in
// ("vexil_signal_acks").
func legacyBucket(ns namespace.Name) string { return ns.Bucket("signal_acks") }

// importLegacy copies the legacy bucket's acknowledged positions (keys
// "<team>") and finding ids ("finding.<team>.<id>") into the store. The
// cursors are the same stream sequences, and both writes are idempotent
// (a position only moves forward), so every start may import again; an
// operator deletes the bucket once every store has imported it.
func (in *Inbox) importLegacy(ctx context.Context) error {
	kv, err := in.js.KeyValue(ctx, legacyBucket(in.ns))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = keys.Stop() }()
	expires := in.cfg.Now().Add(InboxMaxAge).Unix()
	acks, findings := 0, 0
	for key := range keys.Keys() {
		if rest, ok := strings.CutPrefix(key, "finding."); ok {
			teamStr, id, ok := strings.Cut(rest, ".")
			team, err := strconv.ParseInt(teamStr, 10, 64)
			if !ok || err != nil || store.ValidFindingID(id) != nil {
				continue // not written by an earlier AppendOnce
			}
			if err := in.st.PutFinding(ctx, team, id); err != nil {
				return err
			}
			findings++
			continue
		}
		team, err := strconv.ParseInt(key, 10, 64)
		if err != nil {
			continue
		}
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		seq, err := strconv.ParseUint(string(e.Value()), 10, 64)
		if err != nil || seq == 0 || seq > math.MaxInt64 {
			continue
		}
		if err := in.st.AckSignals(ctx, team, seq, expires); err != nil {
			return err
		}
		acks++
	}
	if acks+findings > 0 {
		in.log.Info("inbox: imported the legacy acknowledgement bucket", "bucket", legacyBucket(in.ns), "positions", acks, "findings", findings)
	}
	return nil
}

// ReadOnly reports an inbox without JetStream: it answers from the store,
// takes acknowledgements, and adds no signal.
func (in *Inbox) ReadOnly() bool { return in.js == nil }

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

// Append adds a finding to its team's inbox, durably: it returns after
// JetStream stored it and the store holds its copy (so the next
// signals_list shows it, whether or not Run is copying).
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
	if in.js == nil {
		return errcode.New(errcode.Unavailable, "adding a finding needs NATS JetStream, which this inbox does not have")
	}
	var opts []jetstream.PublishOpt
	if f.ID != "" {
		opts = append(opts, jetstream.WithMsgID(f.ID))
	}
	ack, err := in.js.Publish(ctx, FindingSubject(in.ns, f.Team), data, opts...)
	if err != nil {
		return err
	}
	defer in.Touch(f.Team)
	if ack.Duplicate {
		return nil // the first Append of the id stored it
	}
	// The stored message, not data and the local time: Run copies the same
	// message, and both copies must be the same row.
	m, err := in.stream.GetMsg(ctx, ack.Sequence)
	if err != nil {
		return fmt.Errorf("mcpsvc: inbox: read back finding: %w", err)
	}
	sig, ok := in.signalOf(m.Sequence, m.Time, m.Subject, m.Data)
	if !ok {
		return fmt.Errorf("mcpsvc: inbox: finding stored on %q", m.Subject)
	}
	return in.st.PutSignals(ctx, []store.Signal{sig})
}

// signalOf turns a message of the inbox stream into a store row; ok is
// false for a subject without a team.
func (in *Inbox) signalOf(seq uint64, at time.Time, subject string, data []byte) (store.Signal, bool) {
	rest, found := strings.CutPrefix(subject, in.ns.Subject("signals")+".")
	if !found {
		return store.Signal{}, false
	}
	i := strings.IndexByte(rest, '.')
	if i < 0 {
		return store.Signal{}, false
	}
	team, err := strconv.ParseInt(rest[:i], 10, 64)
	if err != nil || team <= 0 {
		return store.Signal{}, false
	}
	return store.Signal{Team: team, Seq: seq, Subject: subject, At: at.UnixNano(), Data: data,
		ExpiresAt: at.Add(InboxMaxAge).Unix()}, true
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

// Acked returns the position up to which team acknowledged.
func (in *Inbox) Acked(ctx context.Context, team int64) (uint64, error) {
	return in.st.AckedSignals(ctx, team)
}

// copyBatch bounds the signals stored at once.
const copyBatch = 256

// copierIdle is how long a consumer of a store no node copies into any
// more (a node gone for good) is kept; a store that comes back later is
// copied the whole stream again, which the upserts make harmless.
const copierIdle = 7 * 24 * time.Hour

// Run copies the inbox stream into the store through the store's durable
// consumer, acknowledging each message after the store holds it (a
// message whose copy failed is delivered again), and sweeps expired
// signals hourly. Every node may run it: the copies are idempotent. It
// returns when ctx ends; at once without JetStream.
func (in *Inbox) Run(ctx context.Context) error {
	if in.js == nil {
		<-ctx.Done()
		return nil
	}
	in.copying.Store(true)
	defer in.copying.Store(false)
	in.sweep(ctx)
	lastSweep := time.Now()
	for ctx.Err() == nil {
		err := in.copyAll(ctx, func() {
			if time.Since(lastSweep) >= time.Hour {
				in.sweep(ctx)
				lastSweep = time.Now()
			}
		})
		if err != nil && ctx.Err() == nil {
			in.log.Warn("inbox: copy signals into the store", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// copyAll (re)creates the store's durable consumer and copies what it
// delivers until an error or the end of ctx; between batches it calls
// between.
func (in *Inbox) copyAll(ctx context.Context, between func()) error {
	_, durable := InboxNames(in.ns, in.cfg.StoreID)
	c, err := in.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: durable,
		Description:   "Vexil: copies the signal inbox into the store",
		DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second,
		MaxAckPending: 4 * copyBatch, InactiveThreshold: copierIdle})
	if err != nil {
		return fmt.Errorf("create the copying consumer: %w", err)
	}
	in.consumer.Store(&c)
	it, err := c.Messages(jetstream.PullMaxMessages(copyBatch))
	if err != nil {
		return err
	}
	defer it.Stop()
	for ctx.Err() == nil {
		if err := in.copyNext(ctx, it); err != nil {
			return err
		}
		between()
	}
	return nil
}

// copyNext waits for a message, takes what else is there at once (up to
// copyBatch), stores them and acknowledges them.
func (in *Inbox) copyNext(ctx context.Context, it jetstream.MessagesContext) error {
	// A bounded wait, so that the hourly sweep runs on an idle stream.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	m, err := it.Next(jetstream.NextContext(wctx))
	cancel()
	if err != nil {
		if wctx.Err() != nil {
			return nil
		}
		return err
	}
	msgs := []jetstream.Msg{m}
	for len(msgs) < copyBatch {
		m, err := it.Next(jetstream.NextMaxWait(5 * time.Millisecond))
		if err != nil {
			break // none at once: store what came
		}
		msgs = append(msgs, m)
	}
	var sigs []store.Signal
	for _, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		if sig, ok := in.signalOf(md.Sequence.Stream, md.Timestamp, m.Subject(), m.Data()); ok {
			sigs = append(sigs, sig)
		}
	}
	if err := in.st.PutSignals(ctx, sigs); err != nil {
		for _, m := range msgs {
			_ = m.Nak()
		}
		return err
	}
	for _, m := range msgs {
		_ = m.Ack()
	}
	for _, sig := range sigs {
		in.Touch(sig.Team)
	}
	return nil
}

func (in *Inbox) sweep(ctx context.Context) {
	if n, err := in.st.SweepSignals(ctx, in.cfg.Now()); err != nil {
		in.log.Warn("inbox: sweep expired signals", "err", err)
	} else if n > 0 {
		in.log.Info("inbox: swept expired signals", "signals", n)
	}
}

// catchUpWait bounds how long a read waits for Run's copy.
const catchUpWait = 2 * time.Second

// catchUp waits, while Run copies, until the consumer has nothing pending,
// so that a signal stored on the stream before the call is in the answer.
// Past catchUpWait (the store slow, NATS away) the store answers as it is.
func (in *Inbox) catchUp(ctx context.Context) {
	cp := in.consumer.Load()
	if cp == nil || !in.copying.Load() {
		return // Run is not copying (yet): nothing to wait for
	}
	ctx, cancel := context.WithTimeout(ctx, catchUpWait)
	defer cancel()
	for {
		info, err := (*cp).Info(ctx)
		if err != nil || info.NumPending == 0 && info.NumAckPending == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
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
// so that the note on every tool answer costs no store read.
func (in *Inbox) Pending(ctx context.Context, team int64) (uint64, error) {
	in.mu.Lock()
	p, ok := in.pending[team]
	in.mu.Unlock()
	if ok && time.Since(p.at) < pendingTTL {
		return p.n, nil
	}
	in.catchUp(ctx)
	acked, err := in.Acked(ctx, team)
	if err != nil {
		return 0, err
	}
	n, err := in.st.CountSignals(ctx, team, acked)
	if err != nil {
		return 0, err
	}
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
	in.catchUp(ctx)
	if cursor == 0 {
		acked, err := in.Acked(ctx, team)
		if err != nil {
			return nil, false, err
		}
		cursor = acked
	}
	sigs, more, err := in.st.ListSignals(ctx, team, cursor, limit)
	if err != nil {
		return nil, false, err
	}
	now := in.cfg.Now()
	var out []Entry
	for _, sg := range sigs {
		if sg.Expired(now) {
			continue // past the retention, not swept yet
		}
		out = append(out, entryOf(sg.Seq, time.Unix(0, sg.At), sg.Subject, sg.Data))
	}
	return out, more, nil
}

// Ack acknowledges team's signals up to cursor (a later position never
// moves back) and returns the acknowledged position.
func (in *Inbox) Ack(ctx context.Context, team int64, cursor uint64) (uint64, error) {
	if cursor > math.MaxInt64 {
		return 0, errcode.Field(errcode.InvalidArgument, "cursor", "cursor is out of range")
	}
	// The acknowledgement is kept as long as the signals it covers.
	if err := in.st.AckSignals(ctx, team, cursor, in.cfg.Now().Add(InboxMaxAge).Unix()); err != nil {
		return 0, err
	}
	in.Touch(team)
	return in.Acked(ctx, team)
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
