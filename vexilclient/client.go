package vexilclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	evalv1 "github.com/vexil-dev/vexil/proto/vexil/eval/v1"
)

// Config configures a Client.
type Config struct {
	// Target is the gRPC address of a Vexil node ("127.0.0.1:8001", or any
	// gRPC target such as "dns:///vexil:8001"). Required.
	Target string
	// ProjectToken (phc_...) authenticates Evaluate and ReportEvaluations.
	// Required.
	ProjectToken string
	// SecretKey (phs_... or phx_... with flag:read) turns local evaluation
	// on: the client watches the team's definitions. Empty: every
	// evaluation is remote.
	SecretKey string
	// Conns is the number of gRPC connections used round robin. Default 2,
	// at most 64.
	Conns int
	// Timeout bounds each remote call (a shorter deadline of the caller's
	// context wins). Default 1s.
	Timeout time.Duration
	// HedgingDelay is how long an Evaluate waits before a second, hedged
	// attempt on the next connection of the pool (at most one hedge, and
	// hedges at most a tenth of the calls). Default 100ms; negative turns
	// hedging off.
	HedgingDelay time.Duration
	// MinBackoff and MaxBackoff bound the wait before reconnecting the
	// definitions stream. Defaults 100ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// ReportInterval is how often evaluation counts are sent. Default 10s.
	ReportInterval time.Duration
	// DialOptions are added to the connections' (transport credentials:
	// default insecure, for a loopback or a service mesh).
	DialOptions []grpc.DialOption
	// OnEvent, when set, is called with every change of the definitions'
	// state (from the watching goroutine: it must not block).
	OnEvent func(Event)
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now defaults to time.Now (the engine's evaluation time and the
	// definitions' age).
	Now func() time.Time
}

// Bounds of the configuration and of the requests the client sends.
const (
	MaxConns = 64
	// MaxPendingCounts bounds the distinct counts kept for the next batch
	// when the server cannot take them.
	MaxPendingCounts = 10000
	// maxBatch is the server's limit of counts per ReportEvaluations.
	maxBatch = 1000
)

// ErrInvalidConfig is returned by New for a config it cannot use.
var ErrInvalidConfig = errors.New("vexilclient: invalid config")

func (c *Config) withDefaults() (Config, error) {
	out := *c
	switch {
	case out.Target == "":
		return out, fmt.Errorf("%w: Target is required", ErrInvalidConfig)
	case out.ProjectToken == "":
		return out, fmt.Errorf("%w: ProjectToken is required", ErrInvalidConfig)
	case out.Conns < 0 || out.Conns > MaxConns:
		return out, fmt.Errorf("%w: Conns must be 0 to %d", ErrInvalidConfig, MaxConns)
	case out.Timeout < 0 || out.MinBackoff < 0 || out.MaxBackoff < 0 || out.ReportInterval < 0:
		return out, fmt.Errorf("%w: durations must not be negative", ErrInvalidConfig)
	}
	if out.Conns == 0 {
		out.Conns = 2
	}
	if out.Timeout == 0 {
		out.Timeout = time.Second
	}
	if out.HedgingDelay == 0 {
		out.HedgingDelay = 100 * time.Millisecond
	}
	if out.MinBackoff == 0 {
		out.MinBackoff = 100 * time.Millisecond
	}
	if out.MaxBackoff == 0 {
		out.MaxBackoff = 30 * time.Second
	}
	if out.MaxBackoff < out.MinBackoff {
		out.MaxBackoff = out.MinBackoff
	}
	if out.ReportInterval == 0 {
		out.ReportInterval = 10 * time.Second
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	return out, nil
}

// ServiceConfig is the gRPC service config of the client's connections:
// Evaluate and the opening of WatchDefinitions retried on UNAVAILABLE (at
// most 3 attempts, backoff from 50 ms), and retry throttling (retries stop
// while more than half the calls fail, and resume as they succeed).
// ReportEvaluations adds to counters: it has no policy, so it is never
// retried.
//
// Hedging is not in it: grpc-go parses a method's retryPolicy only and
// ignores a hedgingPolicy (its stream.go: "TODO(hedging)"), so the client
// hedges Evaluate itself with the policy's semantics (see hedgedEvaluate).
func ServiceConfig() string {
	retry := `"retryPolicy":{"maxAttempts":3,"initialBackoff":"0.05s","maxBackoff":"0.5s","backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}`
	return `{"methodConfig":[` +
		`{"name":[{"service":"vexil.eval.v1.EvalService","method":"Evaluate"},{"service":"vexil.eval.v1.EvalService","method":"WatchDefinitions"}],` + retry + `}` +
		`],"retryThrottling":{"maxTokens":10,"tokenRatio":0.1}}`
}

// Client evaluates flags; see the package doc. It is safe for concurrent
// use. Close it to stop watching and send the last counts.
type Client struct {
	cfg     Config
	conns   []*grpc.ClientConn
	clients []evalv1.EvalServiceClient
	next    atomic.Uint32

	local atomic.Pointer[localState]

	mu           sync.Mutex
	connected    bool
	disconnected time.Time // when the stream last broke (zero: never connected yet or up)
	// staleSince is disconnected in Unix nanoseconds (0: none), read
	// without the lock on every local evaluation.
	staleSince   atomic.Int64
	lastErr      error
	ready        chan struct{}
	readyOnce    sync.Once
	counting     []*localState // states whose counts are not all sent
	pending      map[countKey]int64
	pendingStart time.Time

	// calls and hedges count Evaluate calls and their hedges: the budget
	// of hedges is a tenth of the calls.
	calls, hedges atomic.Int64

	cancel context.CancelFunc
	done   sync.WaitGroup
	closed atomic.Bool
}

// New dials the connections (lazily, as grpc.NewClient does) and, with a
// SecretKey, starts watching the definitions.
func New(cfg Config) (*Client, error) {
	c := &Client{ready: make(chan struct{}), pending: map[countKey]int64{}}
	var err error
	if c.cfg, err = cfg.withDefaults(); err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(ServiceConfig())}
	opts = append(opts, c.cfg.DialOptions...)
	for range c.cfg.Conns {
		conn, err := grpc.NewClient(c.cfg.Target, opts...)
		if err != nil {
			c.closeConns()
			return nil, fmt.Errorf("vexilclient: dial %s: %w", c.cfg.Target, err)
		}
		c.conns = append(c.conns, conn)
		c.clients = append(c.clients, evalv1.NewEvalServiceClient(conn))
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.pendingStart = c.cfg.Now()
	if c.cfg.SecretKey != "" {
		c.done.Add(1)
		go func() { defer c.done.Done(); c.watch(ctx) }()
	} else {
		c.readyOnce.Do(func() { close(c.ready) })
	}
	c.done.Add(1)
	go func() { defer c.done.Done(); c.reportLoop(ctx) }()
	return c, nil
}

func (c *Client) closeConns() {
	for _, conn := range c.conns {
		_ = conn.Close()
	}
}

// Close stops watching, sends the counts not yet sent (within
// Config.Timeout) and closes the connections.
func (c *Client) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	c.cancel()
	c.done.Wait()
	err := c.Flush(context.Background())
	c.closeConns()
	return err
}

// WaitReady waits until the first definitions are compiled (at once
// without a SecretKey), or ctx ends.
func (c *Client) WaitReady(ctx context.Context) error {
	select {
	case <-c.ready:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		last := c.lastErr
		c.mu.Unlock()
		if last != nil {
			return fmt.Errorf("vexilclient: no definitions yet: %w (last error: %v)", ctx.Err(), last)
		}
		return fmt.Errorf("vexilclient: no definitions yet: %w", ctx.Err())
	}
}

// rpc returns the next client of the pool.
func (c *Client) rpc() evalv1.EvalServiceClient {
	return c.clients[int(c.next.Add(1))%len(c.clients)]
}

// callContext adds the deadline and the token to a remote call's context.
func (c *Client) callContext(ctx context.Context, secret string) (context.Context, context.CancelFunc) {
	ctx = withSecret(ctx, secret)
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= c.cfg.Timeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.cfg.Timeout)
}

// Request is one evaluation's subject.
type Request struct {
	// DistinctID identifies the person. Required (the empty string is a
	// valid id, as on PostHog's /flags).
	DistinctID string
	// DeviceID is bucketed on by flags that bucket by device.
	DeviceID string
	// Groups maps a group type name ("company") to the group's key.
	Groups map[string]string
	// PersonProperties override the stored person's. Numbers are best
	// passed as json.Number (their text is compared); Go ints and floats
	// work too.
	PersonProperties map[string]any
	// GroupProperties maps a group type name to its properties.
	GroupProperties map[string]map[string]any
	// FlagKeys limits the evaluation to these flags; empty evaluates all.
	FlagKeys []string
}

// Path says which path answered a flag.
type Path string

// Paths.
const (
	// PathLocal: evaluated in process from the watched definitions.
	PathLocal Path = "local"
	// PathRemote: answered by the server (EvalService.Evaluate).
	PathRemote Path = "remote"
)

// Result is one flag's answer.
type Result struct {
	Key     string
	Enabled bool
	// Variant is the variant key of a multivariate flag, empty otherwise.
	Variant string
	// Payload is the value's payload as /flags sends it: JSON text,
	// usually a JSON string holding the JSON the author wrote. Nil for
	// none.
	Payload json.RawMessage
	// Reason is PostHog's reason code ("condition_match", ...);
	// ConditionIndex the matching condition, -1 for none.
	Reason         string
	ConditionIndex int
	Description    string
	FlagID         int64
	Version        int64
	// Failed: the flag could not be decided; ErrorCode says why
	// ("missing_context", "unavailable", ...).
	Failed    bool
	ErrorCode string
	Path      Path
}

// Answer is one evaluation's results.
type Answer struct {
	// Flags are the local results in evaluation order (a flag after those
	// it depends on), then the server's.
	Flags []Result
	// ErrorsWhileComputing: some flag could not be decided.
	ErrorsWhileComputing bool
	// DefinitionsAge is the age of the definitions the local results came
	// from (see Status.Age); 0 when none was local.
	DefinitionsAge time.Duration
	// RemoteErr is the error of the remote call that was to answer some
	// flags (they are then Failed with ErrorCode "unavailable" or the
	// error's code).
	RemoteErr error
}

// Lookup returns the result of a flag.
func (a *Answer) Lookup(key string) (Result, bool) {
	for i := range a.Flags {
		if a.Flags[i].Key == key {
			return a.Flags[i], true
		}
	}
	return Result{}, false
}

// Evaluate answers locally what the watched definitions decide and asks
// the server for the rest (or for everything, without definitions). The
// error is only for a call that got no answer at all.
func (c *Client) Evaluate(ctx context.Context, req *Request) (*Answer, error) {
	a := &Answer{}
	if err := c.EvaluateInto(ctx, req, a); err != nil {
		return nil, err
	}
	return a, nil
}

// EvaluateInto is Evaluate writing into a, reusing a.Flags' memory: the
// allocation-free form for hot paths.
func (c *Client) EvaluateInto(ctx context.Context, req *Request, a *Answer) error {
	a.Flags, a.ErrorsWhileComputing, a.DefinitionsAge, a.RemoteErr = a.Flags[:0], false, 0, nil
	ls := c.local.Load()
	if ls == nil {
		return c.remoteInto(ctx, req, req.FlagKeys, a)
	}
	return c.evaluateLocal(ctx, ls, req, a)
}

// EvaluateRemote asks the server for every flag (or req.FlagKeys).
func (c *Client) EvaluateRemote(ctx context.Context, req *Request) (*Answer, error) {
	a := &Answer{}
	if err := c.remoteInto(ctx, req, req.FlagKeys, a); err != nil {
		return nil, err
	}
	return a, nil
}

// remoteInto appends the server's results for keys (all when empty).
func (c *Client) remoteInto(ctx context.Context, req *Request, keys []string, a *Answer) error {
	in, err := c.evaluateRequest(req, keys)
	if err != nil {
		return err
	}
	ctx, cancel := c.callContext(ctx, c.cfg.ProjectToken)
	defer cancel()
	resp, err := c.hedgedEvaluate(ctx, in)
	if err != nil {
		return fmt.Errorf("vexilclient: evaluate: %w", err)
	}
	if resp.GetErrorsWhileComputing() {
		a.ErrorsWhileComputing = true
	}
	for _, f := range resp.GetFlags() {
		r := Result{Key: f.GetKey(), Enabled: f.GetEnabled(), Variant: f.GetVariant(), Reason: f.GetReason().GetCode(),
			ConditionIndex: -1, Description: f.GetReason().GetDescription(), FlagID: f.GetId(), Version: f.GetVersion(),
			Failed: f.GetFailed(), ErrorCode: f.GetErrorCode(), Path: PathRemote}
		if f.GetReason() != nil && f.GetReason().ConditionIndex != nil {
			r.ConditionIndex = int(f.GetReason().GetConditionIndex())
		}
		if p := f.GetPayload(); p != "" {
			r.Payload = json.RawMessage(p)
		}
		a.Flags = append(a.Flags, r)
	}
	return nil
}

// evaluateRequest writes a Request as an EvaluateRequest.
func (c *Client) evaluateRequest(req *Request, keys []string) (*evalv1.EvaluateRequest, error) {
	did := req.DistinctID
	in := &evalv1.EvaluateRequest{DistinctId: &did, Groups: req.Groups, FlagKeys: keys, DeviceId: req.DeviceID}
	if len(req.PersonProperties) > 0 {
		b, err := json.Marshal(req.PersonProperties)
		if err != nil {
			return nil, fmt.Errorf("vexilclient: person_properties: %w", err)
		}
		in.PersonProperties = string(b)
	}
	if len(req.GroupProperties) > 0 {
		b, err := json.Marshal(req.GroupProperties)
		if err != nil {
			return nil, fmt.Errorf("vexilclient: group_properties: %w", err)
		}
		in.GroupProperties = string(b)
	}
	return in, nil
}

// errorCode is the code a failed remote call gives the flags it was to
// answer: the gRPC status code in snake case ("unavailable",
// "deadline_exceeded", "unauthenticated", ...).
func errorCode(err error) string {
	code := status.Code(err)
	if code == codes.Unknown {
		return "unavailable"
	}
	var b strings.Builder
	for i, r := range code.String() {
		if 'A' <= r && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func withSecret(ctx context.Context, secret string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+secret)
}
