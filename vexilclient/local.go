package vexilclient

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vexil-dev/vexil/flags"
	evalv1 "github.com/vexil-dev/vexil/proto/vexil/eval/v1"
)

// localState is one compiled version of the team's definitions.
type localState struct {
	set      *flags.Set
	etag     string
	received time.Time
	// remote[i] is set for flags the server must answer (in the set's
	// evaluation order): those it marks with ensure_experience_continuity.
	remote    []bool
	anyRemote bool
	versions  map[string]int64
	// index is each flag's position in keys (evaluation order).
	index map[string]int
	// counts are the local evaluations per flag and value since the last
	// batch: flag i's slots start at base[i]; slot 0 is disabled, 1
	// enabled without a variant, 2+v variant v.
	base     []int
	variants [][]string
	keys     []string
	counts   []atomic.Int64
}

// scratch is the reusable memory of one local evaluation.
type scratch struct {
	fc      flags.Context
	groups  []flags.Group
	results []flags.Result
	remote  []string
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func newLocalState(etag string, payload []byte, received time.Time) (*localState, error) {
	defs, err := flags.ParseDefinitions(payload)
	if err != nil {
		return nil, err
	}
	set, err := flags.Compile(defs)
	if set == nil {
		return nil, err
	}
	// Validation problems leave the set usable: a flag that cannot be
	// decided fails alone, as on the server.
	ls := &localState{set: set, etag: etag, received: received, versions: map[string]int64{}, index: map[string]int{}}
	ls.keys = set.Keys()
	ls.remote = make([]bool, len(ls.keys))
	ls.base = make([]int, len(ls.keys))
	ls.variants = make([][]string, len(ls.keys))
	slots := 0
	for i, k := range ls.keys {
		f, _ := set.Flag(k)
		ls.versions[k] = f.Version
		ls.index[k] = i
		if f.EnsureExperienceContinuity {
			ls.remote[i], ls.anyRemote = true, true
		}
		ls.base[i] = slots
		slots += 2
		if mv := f.Filters.Multivariate; mv != nil {
			for _, v := range mv.Variants {
				ls.variants[i] = append(ls.variants[i], v.Key)
			}
			slots += len(mv.Variants)
		}
	}
	ls.counts = make([]atomic.Int64, slots)
	return ls, nil
}

// count adds one local evaluation of flag i.
func (ls *localState) count(i int, r *flags.Result) {
	slot := ls.base[i]
	switch {
	case !r.Enabled:
	case r.Variant == "":
		slot++
	default:
		slot += 2 + slices.Index(ls.variants[i], r.Variant)
		if slot < ls.base[i]+2 {
			return // a variant the definition does not list (an override's)
		}
	}
	ls.counts[slot].Add(1)
}

// evaluateLocal runs the engine in partial mode and asks the server for
// the flags it cannot decide.
func (c *Client) evaluateLocal(ctx context.Context, ls *localState, req *Request, a *Answer) error {
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	sc.fc = flags.Context{DistinctID: req.DistinctID, DeviceID: req.DeviceID, PersonProperties: req.PersonProperties,
		Now: c.cfg.Now(), Partial: true}
	if len(req.Groups) > 0 {
		sc.groups = sc.groups[:0]
		for name, key := range req.Groups {
			idx, ok := ls.set.GroupTypeIndex(name)
			if !ok {
				continue // a group type no flag aggregates on
			}
			for len(sc.groups) <= idx {
				sc.groups = append(sc.groups, flags.Group{})
			}
			sc.groups[idx] = flags.Group{Key: key, Properties: req.GroupProperties[name]}
		}
		sc.fc.Groups = sc.groups
	}
	var keys []string
	sc.remote = sc.remote[:0]
	if len(req.FlagKeys) > 0 {
		keys = req.FlagKeys
		// A key the definitions do not hold may be newer than them: the
		// server decides whether it exists.
		for _, k := range keys {
			if _, ok := ls.index[k]; !ok {
				sc.remote = append(sc.remote, k)
			}
		}
	}
	sc.results = ls.set.AppendEvaluate(sc.results[:0], &sc.fc, keys)
	for i := range sc.results {
		r := &sc.results[i]
		idx := i
		if keys != nil {
			idx = ls.index[r.Key]
		}
		if ls.remote[idx] || r.Err != nil && errors.Is(r.Err, flags.ErrInconclusive) {
			sc.remote = append(sc.remote, r.Key)
			continue
		}
		ls.count(idx, r)
		// Filled in place: a result is copied once, not twice.
		if n := len(a.Flags); n < cap(a.Flags) {
			a.Flags = a.Flags[:n+1]
		} else {
			a.Flags = append(a.Flags, Result{})
		}
		fillLocal(&a.Flags[len(a.Flags)-1], r)
		if r.Err != nil {
			a.ErrorsWhileComputing = true
		}
	}
	if len(a.Flags) > 0 {
		a.DefinitionsAge = c.age()
	}
	clear(sc.results) // drop references to payloads and errors
	sc.fc = flags.Context{}
	clear(sc.groups)
	if len(sc.remote) == 0 {
		return nil
	}
	if err := c.remoteInto(ctx, req, sc.remote, a); err != nil {
		a.RemoteErr, a.ErrorsWhileComputing = err, true
		code := errorCode(err)
		for _, k := range sc.remote {
			a.Flags = append(a.Flags, Result{Key: k, Reason: string(flags.ReasonError), ConditionIndex: -1, Failed: true, ErrorCode: code, Path: PathRemote})
		}
	}
	return nil
}

// fillLocal writes every field of dst from an engine result.
func fillLocal(dst *Result, r *flags.Result) {
	dst.Key, dst.Enabled, dst.Variant, dst.Payload = r.Key, r.Enabled, r.Variant, nil
	dst.Reason, dst.ConditionIndex, dst.Description = string(r.Reason.Code), r.Reason.ConditionIndex, r.Reason.Description
	dst.FlagID, dst.Version, dst.Failed, dst.ErrorCode, dst.Path = r.FlagID, r.Version, false, "", PathLocal
	if r.Enabled {
		dst.Payload = r.Payload
	}
	if r.Err != nil {
		dst.Failed, dst.ErrorCode = true, "invalid_definition"
		var ee *flags.EvalError
		if errors.As(r.Err, &ee) && ee.Code != "" {
			dst.ErrorCode = ee.Code
		}
	}
}

// Status is the state of the watched definitions.
type Status struct {
	// Local: definitions are compiled and local evaluation is on.
	Local bool
	// Connected: the definitions stream is up.
	Connected bool
	// ETag and Received are the current definitions' (zero without any).
	ETag     string
	Received time.Time
	// Age is how long since the definitions were last known to be
	// current: 0 while the stream is up, the time since it broke when not.
	Age time.Duration
	// Flags is the number of flags in the definitions.
	Flags int
	// LastError is the last error of the stream or of a payload.
	LastError error
}

// Status returns the state of the watched definitions.
func (c *Client) Status() Status {
	ls := c.local.Load()
	c.mu.Lock()
	st := Status{Connected: c.connected, LastError: c.lastErr}
	c.mu.Unlock()
	if ls != nil {
		st.Local, st.ETag, st.Received, st.Flags = true, ls.etag, ls.received, len(ls.keys)
		st.Age = c.age()
	}
	return st
}

func (c *Client) age() time.Duration {
	since := c.staleSince.Load()
	if since == 0 {
		return 0
	}
	return c.cfg.Now().Sub(time.Unix(0, since))
}

// EventKind says what changed.
type EventKind int

// Event kinds.
const (
	// EventReady: the first definitions are compiled.
	EventReady EventKind = iota + 1
	// EventChanged: a new version of the definitions is in use;
	// Event.Changed lists the flags added, removed or of a new version.
	EventChanged
	// EventStale: the stream broke; the last definitions keep answering.
	EventStale
	// EventReconnected: the stream is up again (an EventChanged follows
	// when the definitions changed meanwhile).
	EventReconnected
	// EventError: a payload could not be used (Event.Err); the previous
	// definitions keep answering.
	EventError
)

// Event is a change of the definitions' state.
type Event struct {
	Kind    EventKind
	ETag    string
	Changed []string
	Err     error
}

func (c *Client) emit(e Event) {
	if c.cfg.OnEvent != nil {
		c.cfg.OnEvent(e)
	}
}

// watch keeps a WatchDefinitions stream open, reconnecting with backoff,
// until ctx ends.
func (c *Client) watch(ctx context.Context) {
	backoff := c.cfg.MinBackoff
	for ctx.Err() == nil {
		got, err := c.watchOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		wasUp := false
		c.mu.Lock()
		c.lastErr = err
		if c.connected {
			wasUp = true
			c.connected = false
			c.disconnected = c.cfg.Now()
			c.staleSince.Store(c.disconnected.UnixNano())
		}
		c.mu.Unlock()
		if wasUp {
			c.emit(Event{Kind: EventStale, Err: err})
		}
		c.cfg.Logger.Warn("vexilclient: definitions stream broke; reconnecting", "err", err)
		if got {
			backoff = c.cfg.MinBackoff
		}
		// Full jitter: a fleet that lost one node does not come back in step.
		wait := time.Duration(rand.Int64N(int64(backoff)) + 1)
		if code := status.Code(err); code == codes.Unauthenticated || code == codes.PermissionDenied {
			wait = c.cfg.MaxBackoff // a key problem does not heal quickly
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(backoff*2, c.cfg.MaxBackoff)
	}
}

// watchOnce reads one stream until it breaks; got says a payload came.
func (c *Client) watchOnce(ctx context.Context) (got bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The stream lives as long as ctx: no deadline.
	stream, err := c.rpc().WatchDefinitions(withSecret(ctx, c.cfg.SecretKey), &evalv1.WatchDefinitionsRequest{SendCohorts: true, Token: c.cfg.ProjectToken})
	if err != nil {
		return false, err
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return got, err
		}
		got = true
		c.install(msg)
	}
}

// install compiles one payload and puts it in use.
func (c *Client) install(msg *evalv1.WatchDefinitionsResponse) {
	now := c.cfg.Now()
	c.mu.Lock()
	reconnected := !c.connected && !c.disconnected.IsZero()
	c.connected, c.disconnected = true, time.Time{}
	c.staleSince.Store(0)
	c.mu.Unlock()
	if reconnected {
		c.emit(Event{Kind: EventReconnected, ETag: msg.GetEtag()})
	}
	old := c.local.Load()
	if old != nil && old.etag == msg.GetEtag() {
		return
	}
	ls, err := newLocalState(msg.GetEtag(), msg.GetPayload(), now)
	if err != nil {
		c.mu.Lock()
		c.lastErr = err
		c.mu.Unlock()
		c.cfg.Logger.Error("vexilclient: definitions do not parse; keeping the previous ones", "etag", msg.GetEtag(), "err", err)
		c.emit(Event{Kind: EventError, ETag: msg.GetEtag(), Err: err})
		return
	}
	c.mu.Lock()
	c.counting = append(c.counting, ls)
	c.mu.Unlock()
	c.local.Store(ls)
	if old == nil {
		c.readyOnce.Do(func() { close(c.ready) })
		c.emit(Event{Kind: EventReady, ETag: ls.etag, Changed: ls.keys})
		return
	}
	c.emit(Event{Kind: EventChanged, ETag: ls.etag, Changed: changedFlags(old, ls)})
}

// changedFlags lists the flags added, removed or of another version.
func changedFlags(old, cur *localState) []string {
	var out []string
	for k, v := range cur.versions {
		if ov, ok := old.versions[k]; !ok || ov != v {
			out = append(out, k)
		}
	}
	for k := range old.versions {
		if _, ok := cur.versions[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
