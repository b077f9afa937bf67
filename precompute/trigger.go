package precompute

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/store"
)

// Trigger is the body of a row trigger: the rows and groups of one team to
// recompute.
type Trigger struct {
	Team   int64          `json:"team"`
	Rows   []string       `json:"rows,omitempty"`
	Groups []TriggerGroup `json:"groups,omitempty"`
}

// TriggerGroup names one group.
type TriggerGroup struct {
	Type int    `json:"t"`
	Key  string `json:"k"`
}

// maxTriggerKeys bounds one trigger message (NATS's default payload limit
// is 1 MiB; keys are at most a few KiB).
const maxTriggerKeys = 200

// Publisher publishes row triggers. It is safe for concurrent use.
type Publisher struct {
	js     jetstream.JetStream
	prefix string // NamesOf(ns).RowSubjectPrefix

	mu      sync.Mutex
	pending map[int64]*pendingTrigger
}

type pendingTrigger struct {
	rows   map[string]struct{}
	groups map[TriggerGroup]struct{}
}

// NewPublisher returns a Publisher of ns's triggers on js. The work stream
// must exist (a Worker creates it; EnsureStreams does too).
func NewPublisher(js jetstream.JetStream, ns namespace.Name) *Publisher {
	return &Publisher{js: js, prefix: NamesOf(ns).RowSubjectPrefix, pending: map[int64]*pendingTrigger{}}
}

// Publish publishes triggers for the rows and groups of a durable write and
// waits for JetStream to store them: the projector calls it before it
// acknowledges the batch, so no trigger is lost.
func (p *Publisher) Publish(ctx context.Context, rows []store.DistinctKey, groups []store.GroupKey) error {
	byTeam := map[int64]*Trigger{}
	get := func(team int64) *Trigger {
		t, ok := byTeam[team]
		if !ok {
			t = &Trigger{Team: team}
			byTeam[team] = t
		}
		return t
	}
	for _, r := range rows {
		t := get(r.Team)
		t.Rows = append(t.Rows, r.DistinctID)
	}
	for _, g := range groups {
		t := get(g.Team)
		t.Groups = append(t.Groups, TriggerGroup{Type: g.TypeIndex, Key: g.Key})
	}
	var futures []jetstream.PubAckFuture
	for _, t := range byTeam {
		for _, part := range t.split() {
			data, err := json.Marshal(part)
			if err != nil {
				return fmt.Errorf("precompute: encode trigger: %w", err)
			}
			f, err := p.js.PublishAsync(p.prefix+strconv.FormatInt(part.Team, 10), data)
			if err != nil {
				return fmt.Errorf("precompute: publish trigger: %w", err)
			}
			futures = append(futures, f)
		}
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("precompute: publish trigger: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// split cuts a trigger into messages of at most maxTriggerKeys keys.
func (t *Trigger) split() []*Trigger {
	if len(t.Rows)+len(t.Groups) <= maxTriggerKeys {
		return []*Trigger{t}
	}
	var out []*Trigger
	for i := 0; i < len(t.Rows); i += maxTriggerKeys {
		out = append(out, &Trigger{Team: t.Team, Rows: t.Rows[i:min(i+maxTriggerKeys, len(t.Rows))]})
	}
	for i := 0; i < len(t.Groups); i += maxTriggerKeys {
		out = append(out, &Trigger{Team: t.Team, Groups: t.Groups[i:min(i+maxTriggerKeys, len(t.Groups))]})
	}
	return out
}

// Repair asks, without waiting, for a recompute of a row (typeIndex
// results.Persons, key the distinct id) or a group: the evaluation service
// calls it when it answers a flag live because the stored result is
// missing or stale. Requests gather and are published by Run, each key
// once per flush.
func (p *Publisher) Repair(team int64, typeIndex int, key string) {
	p.mu.Lock()
	pt, ok := p.pending[team]
	if !ok {
		pt = &pendingTrigger{rows: map[string]struct{}{}, groups: map[TriggerGroup]struct{}{}}
		p.pending[team] = pt
	}
	if len(pt.rows)+len(pt.groups) < 100_000 { // bounded: a flood is shed, a later miss asks again
		if typeIndex < 0 {
			pt.rows[key] = struct{}{}
		} else {
			pt.groups[TriggerGroup{Type: typeIndex, Key: key}] = struct{}{}
		}
	}
	p.mu.Unlock()
}

// Run publishes gathered repair requests every interval until ctx ends.
func (p *Publisher) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		pending := p.pending
		if len(pending) == 0 { // a new map each tick was an idle node's garbage
			p.mu.Unlock()
			continue
		}
		p.pending = map[int64]*pendingTrigger{}
		p.mu.Unlock()
		for team, pt := range pending {
			tr := &Trigger{Team: team}
			for k := range pt.rows {
				tr.Rows = append(tr.Rows, k)
			}
			for g := range pt.groups {
				tr.Groups = append(tr.Groups, g)
			}
			for _, part := range tr.split() {
				data, _ := json.Marshal(part) // strings and ints always marshal
				// Best effort: a lost repair only costs hits until the next miss asks again.
				_, _ = p.js.PublishAsync(p.prefix+strconv.FormatInt(team, 10), data)
			}
		}
	}
}
