package evalsvc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/changes"
	"github.com/vexil-dev/vexil/store"
)

// Service evaluates flags. It is safe for concurrent use.
type Service struct {
	cfg     Config
	cache   *hyperCache
	keys    *keyCache
	m       *metrics
	memory  *memoryGauge
	answers *answerCounts
	// subscribed is closed once Run's change-notice subscription is
	// registered with the NATS server.
	subscribed chan struct{}
	// stopped is closed when Run returns: definition watches end.
	stopped  chan struct{}
	stopOnce sync.Once
	// refusals are the pre-built answers of admission's overload refusals.
	refusals refusals
	// arrivals counts the requests that asked for admission (Arrivals).
	arrivals atomic.Uint64
	// localReads: the store's reads are local (store.LocalReader), so a
	// request reads it under its own context, without a timer.
	localReads bool
	// rowBuffers is the store when it reads rows into a request's buffer.
	rowBuffers store.RowBufferReader
}

// Arrivals returns how many evaluation requests have asked for admission,
// admitted or refused. Background work on the node (precompute's pacer,
// precompute.Config.Arrivals) watches it move to know that requests are coming in, which it cannot
// see otherwise: with one P, a request whose bytes arrived while a
// computation runs has not been admitted yet.
func (s *Service) Arrivals() uint64 { return s.arrivals.Load() }

// New returns a Service; call Run to keep its cache fresh.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	if c.Admission == nil {
		var err error
		if c.Admission, err = admission.New(admission.Config{}); err != nil {
			return nil, fmt.Errorf("evalsvc: admission: %w", err)
		}
	}
	s := &Service{cfg: c, keys: &keyCache{ttl: c.KeyCacheTTL, m: map[string]keyEntry{}}, subscribed: make(chan struct{}),
		stopped: make(chan struct{})}
	s.cache = newHyperCache(s.loadTeam)
	s.m = newMetrics(c.Registry)
	s.memory = newMemoryGauge(c.MemoryLimit, c.MemoryShedFraction, c.MemorySampleInterval, c.Registry)
	s.answers = newAnswerCounts()
	s.refusals = newRefusals(c.Admission)
	if lr, ok := c.Store.(store.LocalReader); ok {
		s.localReads = lr.LocalReads()
	}
	s.rowBuffers, _ = c.Store.(store.RowBufferReader)
	return s, nil
}

func (s *Service) loadTeam(ctx context.Context, team int64) (*teamState, error) {
	snap, err := s.cfg.Catalog.Snapshot(ctx, team)
	if errors.Is(err, catalog.ErrNotFound) {
		s.answers.drop(team)
		return nil, errTeamGone
	}
	if err != nil {
		return nil, fmt.Errorf("evalsvc: load team %d: %w", team, err)
	}
	digest, err := snapshotDigest(snap)
	if err != nil {
		return nil, err
	}
	if cur, ok := s.cache.current(team); ok && cur.digest == digest {
		s.m.reloadsUnchanged.Inc()
		return cur, nil
	}
	ts, err := buildTeamState(snap, s.cfg.Now(), s.cfg.Plan)
	if err != nil {
		return nil, err
	}
	ts.digest = digest
	ts.answers = s.answers.attach(team, ts.keys)
	if ts.compileErr != nil {
		s.cfg.Logger.Warn("team definitions have problems; the affected flags evaluate as PostHog defines or fail", "team", team, "err", ts.compileErr)
	}
	s.m.reloads.Inc()
	return ts, nil
}

// Run keeps the HyperCache fresh: it applies change notices from nc (when
// not nil) and reloads every loaded team each ReloadInterval. It returns
// when ctx is done.
func (s *Service) Run(ctx context.Context, nc *nats.Conn) error {
	defer s.stopOnce.Do(func() { close(s.stopped) })
	var wg sync.WaitGroup
	defer wg.Wait()
	if nc != nil {
		notices := make(chan int64, 1024)
		sub, err := nc.Subscribe(changes.Wildcard(s.cfg.Namespace), func(msg *nats.Msg) {
			// A payload that cannot be read still names its team (the
			// subject): refresh that team.
			n, err := changes.Parse(s.cfg.Namespace, msg.Subject, msg.Data)
			if errors.Is(err, changes.ErrSubject) {
				return
			}
			if n.Kind == changes.KindKey || n.Kind == changes.KindTeam {
				s.keys.flush()
			}
			select {
			case notices <- n.Team:
			default: // the periodic reload catches up
				s.m.noticesDropped.Inc()
			}
		})
		if err != nil {
			return fmt.Errorf("evalsvc: subscribe to change notices: %w", err)
		}
		defer sub.Unsubscribe() //nolint:errcheck // best effort on shutdown
		isub, err := nc.Subscribe(changes.InstanceSubject(s.cfg.Namespace), func(msg *nats.Msg) {
			// A revoked key leaves the key cache at once, whatever teams
			// it reaches (an instance-wide key reaches none). A notice
			// that cannot be read drops every cached key.
			n, err := changes.ParseInstance(msg.Data)
			if err != nil {
				s.keys.flush()
				return
			}
			if n.Kind == changes.KindKeyRevoked {
				s.keys.evict(n.ID)
			}
		})
		if err != nil {
			return fmt.Errorf("evalsvc: subscribe to instance notices: %w", err)
		}
		defer isub.Unsubscribe() //nolint:errcheck // best effort on shutdown
		if err := nc.Flush(); err != nil {
			if nc.IsClosed() {
				return fmt.Errorf("evalsvc: subscribe to change notices: %w", err)
			}
			// NATS is away: the client sends the subscription when it
			// connects, and the periodic reload covers the notices missed.
			s.cfg.Logger.Warn("change notices: NATS away, subscribing when it is back", "err", err)
		}
		close(s.subscribed)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case team := <-notices:
					if _, err := s.cache.refresh(ctx, team); err != nil && !errors.Is(err, errTeamGone) {
						s.cfg.Logger.Warn("reload after change notice failed", "team", team, "err", err)
					}
				}
			}
		}()
	}
	t := time.NewTicker(s.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			for _, team := range s.cache.loadedTeams() {
				if _, err := s.cache.refresh(ctx, team); err != nil && !errors.Is(err, errTeamGone) {
					s.cfg.Logger.Warn("periodic reload failed", "team", team, "err", err)
				}
			}
		}
	}
}

// Refresh reloads a team now (tests, and callers that just changed it).
func (s *Service) Refresh(ctx context.Context, team int64) error {
	_, err := s.cache.refresh(ctx, team)
	return err
}

// lookupKey resolves a secret through the key cache.
func (s *Service) lookupKey(ctx context.Context, secret string) (catalog.APIKey, error) {
	if secret == "" {
		return catalog.APIKey{}, ErrUnknownKey
	}
	var sum [sha256.Size]byte
	probe := s.keyHash(sum[:0], secret)
	now := s.cfg.Now()
	if e, ok := s.keys.get(probe, now); ok {
		if !e.found {
			return catalog.APIKey{}, ErrUnknownKey
		}
		return e.key, nil
	}
	// Past the cache the hash escapes (to the catalog, into the cache):
	// a copy, so that probe stays on the stack for the hits.
	return s.fetchKey(ctx, bytes.Clone(probe), now)
}

// keyHash appends the hash of secret to dst: Config.HashKey's, or
// SHA-256's, computed without copying secret or allocating the sum.
func (s *Service) keyHash(dst []byte, secret string) []byte {
	if s.cfg.HashKey != nil {
		return append(dst, s.cfg.HashKey(secret)...)
	}
	// Sum256 only reads its input.
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(secret), len(secret)))
	return append(dst, sum[:]...)
}

// fetchKey reads the key of hash from the catalog and caches the answer.
func (s *Service) fetchKey(ctx context.Context, hash []byte, now time.Time) (catalog.APIKey, error) {
	k, err := s.cfg.Catalog.GetKeyByHash(ctx, hash)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		s.keys.put(hash, keyEntry{found: false, expires: now.Add(s.cfg.KeyCacheTTL)})
		return catalog.APIKey{}, ErrUnknownKey
	case err != nil:
		return catalog.APIKey{}, fmt.Errorf("evalsvc: key lookup: %w", err)
	}
	found := k.RevokedAt.IsZero()
	s.keys.put(hash, keyEntry{key: k, found: found, expires: now.Add(s.cfg.KeyCacheTTL)})
	if !found {
		return catalog.APIKey{}, ErrUnknownKey
	}
	return k, nil
}

// teamForToken resolves a project token to its team.
func (s *Service) teamForToken(ctx context.Context, token string) (int64, error) {
	k, err := s.lookupKey(ctx, token)
	if err != nil {
		return 0, err
	}
	if k.Kind != catalog.KeyProjectToken || len(k.Teams) != 1 {
		return 0, ErrWrongKeyKind
	}
	return k.Teams[0], nil
}

// requestTeam is the authentication step of every evaluation request,
// whatever its transport (/flags, /decide, gRPC Evaluate): the project
// token's team and its entry in the HyperCache. It fails with
// ErrMissingToken, ErrUnknownKey (unknown, revoked, or a team that no
// longer exists), ErrWrongKeyKind (not a project token) or
// ErrCatalogUnavailable.
func (s *Service) requestTeam(ctx context.Context, token string) (*teamState, error) {
	if token == "" {
		return nil, ErrMissingToken
	}
	team, err := s.teamForToken(ctx, token)
	if err != nil {
		if errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrWrongKeyKind) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrCatalogUnavailable, err)
	}
	ts, err := s.cache.get(ctx, team)
	if err != nil {
		if errors.Is(err, errTeamGone) {
			return nil, fmt.Errorf("%w: %w", ErrUnknownKey, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrCatalogUnavailable, err)
	}
	return ts, nil
}

// admit admits a request of class cl now or refuses it at once (a
// *admission.RejectedError wrapping ErrOverloaded); call the ticket's Done
// when it has been answered.
func (s *Service) admit(cl admission.Class) (admission.Ticket, error) {
	s.arrivals.Add(1)
	return s.cfg.Admission.Acquire(cl)
}

// admitRPC is admit for a gRPC call: one the server's tap handle admitted
// before decoding it (GRPCClass) carries its ticket already.
func (s *Service) admitRPC(ctx context.Context, cl admission.Class) (admission.Ticket, error) {
	if t, ok := admission.TicketFrom(ctx); ok && t.Class() == cl {
		s.arrivals.Add(1)
		return t, nil
	}
	return s.admit(cl)
}

// allowTeam takes one request of class cl from team's quota (a
// *admission.RejectedError wrapping admission.ErrQuotaExceeded when over).
func (s *Service) allowTeam(cl admission.Class, team int64) error {
	return s.cfg.Admission.AllowTeam(cl, team)
}
