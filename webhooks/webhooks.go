package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/signals"
	"github.com/vexil-dev/vexil/streams"
)

// Names are the webhooks' names on NATS in one namespace; the comments
// show namespace.Default's.
type Names struct {
	// Endpoints is the key-value bucket of endpoints. "vexil_webhooks".
	Endpoints string
	// Status is the key-value bucket of delivery status, one key per
	// endpoint. "vexil_webhook_status".
	Status string
	// Deliveries is the work queue of deliveries, one subject per
	// endpoint: DeliverPrefix + "<team>.<endpoint>". "VEXIL_WEBHOOKS".
	Deliveries    string
	DeliverPrefix string
	// Dead holds the deliveries that failed their last attempt:
	// DeadPrefix + "<team>.<endpoint>". "VEXIL_WEBHOOKDEAD".
	Dead       string
	DeadPrefix string

	ns namespace.Name
}

// NamesOf returns the names in ns.
func NamesOf(ns namespace.Name) Names {
	return Names{
		Endpoints: ns.Bucket("webhooks"), Status: ns.Bucket("webhook_status"),
		Deliveries: ns.Stream("WEBHOOKS"), DeliverPrefix: ns.Subject("webhooks", "deliver") + ".",
		Dead: ns.Stream("WEBHOOKDEAD"), DeadPrefix: ns.Subject("webhooks", "dead") + ".",
		ns: ns,
	}
}

func (n Names) deliverSubject(team int64, id string) string {
	return n.DeliverPrefix + strconv.FormatInt(team, 10) + "." + id
}

func (n Names) deadSubject(team int64, id string) string {
	return n.DeadPrefix + strconv.FormatInt(team, 10) + "." + id
}

// DeadMaxAge is how long dead letters are kept for a redeliver call.
const DeadMaxAge = 14 * 24 * time.Hour

// Webhooks is the webhooks' state on NATS: endpoints, status, dead
// letters. The management API and the Dispatcher share it.
type Webhooks struct {
	*Registry
	names  Names
	js     jetstream.JetStream
	status jetstream.KeyValue
}

// Open creates the streams and buckets of ns when missing (and the
// signal stream, which the dispatcher reads) and returns their handle.
// now is the clock of the endpoints' times (nil: time.Now).
func Open(ctx context.Context, js jetstream.JetStream, ns namespace.Name, now func() time.Time, log *slog.Logger) (*Webhooks, error) {
	if now == nil {
		now = time.Now
	}
	n := NamesOf(ns)
	if _, err := signals.Ensure(ctx, js, ns, log); err != nil {
		return nil, err
	}
	for _, sc := range []jetstream.StreamConfig{
		{Name: n.Deliveries, Description: "Vexil webhook deliveries, one subject per endpoint",
			Subjects: []string{n.DeliverPrefix + ">"}, Storage: jetstream.FileStorage, Retention: jetstream.WorkQueuePolicy,
			MaxAge: signals.MaxAge, Duplicates: signals.DedupWindow},
		{Name: n.Dead, Description: "Vexil webhook deliveries that failed their last attempt",
			Subjects: []string{n.DeadPrefix + ">"}, Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
			MaxAge: DeadMaxAge, MaxMsgsPerSubject: MaxDeadPerEndpoint},
	} {
		if _, err := streams.Ensure(ctx, js, sc, log); err != nil {
			return nil, fmt.Errorf("webhooks: %w", err)
		}
	}
	var kvs [2]jetstream.KeyValue
	for i, b := range []string{n.Endpoints, n.Status} {
		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: b, Storage: jetstream.FileStorage, History: 1})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, b)
		}
		if err != nil {
			return nil, fmt.Errorf("webhooks: ensure bucket %s: %w", b, err)
		}
		kvs[i] = kv
	}
	return &Webhooks{Registry: &Registry{kv: kvs[0], now: now}, names: n, js: js, status: kvs[1]}, nil
}

// Delete removes a team's endpoint, its queued deliveries and its
// delivery consumer; its dead letters stay until they age out.
func (w *Webhooks) Delete(ctx context.Context, team int64, id string) error {
	if err := w.Registry.Delete(ctx, team, id); err != nil {
		return err
	}
	st, err := w.js.Stream(ctx, w.names.Deliveries)
	if err != nil {
		return fmt.Errorf("webhooks: delete: %w", err)
	}
	if err := st.DeleteConsumer(ctx, w.names.ns.Consumer("webhook-"+id)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("webhooks: delete consumer: %w", err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(w.names.deliverSubject(team, id))); err != nil {
		return fmt.Errorf("webhooks: purge deliveries: %w", err)
	}
	return nil
}

// MaxDeadPerEndpoint bounds an endpoint's dead letters: the oldest go first.
const MaxDeadPerEndpoint = 10000

// Status is an endpoint's delivery status.
type Status struct {
	// Delivered counts the signals the endpoint accepted (2xx), Failed its
	// failed attempts, Dead the signals given up after the last attempt.
	Delivered uint64 `json:"delivered"`
	Failed    uint64 `json:"failed"`
	Dead      uint64 `json:"dead"`
	// LastSuccess and LastFailure are the last attempts' times; LastError
	// and LastStatusCode describe the last failure (status 0: no answer).
	LastSuccess    time.Time `json:"last_success,omitzero"`
	LastFailure    time.Time `json:"last_failure,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
	LastStatusCode int       `json:"last_status_code,omitempty"`
	// Pending is the deliveries queued or in flight; DeadLetters the dead
	// letters kept (Redeliver requeues them).
	Pending     uint64 `json:"pending"`
	DeadLetters uint64 `json:"dead_letters"`
}

// Status returns a team's endpoint's delivery status.
func (w *Webhooks) Status(ctx context.Context, team int64, id string) (Status, error) {
	if _, err := w.Get(ctx, team, id); err != nil {
		return Status{}, err
	}
	var s Status
	if v, err := w.status.Get(ctx, endpointKey(team, id)); err == nil {
		if err := json.Unmarshal(v.Value(), &s); err != nil {
			return Status{}, fmt.Errorf("webhooks: status of %s: %w", id, err)
		}
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return Status{}, fmt.Errorf("webhooks: status: %w", err)
	}
	var err error
	if s.Pending, err = w.count(ctx, w.names.Deliveries, w.names.deliverSubject(team, id)); err != nil {
		return Status{}, err
	}
	if s.DeadLetters, err = w.count(ctx, w.names.Dead, w.names.deadSubject(team, id)); err != nil {
		return Status{}, err
	}
	return s, nil
}

func (w *Webhooks) count(ctx context.Context, stream, subject string) (uint64, error) {
	st, err := w.js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("webhooks: stream %s: %w", stream, err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("webhooks: stream %s: %w", stream, err)
	}
	return info.State.Subjects[subject], nil
}

// note updates an endpoint's status record (compare-and-set, a few tries:
// the counters are a report, not a ledger).
func (w *Webhooks) note(ctx context.Context, team int64, id string, fn func(*Status)) {
	key := endpointKey(team, id)
	for range 5 {
		var s Status
		var rev uint64
		v, err := w.status.Get(ctx, key)
		if err == nil {
			if json.Unmarshal(v.Value(), &s) != nil {
				s = Status{}
			}
			rev = v.Revision()
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return
		}
		fn(&s)
		s.Pending, s.DeadLetters = 0, 0
		data, _ := json.Marshal(s)
		if rev == 0 {
			_, err = w.status.Create(ctx, key, data)
		} else {
			_, err = w.status.Update(ctx, key, data, rev)
		}
		if err == nil {
			return
		}
	}
}

// DeadLetter is a delivery that failed its last attempt.
type DeadLetter struct {
	// Seq identifies it for Redeliver.
	Seq            uint64         `json:"seq"`
	Signal         signals.Signal `json:"signal"`
	Attempts       int            `json:"attempts"`
	LastError      string         `json:"last_error"`
	LastStatusCode int            `json:"last_status_code,omitempty"`
	At             time.Time      `json:"at"`
}

// MaxDeadList bounds one DeadLetters answer.
const MaxDeadList = 500

// DeadLetters returns up to limit (at most MaxDeadList) of an endpoint's
// dead letters, oldest first, from sequence after on (0: the first).
func (w *Webhooks) DeadLetters(ctx context.Context, team int64, id string, after uint64, limit int) ([]DeadLetter, error) {
	if _, err := w.Get(ctx, team, id); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > MaxDeadList {
		limit = MaxDeadList
	}
	st, err := w.js.Stream(ctx, w.names.Dead)
	if err != nil {
		return nil, fmt.Errorf("webhooks: dead letters: %w", err)
	}
	subj := w.names.deadSubject(team, id)
	var out []DeadLetter
	seq := after + 1
	for len(out) < limit {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("webhooks: dead letters: %w", err)
		}
		var d DeadLetter
		if err := json.Unmarshal(m.Data, &d); err == nil {
			d.Seq = m.Sequence
			out = append(out, d)
		}
		seq = m.Sequence + 1
	}
	return out, nil
}

// Redeliver queues an endpoint's dead letter seq (0: all of them) again,
// with a fresh set of attempts, and removes it from the dead letters. It
// returns how many it queued. The signal's ID is unchanged: a receiver
// that got it before (and failed to answer) dedupes it.
func (w *Webhooks) Redeliver(ctx context.Context, team int64, id string, seq uint64) (int, error) {
	var dls []DeadLetter
	if seq != 0 {
		st, err := w.js.Stream(ctx, w.names.Dead)
		if err != nil {
			return 0, fmt.Errorf("webhooks: redeliver: %w", err)
		}
		if _, err := w.Get(ctx, team, id); err != nil {
			return 0, err
		}
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && m.Subject != w.names.deadSubject(team, id) {
			return 0, fmt.Errorf("%w: dead letter %d of endpoint %s", ErrNotFound, seq, id)
		}
		if err != nil {
			return 0, fmt.Errorf("webhooks: redeliver: %w", err)
		}
		var d DeadLetter
		if err := json.Unmarshal(m.Data, &d); err != nil {
			return 0, fmt.Errorf("webhooks: dead letter %d: %w", seq, err)
		}
		d.Seq = m.Sequence
		dls = []DeadLetter{d}
	} else {
		var err error
		for after := uint64(0); ; {
			page, err2 := w.DeadLetters(ctx, team, id, after, MaxDeadList)
			if err = err2; err != nil || len(page) == 0 {
				break
			}
			dls = append(dls, page...)
			after = page[len(page)-1].Seq
		}
		if err != nil {
			return 0, err
		}
	}
	st, err := w.js.Stream(ctx, w.names.Dead)
	if err != nil {
		return 0, fmt.Errorf("webhooks: redeliver: %w", err)
	}
	n := 0
	for _, d := range dls {
		data, err := json.Marshal(d.Signal)
		if err != nil {
			return n, err
		}
		// A fresh message id: the first delivery's may still be in the
		// duplicate window.
		msgID := d.Signal.ID + "." + id + ".r" + strconv.FormatUint(d.Seq, 10)
		if _, err := w.js.Publish(ctx, w.names.deliverSubject(team, id), data, jetstream.WithMsgID(msgID)); err != nil {
			return n, fmt.Errorf("webhooks: redeliver: %w", err)
		}
		if err := st.DeleteMsg(ctx, d.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return n, fmt.Errorf("webhooks: redeliver: %w", err)
		}
		n++
	}
	return n, nil
}
