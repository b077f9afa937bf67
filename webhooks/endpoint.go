package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/signals"
)

// Endpoint is a team's webhook endpoint.
type Endpoint struct {
	ID   string `json:"id"`
	Team int64  `json:"team"`
	URL  string `json:"url"`
	// Description is free text for people.
	Description string `json:"description,omitempty"`
	// Secret keys the signatures (Sign). Generated on creation; Redacted
	// hides it in every answer but the creation's.
	Secret string `json:"secret"`
	// Scopes are the signal types delivered (Scopes lists them); empty
	// means all of them.
	Scopes []string `json:"scopes,omitempty"`
	// Cohorts limits delivery to these cohorts; empty means every cohort.
	Cohorts []int64 `json:"cohorts,omitempty"`
	// Disabled endpoints get nothing (signals are not queued for them).
	Disabled  bool      `json:"disabled,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Bounds of an endpoint.
const (
	MaxEndpointsPerTeam = 10
	MaxURLLen           = 2048
	MaxDescriptionLen   = 400
	MaxCohorts          = 100
)

// Scopes are the signal types an endpoint can subscribe to.
func Scopes() []string {
	return []string{signals.TypeOf(signals.Entered), signals.TypeOf(signals.Left)}
}

// Wants says whether e takes s.
func (e *Endpoint) Wants(s *signals.Signal) bool {
	if e.Disabled || s.Team != e.Team {
		return false
	}
	if len(e.Scopes) > 0 && !slices.Contains(e.Scopes, s.Type) {
		return false
	}
	return len(e.Cohorts) == 0 || slices.Contains(e.Cohorts, s.Cohort)
}

// Redacted returns e with its secret shortened to a recognisable prefix.
func (e Endpoint) Redacted() Endpoint {
	if len(e.Secret) > 10 {
		e.Secret = e.Secret[:10] + "…"
	}
	return e
}

// Errors. A *FieldError wraps ErrInvalid.
var (
	ErrInvalid  = errors.New("webhooks: invalid endpoint")
	ErrNotFound = errors.New("webhooks: not found")
	ErrLimit    = errors.New("webhooks: limit exceeded")
)

// FieldError is an invalid endpoint field.
type FieldError struct {
	Field, Reason string
}

func (e *FieldError) Error() string { return "webhooks: " + e.Field + ": " + e.Reason }
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Validate checks e's fields as given by a caller.
func (e *Endpoint) Validate() error {
	if len(e.URL) > MaxURLLen {
		return &FieldError{"url", fmt.Sprintf("longer than %d bytes", MaxURLLen)}
	}
	u, err := url.Parse(e.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &FieldError{"url", "must be an absolute http or https URL"}
	}
	if u.User != nil {
		return &FieldError{"url", "must not carry credentials"}
	}
	if len(e.Description) > MaxDescriptionLen {
		return &FieldError{"description", fmt.Sprintf("longer than %d bytes", MaxDescriptionLen)}
	}
	for i, s := range e.Scopes {
		if !slices.Contains(Scopes(), s) {
			return &FieldError{fmt.Sprintf("scopes[%d]", i), fmt.Sprintf("%q is not one of %s", s, strings.Join(Scopes(), ", "))}
		}
	}
	if len(e.Cohorts) > MaxCohorts {
		return &FieldError{"cohorts", fmt.Sprintf("more than %d", MaxCohorts)}
	}
	for i, c := range e.Cohorts {
		if c <= 0 {
			return &FieldError{fmt.Sprintf("cohorts[%d]", i), "must be a cohort id"}
		}
	}
	return nil
}

// Registry stores the endpoints in a JetStream key-value bucket
// (Names.Endpoints), so every node sees every change.
type Registry struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

func endpointKey(team int64, id string) string { return "t" + strconv.FormatInt(team, 10) + "." + id }

func validID(id string) bool {
	if len(id) != 16 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// Create stores a new endpoint of e.Team and returns it with its ID and
// secret.
func (r *Registry) Create(ctx context.Context, e Endpoint) (Endpoint, error) {
	if err := e.Validate(); err != nil {
		return Endpoint{}, err
	}
	have, err := r.List(ctx, e.Team)
	if err != nil {
		return Endpoint{}, err
	}
	if len(have) >= MaxEndpointsPerTeam {
		return Endpoint{}, fmt.Errorf("%w: a team has at most %d webhook endpoints", ErrLimit, MaxEndpointsPerTeam)
	}
	var b [8]byte
	var sec [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Endpoint{}, err
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return Endpoint{}, err
	}
	e.ID, e.Secret = hex.EncodeToString(b[:]), "whsec_"+hex.EncodeToString(sec[:])
	e.CreatedAt = r.now().UTC()
	e.UpdatedAt = e.CreatedAt
	data, err := json.Marshal(e)
	if err != nil {
		return Endpoint{}, err
	}
	if _, err := r.kv.Create(ctx, endpointKey(e.Team, e.ID), data); err != nil {
		return Endpoint{}, fmt.Errorf("webhooks: create: %w", err)
	}
	return e, nil
}

// Get returns a team's endpoint.
func (r *Registry) Get(ctx context.Context, team int64, id string) (Endpoint, error) {
	e, _, err := r.get(ctx, team, id)
	return e, err
}

func (r *Registry) get(ctx context.Context, team int64, id string) (Endpoint, uint64, error) {
	if !validID(id) {
		return Endpoint{}, 0, fmt.Errorf("%w: webhook endpoint %q", ErrNotFound, id)
	}
	v, err := r.kv.Get(ctx, endpointKey(team, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Endpoint{}, 0, fmt.Errorf("%w: webhook endpoint %q", ErrNotFound, id)
	}
	if err != nil {
		return Endpoint{}, 0, fmt.Errorf("webhooks: get: %w", err)
	}
	var e Endpoint
	if err := json.Unmarshal(v.Value(), &e); err != nil {
		return Endpoint{}, 0, fmt.Errorf("webhooks: endpoint %s: %w", id, err)
	}
	return e, v.Revision(), nil
}

// List returns a team's endpoints, oldest first.
func (r *Registry) List(ctx context.Context, team int64) ([]Endpoint, error) {
	return r.list(ctx, "t"+strconv.FormatInt(team, 10)+".*")
}

// All returns every team's endpoints.
func (r *Registry) All(ctx context.Context) ([]Endpoint, error) { return r.list(ctx, ">") }

func (r *Registry) list(ctx context.Context, filter string) ([]Endpoint, error) {
	lister, err := r.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("webhooks: list: %w", err)
	}
	var out []Endpoint
	for k := range lister.Keys() {
		v, err := r.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("webhooks: list: %w", err)
		}
		var e Endpoint
		if err := json.Unmarshal(v.Value(), &e); err != nil {
			return nil, fmt.Errorf("webhooks: endpoint %s: %w", k, err)
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Endpoint) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Update applies fn to a team's endpoint and stores it (compare-and-set:
// a concurrent update makes it read again). ID, team, secret and creation
// time stay.
func (r *Registry) Update(ctx context.Context, team int64, id string, fn func(*Endpoint)) (Endpoint, error) {
	for range 8 {
		e, rev, err := r.get(ctx, team, id)
		if err != nil {
			return Endpoint{}, err
		}
		n := e
		fn(&n)
		n.ID, n.Team, n.Secret, n.CreatedAt, n.UpdatedAt = e.ID, e.Team, e.Secret, e.CreatedAt, r.now().UTC()
		if err := n.Validate(); err != nil {
			return Endpoint{}, err
		}
		data, err := json.Marshal(n)
		if err != nil {
			return Endpoint{}, err
		}
		if _, err := r.kv.Update(ctx, endpointKey(team, id), data, rev); err == nil {
			return n, nil
		} else if !isWrongSequence(err) {
			return Endpoint{}, fmt.Errorf("webhooks: update: %w", err)
		}
	}
	return Endpoint{}, fmt.Errorf("webhooks: update %s: too many concurrent updates", id)
}

// Delete removes a team's endpoint from the registry (Webhooks.Delete
// drops its deliveries too).
func (r *Registry) Delete(ctx context.Context, team int64, id string) error {
	if _, _, err := r.get(ctx, team, id); err != nil {
		return err
	}
	if err := r.kv.Delete(ctx, endpointKey(team, id)); err != nil {
		return fmt.Errorf("webhooks: delete: %w", err)
	}
	return nil
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}
