package canary

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Tapped is one sampled evaluation request with the answer the running
// node gave it.
type Tapped struct {
	Request Request
	Status  int
	// Answer is the body the client got.
	Answer []byte
	// TookNS is the node's time in its handler, from the request's
	// headers read to its answer written.
	TookNS int64
}

// tapMeta is a published Tapped's first line.
type tapMeta struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers,omitempty"`
	Status  int               `json:"status"`
	TookNS  int64             `json:"took_ns"`
	BodyLen int               `json:"body_len"`
}

// Encode is t as the tap publishes it: one line of JSON (the request
// but its body, the status, the node's time, the body's length), then
// the request's body and the answer as they were. The answer is not
// encoded again: base64 or a JSON validation of it would cost the node
// more than copying it did (a 2 KB answer: ~30,000 instructions).
func (t Tapped) Encode() ([]byte, error) {
	meta, err := json.Marshal(tapMeta{Method: t.Request.Method, Path: t.Request.Path, Headers: t.Request.Headers,
		Status: t.Status, TookNS: t.TookNS, BodyLen: len(t.Request.Body)})
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(meta)+1+len(t.Request.Body)+len(t.Answer))
	out = append(append(meta, '\n'), t.Request.Body...)
	return append(out, t.Answer...), nil
}

// DecodeTapped reads one published Tapped and checks its request.
func DecodeTapped(b []byte) (Tapped, error) {
	line, rest, ok := bytes.Cut(b, []byte{'\n'})
	var m tapMeta
	if !ok {
		return Tapped{}, errors.New("canary: tapped message: no header line")
	}
	if err := json.Unmarshal(line, &m); err != nil {
		return Tapped{}, fmt.Errorf("canary: tapped message: %w", err)
	}
	if m.BodyLen < 0 || m.BodyLen > len(rest) || m.BodyLen > maxProxyBody {
		return Tapped{}, fmt.Errorf("canary: tapped message: body of %d bytes in a message of %d", m.BodyLen, len(rest))
	}
	t := Tapped{Request: Request{Method: m.Method, Path: m.Path, Headers: m.Headers}, Status: m.Status, TookNS: m.TookNS, Answer: rest[m.BodyLen:]}
	if m.BodyLen > 0 {
		t.Request.Body = rest[:m.BodyLen]
		if !json.Valid(t.Request.Body) {
			return t, errors.New("canary: tapped message: the request's body is not JSON")
		}
	}
	if err := t.Request.Validate(); err != nil {
		return t, fmt.Errorf("canary: tapped message: %w", err)
	}
	if t.Status < 100 || t.Status > 599 || t.TookNS < 0 {
		return t, fmt.Errorf("canary: tapped message: status %d, took %dns", t.Status, t.TookNS)
	}
	return t, nil
}

// TapConfig configures a running node's tap.
type TapConfig struct {
	// Share of /flags, /decide and definitions requests sampled, 0 <
	// Share <= 1.
	Share float64
	// Queue is how many sampled requests wait for Publish, 1 to 65536:
	// when it is full a sampled request is dropped (and counted), never
	// waited for. Default 1024.
	Queue int
	// MaxMessageBytes bounds one published message (NATS's max payload);
	// a larger one is skipped and counted. 1 KiB to 64 MiB. Default 1 MiB.
	MaxMessageBytes int
	// Publish sends one message; it runs on Run's goroutine only.
	Publish func([]byte) error
	// Registry, when set, gets the tap's counters.
	Registry prometheus.Registerer
}

// Tap samples a node's evaluation requests and publishes each with the
// answer the node gave, for a side canary to replay to a candidate. It
// never changes an answer and never makes a request wait for the
// publisher: a sampled answer is copied as it is written and handed over
// through a bounded queue.
type Tap struct {
	cfg   TapConfig
	queue chan Tapped
	// counts by outcome; see tapOutcomes.
	counts  [numOutcomes]atomic.Int64
	metrics *prometheus.CounterVec
}

// The outcomes of a sampled request.
const (
	TapPublished     = iota
	TapDropped       // the queue was full
	TapNotModified   // a 304: no answer to compare
	TapTooLarge      // over MaxMessageBytes
	TapNotJSON       // a body that is not plain JSON (compressed, a form)
	TapPublishFailed // Publish returned an error
	numOutcomes
)

var tapOutcomes = [numOutcomes]string{"published", "dropped_queue_full", "skipped_not_modified", "skipped_too_large", "skipped_not_json", "publish_failed"}

// tapHeaders are the request headers a tap keeps: what the answer may
// depend on. Authorization never leaves the node (a personal key is a
// secret; the canary sends the candidate's own).
var tapHeaders = []string{"Content-Type", "User-Agent", "X-Forwarded-For", "X-Real-Ip"}

// NewTap checks cfg and returns the tap; Run publishes.
func NewTap(cfg TapConfig) (*Tap, error) {
	if cfg.Queue == 0 {
		cfg.Queue = 1024
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = 1 << 20
	}
	switch {
	case !(cfg.Share > 0 && cfg.Share <= 1):
		return nil, fmt.Errorf("canary: tap: share %v out of range (0, 1]", cfg.Share)
	case cfg.Queue < 1 || cfg.Queue > 65536:
		return nil, fmt.Errorf("canary: tap: queue %d out of range 1..65536", cfg.Queue)
	case cfg.MaxMessageBytes < 1<<10 || cfg.MaxMessageBytes > 64<<20:
		return nil, fmt.Errorf("canary: tap: max message bytes %d out of range 1KiB..64MiB", cfg.MaxMessageBytes)
	case cfg.Publish == nil:
		return nil, errors.New("canary: tap: Publish is required")
	}
	t := &Tap{cfg: cfg, queue: make(chan Tapped, cfg.Queue)}
	if cfg.Registry != nil {
		t.metrics = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_canary_tap_requests_total",
			Help: "Evaluation requests sampled by the canary tap, by outcome."}, []string{"outcome"})
		for _, o := range tapOutcomes {
			t.metrics.WithLabelValues(o)
		}
		if err := cfg.Registry.Register(t.metrics); err != nil {
			return nil, fmt.Errorf("canary: tap: %w", err)
		}
	}
	return t, nil
}

// Counts returns how many sampled requests had each outcome, by name.
func (t *Tap) Counts() map[string]int64 {
	out := make(map[string]int64, numOutcomes)
	for i, o := range tapOutcomes {
		out[o] = t.counts[i].Load()
	}
	return out
}

func (t *Tap) count(outcome int) {
	t.counts[outcome].Add(1)
	if t.metrics != nil {
		t.metrics.WithLabelValues(tapOutcomes[outcome]).Inc()
	}
}

// Run publishes the queued requests until ctx ends.
func (t *Tap) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-t.queue:
			b, err := m.Encode()
			switch {
			case err != nil:
				t.count(TapNotJSON)
			case len(b) > t.cfg.MaxMessageBytes:
				t.count(TapTooLarge)
			case t.cfg.Publish(b) != nil:
				t.count(TapPublishFailed)
			default:
				t.count(TapPublished)
			}
		}
	}
}

// Wrap returns h with the tap in front: a sampled evaluation request's
// body is read ahead and given back to h unchanged, h's answer goes to
// the client as h writes it and is copied on the side.
func (t *Tap) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t.cfg.Share < 1 && rand.Float64() >= t.cfg.Share {
			h.ServeHTTP(w, r)
			return
		}
		req := Request{Method: r.Method, Path: r.URL.RequestURI()}
		if req.Validate() != nil {
			h.ServeHTTP(w, r)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			body, err := io.ReadAll(io.LimitReader(r.Body, maxProxyBody+1))
			r.Body = readCloser{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
			enc := r.Header.Get("Content-Encoding")
			if err != nil || len(body) > maxProxyBody || (enc != "" && !strings.EqualFold(enc, "identity")) || len(body) > 0 && !json.Valid(body) {
				t.count(TapNotJSON)
				h.ServeHTTP(w, r)
				return
			}
			if len(body) > 0 {
				req.Body = body
			}
		}
		for _, k := range tapHeaders {
			if v := r.Header.Get(k); v != "" {
				if req.Headers == nil {
					req.Headers = map[string]string{}
				}
				req.Headers[k] = v
			}
		}
		rec := &tapWriter{ResponseWriter: w, limit: t.cfg.MaxMessageBytes}
		start := time.Now()
		h.ServeHTTP(rec, r)
		took := time.Since(start)
		switch {
		case rec.status == http.StatusNotModified:
			t.count(TapNotModified)
			return
		case rec.over:
			t.count(TapTooLarge)
			return
		}
		select {
		case t.queue <- Tapped{Request: req, Status: cmp0(rec.status, http.StatusOK), Answer: rec.body.Bytes(), TookNS: int64(took)}:
		default:
			t.count(TapDropped)
		}
	})
}

func cmp0(v, or int) int {
	if v == 0 {
		return or
	}
	return v
}

type readCloser struct {
	io.Reader
	io.Closer
}

// tapWriter passes an answer through and keeps a copy of it, up to limit
// bytes.
type tapWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
	limit  int
	over   bool
}

func (w *tapWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *tapWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !w.over {
		if w.body.Len()+len(b) > w.limit {
			w.over = true
			w.body = bytes.Buffer{}
		} else {
			w.body.Write(b)
		}
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *tapWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
