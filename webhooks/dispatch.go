package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/signals"
	"github.com/vexil-dev/vexil/streams"
)

// Config configures a Dispatcher. Webhooks and JetStream are required.
type Config struct {
	Webhooks  *Webhooks
	JetStream jetstream.JetStream
	// Namespace is the environment's (the signal stream's and the
	// consumers' names). Default namespace.Default.
	Namespace namespace.Name
	// Client sends the requests; default an http.Client that follows no
	// redirect (a 3xx is a failure). Timeout bounds one attempt whatever
	// the client's own. Default 10s.
	Client  *http.Client
	Timeout time.Duration
	// PerEndpoint is how many deliveries to one endpoint are in flight at
	// once (its consumer's MaxAckPending). Default 4.
	PerEndpoint int
	// MaxAttempts is the attempts of a delivery before it goes to the dead
	// letters. Default 8.
	MaxAttempts int
	// Backoff is the delay after the first failed attempt; it doubles
	// with each further one up to MaxBackoff, and each delay is drawn
	// uniformly from its upper half (jitter). Defaults 1s and 10m: the
	// eighth attempt comes 63 to 127 s after the first.
	Backoff, MaxBackoff time.Duration
	// Now is the signatures' clock (wall time: receivers check it against
	// theirs). Default time.Now.
	Now      func() time.Time
	Logger   *slog.Logger
	Registry prometheus.Registerer
}

// Validate reports a missing required field or a negative bound.
func (c Config) Validate() error {
	if c.Webhooks == nil || c.JetStream == nil {
		return errors.New("webhooks: Webhooks and JetStream are required")
	}
	if c.Timeout < 0 || c.PerEndpoint < 0 || c.MaxAttempts < 0 || c.Backoff < 0 || c.MaxBackoff < 0 {
		return errors.New("webhooks: negative bound")
	}
	return c.Namespace.Validate()
}

func (c Config) withDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = namespace.Default
	}
	if c.Client == nil {
		c.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.PerEndpoint == 0 {
		c.PerEndpoint = 4
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 8
	}
	if c.Backoff == 0 {
		c.Backoff = time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 10 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	return c
}

// Dispatcher delivers the signals to the endpoints. It runs apart from
// ingest and evaluation: it reads the signal stream through its own
// consumer, queues one delivery per wanted endpoint in the delivery
// stream, and drains each endpoint's subject through that endpoint's own
// consumer, so a slow or failing endpoint holds only its own deliveries.
// Any number of dispatchers share the work through the durable consumers.
type Dispatcher struct {
	cfg   Config
	names Names
	m     *metrics

	mu struct {
		sync.Mutex
		// endpoints by team, from the registry (the fan-out's view)
		byTeam map[int64][]Endpoint
	}
}

type metrics struct {
	attempts *prometheus.CounterVec
	dead     prometheus.Counter
}

// NewDispatcher returns a Dispatcher; Run starts it.
func NewDispatcher(cfg Config) (*Dispatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	d := &Dispatcher{cfg: c, names: NamesOf(c.Namespace), m: &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_webhooks_attempts_total",
			Help: "Webhook delivery attempts, by result (ok, failed)."}, []string{"result"}),
		dead: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_webhooks_dead_total",
			Help: "Webhook deliveries given up after their last attempt (dead letters)."}),
	}}
	for _, col := range []prometheus.Collector{d.m.attempts, d.m.dead} {
		if err := c.Registry.Register(col); err != nil {
			return nil, fmt.Errorf("webhooks: metrics: %w", err)
		}
	}
	return d, nil
}

// Run runs the fan-out and one delivery loop per endpoint until ctx ends,
// following the endpoints as they are created and deleted. It returns
// after its goroutines have exited.
func (d *Dispatcher) Run(ctx context.Context) error {
	fan, err := d.cfg.JetStream.CreateOrUpdateConsumer(ctx, signals.NamesOf(d.cfg.Namespace).Stream, jetstream.ConsumerConfig{
		Durable: d.cfg.Namespace.Consumer("webhooks-fanout"), FilterSubject: signals.CohortWildcard(d.cfg.Namespace),
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxAckPending: 1000,
		// Endpoints get the signals from their creation on, not the
		// stream's history.
		DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return fmt.Errorf("webhooks: fan-out consumer: %w", err)
	}
	watch, err := d.cfg.Webhooks.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("webhooks: watch endpoints: %w", err)
	}
	defer watch.Stop() //nolint:errcheck // best effort on shutdown

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.fanout(ctx, fan) })
	g.Go(func() error {
		loops := map[string]context.CancelFunc{}
		var wg sync.WaitGroup
		defer func() {
			for _, cancel := range loops {
				cancel()
			}
			wg.Wait()
		}()
		for {
			select {
			case <-ctx.Done():
				return nil
			case _, ok := <-watch.Updates(): // nil marks the initial values' end
				if !ok {
					return errors.New("webhooks: endpoint watch ended")
				}
			}
			if err := d.reconcile(ctx, loops, &wg); err != nil && ctx.Err() == nil {
				d.cfg.Logger.Warn("webhook endpoints", "err", err)
			}
		}
	})
	return g.Wait()
}

// reconcile starts a delivery loop per enabled endpoint, stops those of
// endpoints gone or disabled, and refreshes the fan-out's view.
func (d *Dispatcher) reconcile(ctx context.Context, loops map[string]context.CancelFunc, wg *sync.WaitGroup) error {
	all, err := d.cfg.Webhooks.All(ctx)
	if err != nil {
		return err
	}
	byTeam := map[int64][]Endpoint{}
	live := map[string]bool{}
	for _, e := range all {
		byTeam[e.Team] = append(byTeam[e.Team], e)
		if e.Disabled {
			continue
		}
		live[e.ID] = true
		if _, ok := loops[e.ID]; ok {
			continue
		}
		cons, err := d.cfg.JetStream.CreateOrUpdateConsumer(ctx, d.names.Deliveries, jetstream.ConsumerConfig{
			Durable: d.cfg.Namespace.Consumer("webhook-" + e.ID), FilterSubject: d.names.deliverSubject(e.Team, e.ID),
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: d.cfg.Timeout + 10*time.Second, MaxAckPending: d.cfg.PerEndpoint,
		})
		if err != nil {
			return fmt.Errorf("webhooks: consumer of %s: %w", e.ID, err)
		}
		lctx, cancel := context.WithCancel(ctx)
		loops[e.ID] = cancel
		wg.Go(func() { d.deliverLoop(lctx, e.Team, e.ID, cons) })
	}
	for id, cancel := range loops {
		if !live[id] {
			cancel()
			delete(loops, id)
		}
	}
	d.mu.Lock()
	d.mu.byTeam = byTeam
	d.mu.Unlock()
	return nil
}

// fanout queues one delivery per wanted endpoint of each signal.
func (d *Dispatcher) fanout(ctx context.Context, cons jetstream.Consumer) error {
	for ctx.Err() == nil {
		msgs, err := nextBatch(ctx, cons, 100)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d.cfg.Logger.Warn("fetch signals", "err", err)
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		for _, msg := range msgs {
			var s signals.Signal
			if err := json.Unmarshal(msg.Data(), &s); err != nil {
				d.cfg.Logger.Warn("dropping an undecodable signal", "subject", msg.Subject(), "err", err)
				_ = msg.Term()
				continue
			}
			d.mu.Lock()
			eps := d.mu.byTeam[s.Team]
			d.mu.Unlock()
			failed := false
			for _, e := range eps {
				if !e.Wants(&s) {
					continue
				}
				// The message id makes a redelivered signal one delivery.
				if _, err := d.cfg.JetStream.Publish(ctx, d.names.deliverSubject(e.Team, e.ID), msg.Data(),
					jetstream.WithMsgID(s.ID+"."+e.ID)); err != nil {
					d.cfg.Logger.Warn("queue webhook delivery", "endpoint", e.ID, "err", err)
					failed = true
					break
				}
			}
			if failed {
				_ = msg.NakWithDelay(time.Second)
			} else {
				_ = msg.Ack()
			}
		}
	}
	return nil
}

// nextBatch waits for cons's next message (streams.Next) and takes up to n-1
// more of those already waiting: nil when the wait passed without one.
func nextBatch(ctx context.Context, cons jetstream.Consumer, n int) ([]jetstream.Msg, error) {
	first, err := streams.Next(ctx, cons, streams.IdlePoll)
	if err != nil || first == nil {
		return nil, err
	}
	msgs := []jetstream.Msg{first}
	if n > 1 {
		rest, err := cons.FetchNoWait(n - 1)
		if err != nil {
			return msgs, nil // the first is handled; the rest wait for the next call
		}
		for msg := range rest.Messages() {
			msgs = append(msgs, msg)
		}
	}
	return msgs, nil
}

// deliverLoop drains one endpoint's deliveries, PerEndpoint at a time.
func (d *Dispatcher) deliverLoop(ctx context.Context, team int64, id string, cons jetstream.Consumer) {
	for ctx.Err() == nil {
		msgs, err := nextBatch(ctx, cons, d.cfg.PerEndpoint)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.cfg.Logger.Warn("fetch webhook deliveries", "endpoint", id, "err", err)
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		var wg sync.WaitGroup
		for _, msg := range msgs {
			wg.Go(func() { d.deliver(ctx, team, id, msg) })
		}
		wg.Wait()
	}
}

// deliver makes one attempt and acknowledges, retries later, or gives up.
func (d *Dispatcher) deliver(ctx context.Context, team int64, id string, msg jetstream.Msg) {
	e, err := d.cfg.Webhooks.Get(ctx, team, id)
	if errors.Is(err, ErrNotFound) {
		_ = msg.Term() // the endpoint is gone
		return
	}
	if err != nil {
		_ = msg.NakWithDelay(time.Second)
		return
	}
	attempt := 1
	if md, err := msg.Metadata(); err == nil {
		attempt = int(md.NumDelivered)
	}
	code, err := d.post(ctx, &e, msg.Data(), attempt)
	now := d.cfg.Now().UTC()
	if err == nil {
		d.m.attempts.WithLabelValues("ok").Inc()
		_ = msg.Ack()
		d.cfg.Webhooks.note(ctx, team, id, func(s *Status) { s.Delivered++; s.LastSuccess = now })
		return
	}
	if ctx.Err() != nil {
		return // shutting down: redelivered after the ack wait
	}
	d.m.attempts.WithLabelValues("failed").Inc()
	d.cfg.Webhooks.note(ctx, team, id, func(s *Status) {
		s.Failed++
		s.LastFailure, s.LastError, s.LastStatusCode = now, err.Error(), code
	})
	if attempt < d.cfg.MaxAttempts {
		_ = msg.NakWithDelay(d.backoff(attempt))
		return
	}
	var s signals.Signal
	_ = json.Unmarshal(msg.Data(), &s)
	dl, _ := json.Marshal(DeadLetter{Signal: s, Attempts: attempt, LastError: err.Error(), LastStatusCode: code, At: now})
	if _, err := d.cfg.JetStream.Publish(ctx, d.names.deadSubject(team, id), dl); err != nil {
		d.cfg.Logger.Warn("dead-letter webhook delivery", "endpoint", id, "err", err)
		_ = msg.NakWithDelay(d.backoff(attempt))
		return
	}
	d.m.dead.Inc()
	d.cfg.Webhooks.note(ctx, team, id, func(s *Status) { s.Dead++ })
	_ = msg.Ack()
}

// backoff is the delay after a failed attempt (Config.Backoff).
func (d *Dispatcher) backoff(attempt int) time.Duration {
	b := d.cfg.Backoff
	for i := 1; i < attempt && b < d.cfg.MaxBackoff; i++ {
		b *= 2
	}
	b = min(b, d.cfg.MaxBackoff)
	return b/2 + rand.N(b/2+1)
}

// maxResponse bounds what is read of an answer (to reuse the connection).
const maxResponse = 64 << 10

// post sends one attempt; an error is a failed attempt (code: the
// answer's status, 0 without one).
func (d *Dispatcher) post(ctx context.Context, e *Endpoint, body []byte, attempt int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	var s struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &s)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Vexil-Webhooks/1")
	req.Header.Set(HeaderID, s.ID)
	req.Header.Set(HeaderAttempt, strconv.Itoa(attempt))
	req.Header.Set(HeaderSignature, Sign(e.Secret, d.cfg.Now(), body))
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
