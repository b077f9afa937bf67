package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/vexil-dev/vexil/projector/ingest"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
	"github.com/vexil-dev/vexil/streams"
)

// Dead-letter header names (docs/ingest.md).
const (
	HeaderReason           = "Vexil-Reason"
	HeaderReasonText       = "Vexil-Reason-Text"
	HeaderOriginalSubject  = "Vexil-Original-Subject"
	HeaderOriginalStream   = "Vexil-Original-Stream"
	HeaderOriginalSequence = "Vexil-Original-Sequence"
)

// ErrRunning is returned by Run when the Projector is already running.
var ErrRunning = errors.New("projector: already running")

// ErrConsumeStopped is returned by Run when the JetStream subscription ends
// on its own (the connection closed, the consumer was deleted).
var ErrConsumeStopped = errors.New("projector: consuming stopped")

// Projector applies the ingest stream to the store. Create it with New and
// run it with Run; one Projector per process and durable consumer.
type Projector struct {
	cfg Config
	log *slog.Logger
	js  jetstream.JetStream
	m   *metrics
	// cache is the person → distinct ids cache of the applier goroutine
	// (nil when disabled), emptied at the start of every run.
	cache *indexCache
	// running is set while Run runs.
	running atomic.Bool
	// held is what the current run holds unacknowledged, kept in
	// progress; each run has its own (set before its goroutines start).
	held *holding
	// dlLog rate-limits the dead-letter log lines.
	dlLog *deadLetterLog
	// merges takes backfill merges to the applier (MergeBackfill).
	merges chan *mergeRequest

	// mu guards the lag tracking: for each batch formed but not yet
	// acknowledged, in order, when the stream stored its oldest message.
	mu struct {
		sync.Mutex
		inflight []time.Time
	}
}

// New checks cfg and registers the metrics. Run starts the work.
func New(cfg Config) (*Projector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("projector: %w", err)
	}
	p := &Projector{cfg: cfg, log: cfg.Logger.With("component", "projector"), js: js, merges: make(chan *mergeRequest)}
	p.dlLog = newDeadLetterLog(p.log, cfg.DeadLetterLogBurst, cfg.DeadLetterLogInterval)
	if cfg.IndexCacheSize > 0 {
		p.cache = newIndexCache(cfg.IndexCacheSize)
	}
	if p.m, err = newMetrics(cfg.Registerer, p.lagSeconds); err != nil {
		return nil, fmt.Errorf("projector: metrics: %w", err)
	}
	return p, nil
}

// item is one delivered message, decoded: env is set for a valid message,
// poison for one that can never be applied.
type item struct {
	msg    jetstream.Msg
	seq    uint64    // stream sequence
	stored time.Time // when the stream stored it
	env    *ingestv1.Envelope
	poison *ingest.Error
}

// batch is the unit of one store write and one acknowledgement. A batch
// with merge set carries a backfill's merge and no items.
type batch struct {
	items []item
	merge *mergeRequest
}

// Run ensures the streams and the durable consumer, then applies batches
// until ctx is cancelled. One Run at a time: a concurrent call returns
// ErrRunning; after it returned, Run may be called again. It returns nil after a cancellation, once every
// goroutine it started has exited; unacknowledged messages are redelivered
// to the next run once AckWait after their last in-progress ack expired.
func (p *Projector) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer p.running.Store(false)
	err := p.run(ctx)
	if ctx.Err() != nil {
		return nil // cancelled: a clean stop, wherever it happened
	}
	return err
}

func (p *Projector) run(ctx context.Context) error {
	cfg := p.cfg
	if p.cache != nil {
		p.cache.reset()
	}
	if _, err := streams.Ensure(ctx, p.js, IngestStreamConfig(cfg.Stream, cfg.Namespace), p.log); err != nil {
		return err
	}
	if _, err := streams.Ensure(ctx, p.js, DeadLetterStreamConfig(cfg.DeadLetterStream, cfg.DeadLetterPrefix), p.log); err != nil {
		return err
	}
	cons, err := p.js.CreateOrUpdateConsumer(ctx, cfg.Stream, jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		Description:   "Vexil projector: applies ingest to the store",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// Every message is acknowledged on its own, after the store write
		// holding it returned (see applyBatch).
		AckPolicy: jetstream.AckExplicitPolicy,
		// Short, so that what a killed run held comes back soon; what a
		// live run holds is kept in progress (keepInProgress).
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: cfg.MaxAckPending,
	})
	if err != nil {
		return fmt.Errorf("projector: consumer %s on %s: %w", cfg.Durable, cfg.Stream, err)
	}

	// A run's own set, so that a late callback of an earlier run's client
	// cannot add a message this run would keep in progress forever.
	held := newHolding()
	p.held = held
	g, gctx := errgroup.WithContext(ctx)
	// delivered: messages handed over by the NATS client, in delivery
	// order. Room for MaxAckPending, the most JetStream has outstanding,
	// so the client's callback does not wait and every delivered message
	// is held (kept in progress) from the moment it arrives.
	delivered := make(chan jetstream.Msg, cfg.MaxAckPending)
	// decoded: batches formed and decoded, waiting for the applier.
	decoded := make(chan *batch, 1)

	cc, err := cons.Consume(func(msg jetstream.Msg) {
		held.add(msg)
		select {
		case delivered <- msg:
		case <-gctx.Done():
		}
	},
		jetstream.PullMaxMessages(min(cfg.MaxAckPending, 2*cfg.BatchSize)),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			p.log.Warn("consume", "err", err)
		}))
	if err != nil {
		return fmt.Errorf("projector: consume: %w", err)
	}
	g.Go(func() error {
		select {
		case <-gctx.Done():
			cc.Stop()
			<-cc.Closed()
			return nil
		case <-cc.Closed():
			return ErrConsumeStopped
		}
	})
	g.Go(func() error { return p.formBatches(gctx, delivered, decoded) })
	g.Go(func() error { return p.applyBatches(gctx, decoded) })
	g.Go(func() error { return p.pollLag(gctx, cons) })
	g.Go(func() error { return p.keepInProgress(gctx) })
	g.Go(func() error { return p.flushDeadLetterLog(gctx) })
	p.log.Info("projector running", "stream", cfg.Stream, "durable", cfg.Durable, "batch_size", cfg.BatchSize)
	err = g.Wait()
	p.dlLog.flush(cfg.Now(), true)
	p.mu.Lock()
	p.mu.inflight = nil
	p.mu.Unlock()
	return err
}

// formBatches takes delivered messages, decodes them and groups them into
// batches of at most BatchSize.
func (p *Projector) formBatches(ctx context.Context, in <-chan jetstream.Msg, out chan<- *batch) error {
	var timer *time.Timer
	for {
		var first jetstream.Msg
		select {
		case <-ctx.Done():
			return nil
		case first = <-in:
		}
		b := &batch{items: make([]item, 0, min(p.cfg.BatchSize, len(in)+1))}
		b.items = append(b.items, p.decode(first))
		var expired <-chan time.Time
		if p.cfg.MaxWait > 0 {
			if timer == nil {
				timer = time.NewTimer(p.cfg.MaxWait)
			} else {
				timer.Reset(p.cfg.MaxWait)
			}
			expired = timer.C
		}
	fill:
		for len(b.items) < p.cfg.BatchSize {
			if expired == nil {
				select {
				case m := <-in:
					b.items = append(b.items, p.decode(m))
				default:
					break fill
				}
				continue
			}
			select {
			case m := <-in:
				b.items = append(b.items, p.decode(m))
			case <-expired:
				break fill
			case <-ctx.Done():
				return nil
			}
		}
		if timer != nil {
			timer.Stop()
		}
		oldest := b.items[0].stored
		for i := range b.items {
			if b.items[i].stored.Before(oldest) {
				oldest = b.items[i].stored // a redelivery
			}
		}
		p.mu.Lock()
		p.mu.inflight = append(p.mu.inflight, oldest)
		p.mu.Unlock()
		select {
		case out <- b:
		case <-ctx.Done():
			return nil
		}
	}
}

// decode turns a delivered message into an item.
func (p *Projector) decode(msg jetstream.Msg) item {
	it := item{msg: msg}
	if md, err := msg.Metadata(); err == nil {
		it.seq, it.stored = md.Sequence.Stream, md.Timestamp
	} else {
		it.stored = p.cfg.Now()
	}
	env, err := ingest.Decode(p.cfg.Namespace, msg.Subject(), msg.Headers().Get(ingest.HeaderContentType), msg.Data(), p.cfg.Limits)
	if err != nil {
		it.poison = asPoison(err)
		return it
	}
	if p.cfg.Teams != nil {
		if team := ingest.Team(env); !p.cfg.Teams.Known(team) {
			it.poison = &ingest.Error{Reason: ingest.ReasonUnknownTeam, Text: "team " + strconv.FormatInt(team, 10) + " is not known"}
			return it
		}
	}
	it.env = env
	return it
}

func asPoison(err error) *ingest.Error {
	var pe *ingest.Error
	if errors.As(err, &pe) {
		return pe
	}
	return &ingest.Error{Reason: ingest.ReasonUndecodable, Text: err.Error()}
}

// applyBatches is the single writer: it applies batches in order and
// acknowledges each after its store write returned.
func (p *Projector) applyBatches(ctx context.Context, in <-chan *batch) error {
	// prepared: a batch with its store writes, handed to the committer.
	// Unbuffered, so at most one batch is prepared ahead of the one being
	// committed: batch k+1 reads the store (through batch k's overlay)
	// while batch k is written.
	prepared := make(chan *preparedBatch)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(prepared)
		var prev *overlay
		for {
			var b *batch
			select {
			case <-gctx.Done():
				return nil
			case b = <-in:
			case m := <-p.merges:
				b = &batch{merge: m}
			}
			start := p.cfg.Now()
			var w *write
			var ov *overlay
			if err := p.retry(gctx, "store read", func() error {
				var err error
				w, ov, err = p.prepare(gctx, b, prev)
				return err
			}); err != nil {
				return nil // cancelled
			}
			select {
			case prepared <- &preparedBatch{b: b, w: w, start: start}:
			case <-gctx.Done():
				return nil
			}
			prev = ov
		}
	})
	g.Go(func() error {
		for pb := range prepared {
			if err := p.commitBatch(gctx, pb); err != nil {
				return nil // cancelled
			}
		}
		return nil
	})
	return g.Wait()
}

// preparedBatch is a batch whose store writes are ready.
type preparedBatch struct {
	b     *batch
	w     *write
	start time.Time
}

// commitBatch dead-letters the poison of a prepared batch, writes it
// durably and acknowledges its messages. It returns an error only when ctx
// ended first.
func (p *Projector) commitBatch(ctx context.Context, pb *preparedBatch) error {
	b, w, start := pb.b, pb.w, pb.start
	var poison []*item
	for i := range b.items {
		if b.items[i].poison != nil {
			poison = append(poison, &b.items[i])
		}
	}
	if len(poison) > 0 {
		if err := p.retry(ctx, "dead-letter publish", func() error { return p.deadLetter(ctx, poison) }); err != nil {
			return err
		}
	}
	if err := p.retry(ctx, "store write", func() error { return p.commit(ctx, w) }); err != nil {
		return err
	}
	if p.cfg.OnCommit != nil {
		c := w.committed()
		if len(c.Rows) > 0 || len(c.Groups) > 0 {
			if err := p.retry(ctx, "commit hook", func() error { return p.cfg.OnCommit(ctx, c) }); err != nil {
				return err
			}
		}
	}
	// Acknowledge each message: explicit acks, because a batch may sit
	// beside messages of an earlier (killed) run that are still pending
	// redelivery, which a cumulative ack would wrongly cover. Poison is
	// terminated: it is on the dead-letter subject and must not come back.
	// The batch is durable, so a lost ack only means a harmless redelivery.
	for i := range b.items {
		it := &b.items[i]
		var err error
		if it.poison != nil {
			err = it.msg.TermWithReason(string(it.poison.Reason))
		} else {
			err = it.msg.Ack()
		}
		if err != nil {
			p.log.Warn("ack", "seq", it.seq, "err", err)
			break
		}
	}
	// Unacknowledged after an error, the messages are no longer kept in
	// progress either: JetStream redelivers them after AckWait.
	p.held.release(b.items)
	if b.merge != nil {
		b.merge.done <- nil // buffered: the requester may have gone
		return nil
	}
	p.mu.Lock()
	if len(p.mu.inflight) > 0 {
		p.mu.inflight = p.mu.inflight[1:]
	}
	p.mu.Unlock()

	for i := range b.items {
		it := &b.items[i]
		if it.poison != nil {
			p.m.deadLettered.WithLabelValues(string(it.poison.Reason)).Inc()
		} else {
			p.m.applied.WithLabelValues(kindLabel(it.env)).Inc()
		}
	}
	p.m.batchSize.Observe(float64(len(b.items)))
	p.m.batchSeconds.Observe(p.cfg.Now().Sub(start).Seconds())
	return nil
}

// retry runs f until it succeeds or ctx ends, backing off between failures.
func (p *Projector) retry(ctx context.Context, what string, f func() error) error {
	backoff := p.cfg.RetryBackoff
	for {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.m.storeErrors.Inc()
		p.log.Error(what+" failed; retrying", "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// deadLetter publishes the poison items to their dead-letter subjects and
// waits for every JetStream ack.
func (p *Projector) deadLetter(ctx context.Context, items []*item) error {
	futures := make([]jetstream.PubAckFuture, 0, len(items))
	for _, it := range items {
		m := nats.NewMsg(p.cfg.DeadLetterPrefix + it.msg.Subject())
		m.Data = it.msg.Data()
		if ct := it.msg.Headers().Get(ingest.HeaderContentType); ct != "" {
			m.Header.Set(ingest.HeaderContentType, ct)
		}
		m.Header.Set(HeaderReason, string(it.poison.Reason))
		m.Header.Set(HeaderReasonText, it.poison.Text)
		m.Header.Set(HeaderOriginalSubject, it.msg.Subject())
		m.Header.Set(HeaderOriginalStream, p.cfg.Stream)
		m.Header.Set(HeaderOriginalSequence, strconv.FormatUint(it.seq, 10))
		// A redelivered poison message is dead-lettered once.
		m.Header.Set(jetstream.MsgIDHeader, p.cfg.Stream+":"+strconv.FormatUint(it.seq, 10))
		f, err := p.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("projector: dead-letter %s: %w", m.Subject, err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("projector: dead-letter %s: %w", f.Msg().Subject, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	now := p.cfg.Now()
	for _, it := range items {
		p.dlLog.record(now, deadLetterEntry{subject: it.msg.Subject(), seq: it.seq, poison: it.poison})
	}
	return nil
}

// pollLag refreshes vexil_projector_lag_messages from the consumer's state.
func (p *Projector) pollLag(ctx context.Context, cons jetstream.Consumer) error {
	t := time.NewTicker(p.cfg.LagInterval)
	defer t.Stop()
	for {
		if info, err := cons.Info(ctx); err == nil {
			p.m.lagMessages.Set(float64(info.NumPending) + float64(info.NumAckPending))
		} else if ctx.Err() == nil {
			p.log.Warn("consumer info", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// lagSeconds is the age of the oldest message of the batches not yet
// acknowledged.
func (p *Projector) lagSeconds() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.mu.inflight) == 0 {
		return 0
	}
	oldest := p.mu.inflight[0]
	for _, t := range p.mu.inflight[1:] {
		if t.Before(oldest) {
			oldest = t
		}
	}
	return max(0, p.cfg.Now().Sub(oldest).Seconds())
}

func kindLabel(env *ingestv1.Envelope) string {
	switch env.GetKind().(type) {
	case *ingestv1.Envelope_PersonUpdate:
		return ingest.TypePersonUpdate
	case *ingestv1.Envelope_PersonMerge:
		return ingest.TypePersonMerge
	case *ingestv1.Envelope_PersonDelete:
		return ingest.TypePersonDelete
	case *ingestv1.Envelope_GroupUpdate:
		return ingest.TypeGroupUpdate
	case *ingestv1.Envelope_GroupTypeMapping:
		return ingest.TypeGroupTypeMapping
	case *ingestv1.Envelope_Event:
		return ingest.TypeEvent
	}
	return "unknown"
}
