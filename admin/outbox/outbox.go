// Package outbox is a durable queue of messages to publish: the management
// API's change notices and rollout signals are written to it with the change
// and sent by Run, so a write answers at once while NATS is away and its
// notices go out when NATS is back, also after a restart.
//
// # Delivery
//
// Publish appends a message to a Pebble database (a synced write) and
// returns; Run sends the messages in the order they were appended through
// the Sender, removing each once sent, and retries the oldest with a backoff
// while sending fails. A message may be sent more than once (a crash
// between sending and removing it): notices are idempotent refreshes, so
// at-least-once is the contract.
//
// # Bounds
//
// The queue holds at most MaxMessages messages of at most MaxMessageBytes
// each; Publish refuses more with ErrFull or ErrTooLarge.
package outbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// Sender sends one message; admin.NATSPublisher is one.
type Sender interface {
	Publish(ctx context.Context, subject string, data []byte) error
}

// Errors of Publish.
var (
	// ErrFull: the queue holds MaxMessages messages.
	ErrFull = errors.New("outbox: full")
	// ErrTooLarge: the subject and payload exceed MaxMessageBytes, or the
	// subject is empty.
	ErrTooLarge = errors.New("outbox: message too large")
	// ErrClosed: Close was called.
	ErrClosed = errors.New("outbox: closed")
)

// Config configures an Outbox.
type Config struct {
	// Dir is the directory of the queue's Pebble database. Required.
	Dir string
	// Sender sends the queued messages. Required.
	Sender Sender
	// MaxMessages bounds the queue (default 100000).
	MaxMessages int
	// MaxMessageBytes bounds a subject and payload together (default 1 MiB).
	MaxMessageBytes int
	// SendTimeout bounds one send (default 5s).
	SendTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before retrying a failed
	// send; it doubles from MinBackoff up to MaxBackoff (defaults 100ms
	// and 5s).
	MinBackoff, MaxBackoff time.Duration
	// Logger defaults to a logger that discards.
	Logger *slog.Logger
	// Registerer receives the metrics (vexil_outbox_*). Optional.
	Registerer prometheus.Registerer
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("outbox: config: Dir is required")
	case c.Sender == nil:
		return errors.New("outbox: config: Sender is required")
	case c.MaxMessages < 0 || c.MaxMessageBytes < 0:
		return errors.New("outbox: config: negative bound")
	case c.SendTimeout < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0:
		return errors.New("outbox: config: negative duration")
	case c.MaxBackoff > 0 && c.MinBackoff > c.MaxBackoff:
		return fmt.Errorf("outbox: config: MinBackoff %v above MaxBackoff %v", c.MinBackoff, c.MaxBackoff)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.MaxMessages == 0 {
		c.MaxMessages = 100000
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 1 << 20
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = 5 * time.Second
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = max(5*time.Second, c.MinBackoff)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Outbox is a durable queue of messages to publish. Its methods are safe
// for concurrent use.
type Outbox struct {
	cfg     Config
	db      *pebble.DB
	log     *slog.Logger
	metrics *metrics
	// wake has room for one signal: Publish tells Run there is work.
	wake chan struct{}

	mu struct {
		sync.Mutex
		// next is the sequence number of the next message appended.
		next uint64
		// pending counts the messages in the database.
		pending int
		closed  bool
	}
}

// Open opens (or creates) the queue in cfg.Dir; what an earlier process
// left in it is sent by Run.
func Open(cfg Config) (*Outbox, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("outbox: metrics: %w", err)
	}
	db, err := pebble.Open(cfg.Dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest,
		Logger: pebbleLogger{cfg.Logger}})
	if err != nil {
		return nil, fmt.Errorf("outbox: open %s: %w", cfg.Dir, err)
	}
	o := &Outbox{cfg: cfg, db: db, log: cfg.Logger, metrics: m, wake: make(chan struct{}, 1)}
	it, err := db.NewIter(nil)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("outbox: open %s: %w", cfg.Dir, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		if len(it.Key()) != 8 {
			_ = it.Close()
			_ = db.Close()
			return nil, fmt.Errorf("outbox: open %s: key %x is not a sequence number", cfg.Dir, it.Key())
		}
		o.mu.pending++
		o.mu.next = binary.BigEndian.Uint64(it.Key()) + 1
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("outbox: open %s: %w", cfg.Dir, err)
	}
	m.pending.Set(float64(o.mu.pending))
	if o.mu.pending > 0 {
		o.wake <- struct{}{}
		o.log.Info("outbox: messages left by an earlier run", "pending", o.mu.pending)
	}
	return o, nil
}

// Publish appends a message; it returns once the message is on disk. It
// implements admin.Publisher.
func (o *Outbox) Publish(ctx context.Context, subject string, data []byte) error {
	if subject == "" || len(subject)+len(data) > o.cfg.MaxMessageBytes || len(subject) > 0xffff {
		o.metrics.refused.WithLabelValues("too_large").Inc()
		return fmt.Errorf("%w: subject %q and %d bytes, at most %d", ErrTooLarge, subject, len(data), o.cfg.MaxMessageBytes)
	}
	val := make([]byte, 2+len(subject)+len(data))
	binary.BigEndian.PutUint16(val, uint16(len(subject)))
	copy(val[2:], subject)
	copy(val[2+len(subject):], data)
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case o.mu.closed:
		return ErrClosed
	case o.mu.pending >= o.cfg.MaxMessages:
		o.metrics.refused.WithLabelValues("full").Inc()
		return fmt.Errorf("%w: %d messages waiting", ErrFull, o.mu.pending)
	}
	if err := o.db.Set(seqKey(o.mu.next), val, pebble.Sync); err != nil {
		return fmt.Errorf("outbox: append %s: %w", subject, err)
	}
	o.mu.next++
	o.mu.pending++
	o.metrics.pending.Set(float64(o.mu.pending))
	o.metrics.appended.Inc()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return nil
}

// Pending returns the number of messages waiting to be sent.
func (o *Outbox) Pending() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.mu.pending
}

// Run sends the queued messages in order until ctx ends, retrying a failed
// send with a backoff. It returns nil when ctx ends; messages not yet sent
// stay queued for the next Run.
func (o *Outbox) Run(ctx context.Context) error {
	backoff := time.Duration(0)
	for {
		sent, err := o.drain(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			backoff = min(max(2*backoff, o.cfg.MinBackoff), o.cfg.MaxBackoff)
			if !sent {
				o.log.Warn("outbox: send failed, retrying", "pending", o.Pending(), "retry_in", backoff, "err", err)
			}
			if !sleep(ctx, backoff) {
				return nil
			}
			continue
		}
		backoff = 0
		select {
		case <-ctx.Done():
			return nil
		case <-o.wake:
		}
	}
}

// drain sends messages from the oldest until the queue is empty (nil) or a
// send fails; sent reports whether it sent any before an error.
func (o *Outbox) drain(ctx context.Context) (sent bool, err error) {
	for ctx.Err() == nil {
		key, subject, data, ok, err := o.first()
		if err != nil || !ok {
			return sent, err
		}
		sctx, cancel := context.WithTimeout(ctx, o.cfg.SendTimeout)
		err = o.cfg.Sender.Publish(sctx, subject, data)
		cancel()
		if err != nil {
			o.metrics.sends.WithLabelValues("error").Inc()
			return sent, err
		}
		o.metrics.sends.WithLabelValues("ok").Inc()
		sent = true
		// A lost delete sends the message again after a crash: at least
		// once, as documented.
		if err := o.db.Delete(key, pebble.NoSync); err != nil {
			return sent, fmt.Errorf("outbox: remove sent message: %w", err)
		}
		o.mu.Lock()
		o.mu.pending--
		o.metrics.pending.Set(float64(o.mu.pending))
		o.mu.Unlock()
	}
	return sent, nil
}

// first reads the oldest queued message.
func (o *Outbox) first() (key []byte, subject string, data []byte, ok bool, err error) {
	it, err := o.db.NewIter(nil)
	if err != nil {
		return nil, "", nil, false, fmt.Errorf("outbox: read: %w", err)
	}
	defer it.Close()
	if !it.First() {
		return nil, "", nil, false, it.Error()
	}
	val := it.Value()
	if len(val) < 2 || len(val) < 2+int(binary.BigEndian.Uint16(val)) {
		return nil, "", nil, false, fmt.Errorf("outbox: message %x is corrupt", it.Key())
	}
	n := int(binary.BigEndian.Uint16(val))
	return append([]byte(nil), it.Key()...), string(val[2 : 2+n]), append([]byte(nil), val[2+n:]...), true, nil
}

// Close closes the database; Run must have returned. Messages not sent stay
// for the next Open.
func (o *Outbox) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.mu.closed {
		return nil
	}
	o.mu.closed = true
	return o.db.Close()
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

type metrics struct {
	pending  prometheus.Gauge
	appended prometheus.Counter
	sends    *prometheus.CounterVec
	refused  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vexil_outbox_pending",
			Help: "Change notices and rollout signals waiting in the outbox to be published.",
		}),
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vexil_outbox_appended_total",
			Help: "Messages appended to the outbox.",
		}),
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vexil_outbox_sends_total",
			Help: "Attempts to publish an outbox message, by result (ok, error).",
		}, []string{"result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vexil_outbox_refused_total",
			Help: "Messages the outbox refused, by reason (full, too_large).",
		}, []string{"reason"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.pending, m.appended, m.sends, m.refused} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// pebbleLogger adapts *slog.Logger to pebble.Logger.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) { p.l.Debug(fmt.Sprintf(format, args...)) }

func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }

func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}
