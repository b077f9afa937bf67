// Package openfeature is an OpenFeature provider for Go
// (github.com/open-feature/go-sdk) on top of package vexilclient: local
// evaluation where the watched definitions decide, the server for the
// rest.
//
// # Evaluation context
//
// The OpenFeature evaluation context maps to a Vexil request as OFREP's
// does on the server (docs/openfeature.md):
//   - targetingKey is the distinct id (required: TARGETING_KEY_MISSING);
//   - "groups" maps a group type name to the group key
//     (map[string]string, or map[string]any of strings);
//   - "groupProperties" maps a group type name to a map of properties;
//   - "deviceId" is the device id;
//   - every other attribute is a person property (time.Time as RFC 3339).
//
// # Values
//
// A boolean evaluation is the flag's enabled state. A string evaluation is
// the variant of an enabled multivariate flag (an enabled flag without
// variants is a TYPE_MISMATCH). Object, int and float evaluations read the
// payload of the value the flag evaluated to (the JSON its author wrote),
// which must decode to the type asked. A disabled flag gives the default
// value for any type, with its reason.
//
// # Reasons, errors, metadata
//
// PostHog's reasons map to OpenFeature's: condition_match, override and
// super_condition_value are TARGETING_MATCH; holdout_condition_value is
// SPLIT; flag_disabled is DISABLED; no_condition_match,
// out_of_rollout_bound, no_group_type and missing_dependency are DEFAULT.
// A flag the definitions and the server do not know is FLAG_NOT_FOUND; one
// that could not be decided, or a failed call, is GENERAL with Vexil's code
// in the message and in the metadata's "errorCode". The flag metadata holds
// flagId, version, path ("local" or "remote": which path answered),
// posthogReason, conditionIndex (when a condition matched) and, for local
// answers, definitionsAgeMs.
//
// # Events and hooks
//
// The provider is READY once the first definitions are compiled (at once
// without a secret key). A new version of the definitions emits
// PROVIDER_CONFIGURATION_CHANGED with the flags that changed; a broken
// stream PROVIDER_STALE (the last definitions keep answering); its return
// PROVIDER_READY. Options.OnEvaluation adds a hook that reports every
// evaluation (flag, value, variant, reason, path, error).
package openfeature

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	of "github.com/open-feature/go-sdk/openfeature"

	"github.com/vexil-dev/vexil/vexilclient"
)

// Context attribute names besides targetingKey.
const (
	AttrGroups          = "groups"
	AttrGroupProperties = "groupProperties"
	AttrDeviceID        = "deviceId"
)

// Metadata keys of every resolution.
const (
	MetaFlagID         = "flagId"
	MetaVersion        = "version"
	MetaPath           = "path"
	MetaPostHogReason  = "posthogReason"
	MetaConditionIndex = "conditionIndex"
	MetaDefinitionsAge = "definitionsAgeMs"
	MetaErrorCode      = "errorCode"
)

// Options configures a Provider.
type Options struct {
	// InitTimeout bounds the wait for the first definitions in Init.
	// Default 10s.
	InitTimeout time.Duration
	// OnEvaluation, when set, is called by a hook after every evaluation
	// through this provider (from the evaluating goroutine).
	OnEvaluation func(Evaluation)
	// EventBuffer is the size of the event channel; events past it are
	// dropped rather than block the client. Default 64.
	EventBuffer int
}

// Evaluation is one evaluation as the reporting hook sees it.
type Evaluation struct {
	Flag    string
	Type    of.Type
	Value   any
	Variant string
	Reason  of.Reason
	// Path is "local" or "remote" ("" when the evaluation failed before
	// an answer).
	Path      string
	ErrorCode of.ErrorCode
	Err       error
}

// Provider is an OpenFeature FeatureProvider, StateHandler and
// EventHandler on a vexilclient.Client it owns.
type Provider struct {
	client *vexilclient.Client
	opts   Options
	events chan of.Event
	hooks  []of.Hook
}

var (
	_ of.FeatureProvider = (*Provider)(nil)
	_ of.StateHandler    = (*Provider)(nil)
	_ of.EventHandler    = (*Provider)(nil)
)

// New creates the client from cfg (its OnEvent is kept and called too)
// and the provider on it.
func New(cfg vexilclient.Config, opts Options) (*Provider, error) {
	if opts.InitTimeout <= 0 {
		opts.InitTimeout = 10 * time.Second
	}
	if opts.EventBuffer <= 0 {
		opts.EventBuffer = 64
	}
	p := &Provider{opts: opts, events: make(chan of.Event, opts.EventBuffer)}
	userEvent := cfg.OnEvent
	cfg.OnEvent = func(e vexilclient.Event) {
		p.forward(e)
		if userEvent != nil {
			userEvent(e)
		}
	}
	c, err := vexilclient.New(cfg)
	if err != nil {
		return nil, err
	}
	p.client = c
	if opts.OnEvaluation != nil {
		p.hooks = []of.Hook{reportingHook{report: opts.OnEvaluation}}
	}
	return p, nil
}

// Client returns the provider's client (Status, EvaluateRemote, ...).
func (p *Provider) Client() *vexilclient.Client { return p.client }

// Metadata names the provider.
func (p *Provider) Metadata() of.Metadata { return of.Metadata{Name: "vexil"} }

// Hooks returns the reporting hook when Options.OnEvaluation is set.
func (p *Provider) Hooks() []of.Hook { return p.hooks }

// Init waits for the first definitions (at once without a secret key).
func (p *Provider) Init(of.EvaluationContext) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.InitTimeout)
	defer cancel()
	return p.client.WaitReady(ctx)
}

// Shutdown closes the client (sending the last evaluation counts).
func (p *Provider) Shutdown() { _ = p.client.Close() }

// EventChannel returns the provider's events.
func (p *Provider) EventChannel() <-chan of.Event { return p.events }

func (p *Provider) forward(e vexilclient.Event) {
	var ev of.Event
	switch e.Kind {
	case vexilclient.EventChanged:
		ev = of.Event{EventType: of.ProviderConfigChange, ProviderEventDetails: of.ProviderEventDetails{
			Message: "definitions changed", FlagChanges: e.Changed, EventMetadata: map[string]any{"etag": e.ETag}}}
	case vexilclient.EventStale:
		msg := "definitions stream broke; serving the last definitions"
		if e.Err != nil {
			msg += ": " + e.Err.Error()
		}
		ev = of.Event{EventType: of.ProviderStale, ProviderEventDetails: of.ProviderEventDetails{Message: msg}}
	case vexilclient.EventReconnected:
		ev = of.Event{EventType: of.ProviderReady, ProviderEventDetails: of.ProviderEventDetails{Message: "definitions stream reconnected"}}
	default:
		return // Ready: Init returning says it; Error: the previous definitions keep answering
	}
	ev.ProviderName = "vexil"
	select {
	case p.events <- ev:
	default:
	}
}

// resolve evaluates one flag.
func (p *Provider) resolve(ctx context.Context, flag string, flat of.FlattenedContext) (vexilclient.Result, of.ProviderResolutionDetail, bool) {
	req, rerr := request(flat)
	if rerr != nil {
		return vexilclient.Result{}, of.ProviderResolutionDetail{ResolutionError: *rerr, Reason: of.ErrorReason}, false
	}
	req.FlagKeys = []string{flag}
	a, err := p.client.Evaluate(ctx, req)
	if err != nil {
		return vexilclient.Result{}, of.ProviderResolutionDetail{ResolutionError: of.NewGeneralResolutionError(err.Error()), Reason: of.ErrorReason}, false
	}
	r, ok := a.Lookup(flag)
	if !ok {
		return r, of.ProviderResolutionDetail{ResolutionError: of.NewFlagNotFoundResolutionError("no flag " + strconv.Quote(flag) + " in this project"), Reason: of.ErrorReason}, false
	}
	md := of.FlagMetadata{MetaFlagID: r.FlagID, MetaVersion: r.Version, MetaPath: string(r.Path), MetaPostHogReason: r.Reason}
	if r.ConditionIndex >= 0 {
		md[MetaConditionIndex] = r.ConditionIndex
	}
	if r.Path == vexilclient.PathLocal {
		md[MetaDefinitionsAge] = a.DefinitionsAge.Milliseconds()
	}
	if r.Failed {
		md[MetaErrorCode] = r.ErrorCode
		return r, of.ProviderResolutionDetail{ResolutionError: of.NewGeneralResolutionError("the flag could not be evaluated: " + r.ErrorCode),
			Reason: of.ErrorReason, FlagMetadata: md}, false
	}
	variant := r.Variant
	if variant == "" {
		variant = strconv.FormatBool(r.Enabled)
	}
	return r, of.ProviderResolutionDetail{Reason: Reason(r.Reason), Variant: variant, FlagMetadata: md}, true
}

// Reason maps PostHog's reason code to OpenFeature's.
func Reason(code string) of.Reason {
	switch code {
	case "condition_match", "override", "super_condition_value":
		return of.TargetingMatchReason
	case "holdout_condition_value":
		return of.SplitReason
	case "flag_disabled":
		return of.DisabledReason
	case "no_condition_match", "out_of_rollout_bound", "no_group_type", "missing_dependency":
		return of.DefaultReason
	case "error":
		return of.ErrorReason
	}
	return of.UnknownReason
}

// request maps an evaluation context (see the package doc).
func request(flat of.FlattenedContext) (*vexilclient.Request, *of.ResolutionError) {
	tk, ok := flat[of.TargetingKey].(string)
	if !ok {
		e := of.NewTargetingKeyMissingResolutionError("the evaluation context needs a targetingKey: it is the distinct id")
		return nil, &e
	}
	req := &vexilclient.Request{DistinctID: tk}
	bad := func(msg string) (*vexilclient.Request, *of.ResolutionError) {
		e := of.NewInvalidContextResolutionError(msg)
		return nil, &e
	}
	for k, v := range flat {
		switch k {
		case of.TargetingKey:
		case AttrGroups:
			groups, ok := stringMap(v)
			if !ok {
				return bad(`"groups" must map group type names to group keys (strings)`)
			}
			req.Groups = groups
		case AttrGroupProperties:
			gp, ok := propertiesMap(v)
			if !ok {
				return bad(`"groupProperties" must map group type names to maps of properties`)
			}
			req.GroupProperties = gp
		case AttrDeviceID:
			s, ok := v.(string)
			if !ok {
				return bad(`"deviceId" must be a string`)
			}
			req.DeviceID = s
		default:
			if req.PersonProperties == nil {
				req.PersonProperties = make(map[string]any, len(flat))
			}
			req.PersonProperties[k] = property(v)
		}
	}
	return req, nil
}

func stringMap(v any) (map[string]string, bool) {
	switch m := v.(type) {
	case map[string]string:
		return m, true
	case map[string]any:
		out := make(map[string]string, len(m))
		for k, x := range m {
			s, ok := x.(string)
			if !ok {
				return nil, false
			}
			out[k] = s
		}
		return out, true
	}
	return nil, false
}

func propertiesMap(v any) (map[string]map[string]any, bool) {
	switch m := v.(type) {
	case map[string]map[string]any:
		return m, true
	case map[string]any:
		out := make(map[string]map[string]any, len(m))
		for k, x := range m {
			props, ok := x.(map[string]any)
			if !ok {
				return nil, false
			}
			out[k] = props
		}
		return out, true
	}
	return nil, false
}

// property turns a context value into one the engine compares.
func property(v any) any {
	if t, ok := v.(time.Time); ok {
		return t.UTC().Format(time.RFC3339Nano)
	}
	return v
}

// BooleanEvaluation: the flag's enabled state.
func (p *Provider) BooleanEvaluation(ctx context.Context, flag string, def bool, flat of.FlattenedContext) of.BoolResolutionDetail {
	r, d, ok := p.resolve(ctx, flag, flat)
	if !ok {
		return of.BoolResolutionDetail{Value: def, ProviderResolutionDetail: d}
	}
	return of.BoolResolutionDetail{Value: r.Enabled, ProviderResolutionDetail: d}
}

// StringEvaluation: the variant of an enabled multivariate flag.
func (p *Provider) StringEvaluation(ctx context.Context, flag string, def string, flat of.FlattenedContext) of.StringResolutionDetail {
	r, d, ok := p.resolve(ctx, flag, flat)
	switch {
	case !ok || !r.Enabled:
		return of.StringResolutionDetail{Value: def, ProviderResolutionDetail: d}
	case r.Variant == "":
		return of.StringResolutionDetail{Value: def, ProviderResolutionDetail: mismatch(d, "the flag has no variants: evaluate it as a boolean")}
	}
	return of.StringResolutionDetail{Value: r.Variant, ProviderResolutionDetail: d}
}

// ObjectEvaluation: the payload, decoded.
func (p *Provider) ObjectEvaluation(ctx context.Context, flag string, def any, flat of.FlattenedContext) of.InterfaceResolutionDetail {
	r, d, ok := p.resolve(ctx, flag, flat)
	if !ok || !r.Enabled {
		return of.InterfaceResolutionDetail{Value: def, ProviderResolutionDetail: d}
	}
	v, err := payload(r, false)
	if err != nil {
		return of.InterfaceResolutionDetail{Value: def, ProviderResolutionDetail: mismatch(d, err.Error())}
	}
	return of.InterfaceResolutionDetail{Value: v, ProviderResolutionDetail: d}
}

// FloatEvaluation: the payload, a number.
func (p *Provider) FloatEvaluation(ctx context.Context, flag string, def float64, flat of.FlattenedContext) of.FloatResolutionDetail {
	r, d, ok := p.resolve(ctx, flag, flat)
	if !ok || !r.Enabled {
		return of.FloatResolutionDetail{Value: def, ProviderResolutionDetail: d}
	}
	v, err := payload(r, true)
	n, isNum := v.(json.Number)
	f, perr := n.Float64()
	if err != nil || !isNum || perr != nil {
		return of.FloatResolutionDetail{Value: def, ProviderResolutionDetail: mismatch(d, "the payload is not a number")}
	}
	return of.FloatResolutionDetail{Value: f, ProviderResolutionDetail: d}
}

// IntEvaluation: the payload, an integer.
func (p *Provider) IntEvaluation(ctx context.Context, flag string, def int64, flat of.FlattenedContext) of.IntResolutionDetail {
	r, d, ok := p.resolve(ctx, flag, flat)
	if !ok || !r.Enabled {
		return of.IntResolutionDetail{Value: def, ProviderResolutionDetail: d}
	}
	v, err := payload(r, true)
	n, isNum := v.(json.Number)
	i, perr := n.Int64()
	if err != nil || !isNum || perr != nil {
		return of.IntResolutionDetail{Value: def, ProviderResolutionDetail: mismatch(d, "the payload is not an integer")}
	}
	return of.IntResolutionDetail{Value: i, ProviderResolutionDetail: d}
}

func mismatch(d of.ProviderResolutionDetail, msg string) of.ProviderResolutionDetail {
	d.ResolutionError, d.Reason = of.NewTypeMismatchResolutionError(msg), of.ErrorReason
	return d
}

// payload decodes the JSON the flag's author wrote. PostHog stores a
// payload as a JSON string holding it; a string that holds no JSON is the
// payload itself ("on"). numbers keeps numbers as json.Number.
func payload(r vexilclient.Result, numbers bool) (any, error) {
	if len(r.Payload) == 0 {
		return nil, errors.New("the value has no payload")
	}
	raw := []byte(r.Payload)
	var inner string
	wrapped := raw[0] == '"' && json.Unmarshal(raw, &inner) == nil
	if wrapped {
		raw = []byte(inner)
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	if numbers {
		dec.UseNumber()
	}
	if err := dec.Decode(&v); err != nil || dec.More() {
		if wrapped {
			return inner, nil
		}
		return nil, errors.New("the payload is not JSON")
	}
	return v, nil
}
