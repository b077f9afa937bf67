package projector

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/namespace"
)

// PairStarts records, per team and tracked (event, filters) pair, the
// ingest stream sequence from which the projector counts the pair live.
// An event at a lower sequence never counts live for that pair, even when
// it is redelivered after the pair was tracked: a backfill counts exactly
// those (docs/cohorts.md, Backfill), so every event counts once, either
// live or backfilled. The record must be durable before any event counts
// live for the pair, and the first record wins: a crash and a racing
// backfill see the same start.
type PairStarts interface {
	// Start returns the recorded start of team's pair, recording next
	// when there is none.
	Start(ctx context.Context, team int64, pair uint64, next uint64) (uint64, error)
	// Lookup returns the recorded start, if any.
	Lookup(ctx context.Context, team int64, pair uint64) (uint64, bool, error)
}

// groupPairID is the id under which PairStarts records the start of pair
// counted on the rows of group type typeIndex. It is not the pair's own
// start: a flag may begin to aggregate a pair on a group type long after
// persons began counting it, and the group rows count it only from then,
// so the backfill of the group rows must read up to that later start.
func groupPairID(pair uint64, typeIndex int) uint64 {
	var b [14]byte
	copy(b[:], "group")
	b[5] = byte(typeIndex)
	binary.BigEndian.PutUint64(b[6:], pair)
	return xxhash.Sum64(b[:])
}

// PairStartsBucket is the key-value bucket of the pair starts in ns.
func PairStartsBucket(ns namespace.Name) string { return ns.Bucket("event_pairs") }

// KVPairStarts keeps the starts in a JetStream key-value bucket (key
// <team>.<pair in hex>, value the decimal sequence), created with Create
// so the first writer wins, and cached in memory: a start never changes.
type KVPairStarts struct {
	js   jetstream.JetStream
	name string
	mu   sync.Mutex
	kv   jetstream.KeyValue // opened on first use
	m    map[[2]uint64]uint64
}

// NewPairStarts returns the starts of ns; the bucket is opened (created if
// needed) on first use, so NATS may be away at start.
func NewPairStarts(js jetstream.JetStream, ns namespace.Name) *KVPairStarts {
	return &KVPairStarts{js: js, name: PairStartsBucket(ns), m: map[[2]uint64]uint64{}}
}

// OpenPairStarts is NewPairStarts, opening the bucket now.
func OpenPairStarts(ctx context.Context, js jetstream.JetStream, ns namespace.Name) (*KVPairStarts, error) {
	s := NewPairStarts(js, ns)
	if _, err := s.bucket(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *KVPairStarts) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kv != nil {
		return s.kv, nil
	}
	kv, err := s.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: s.name,
		Description: "Vexil: the ingest sequence from which each tracked event pair counts live", Storage: jetstream.FileStorage})
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = s.js.KeyValue(ctx, s.name)
	}
	if err != nil {
		return nil, fmt.Errorf("projector: pair starts bucket %s: %w", s.name, err)
	}
	s.kv = kv
	return kv, nil
}

func pairKey(team int64, pair uint64) string {
	return strconv.FormatInt(team, 10) + "." + strconv.FormatUint(pair, 16)
}

// Lookup implements PairStarts.
func (s *KVPairStarts) Lookup(ctx context.Context, team int64, pair uint64) (uint64, bool, error) {
	k := [2]uint64{uint64(team), pair}
	s.mu.Lock()
	v, ok := s.m[k]
	s.mu.Unlock()
	if ok {
		return v, true, nil
	}
	kv, err := s.bucket(ctx)
	if err != nil {
		return 0, false, err
	}
	e, err := kv.Get(ctx, pairKey(team, pair))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("projector: read pair start: %w", err)
	}
	v, err = strconv.ParseUint(string(e.Value()), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("projector: pair start %s: %w", e.Key(), err)
	}
	s.mu.Lock()
	s.m[k] = v
	s.mu.Unlock()
	return v, true, nil
}

// Start implements PairStarts.
func (s *KVPairStarts) Start(ctx context.Context, team int64, pair uint64, next uint64) (uint64, error) {
	if v, ok, err := s.Lookup(ctx, team, pair); err != nil || ok {
		return v, err
	}
	kv, err := s.bucket(ctx)
	if err != nil {
		return 0, err
	}
	_, err = kv.Create(ctx, pairKey(team, pair), []byte(strconv.FormatUint(next, 10)))
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("projector: record pair start: %w", err)
	}
	v, ok, err := s.Lookup(ctx, team, pair) // ours, or the first writer's
	if err == nil && !ok {
		err = fmt.Errorf("projector: pair start of %d/%x vanished", team, pair)
	}
	return v, err
}
