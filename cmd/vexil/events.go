package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/changes"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/namespace"
)

// catalogEvents gives the projector, per team, the compiled cohorts whose
// behavioural filters say which events to count (projector.Config.Events).
// A team's set is compiled from the catalog on first use (its cohorts, and
// its flags: a flag aggregating on a group type makes the pairs of its
// cohorts count on that type's group rows, Set.GroupEventPairs), kept
// until a change notice of the team or maxAge, and compiled again on the
// next event. When the catalog
// cannot answer, the last set is kept (nil before any: the events are not
// counted).
type catalogEvents struct {
	cat    catalog.Snapshotter
	ns     namespace.Name // of the change notices
	maxAge time.Duration
	now    func() time.Time
	log    *slog.Logger

	mu struct {
		sync.Mutex
		teams map[int64]*eventsEntry
	}
}

type eventsEntry struct {
	set    *flags.Set
	loaded time.Time
	stale  bool
}

func newCatalogEvents(cat catalog.Snapshotter, ns namespace.Name, log *slog.Logger) *catalogEvents {
	c := &catalogEvents{cat: cat, ns: ns, maxAge: time.Minute, now: time.Now, log: log}
	c.mu.teams = map[int64]*eventsEntry{}
	return c
}

// Set implements projector.Config.Events.
func (c *catalogEvents) Set(team int64) *flags.Set {
	c.mu.Lock()
	e := c.mu.teams[team]
	if e != nil && !e.stale && c.now().Sub(e.loaded) < c.maxAge {
		c.mu.Unlock()
		return e.set
	}
	c.mu.Unlock()

	set, err := c.load(team)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if !errors.Is(err, catalog.ErrNotFound) {
			c.log.Warn("cohorts for event counting not loaded; the last ones are used", "team", team, "err", err)
		}
		if e != nil {
			return e.set
		}
		return nil
	}
	c.mu.teams[team] = &eventsEntry{set: set, loaded: c.now()}
	return set
}

func (c *catalogEvents) load(team int64) (*flags.Set, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	snap, err := c.cat.Snapshot(ctx, team)
	if err != nil {
		return nil, err
	}
	d := snap.Definitions
	set, _ := flags.Compile(flags.Definitions{Flags: d.Flags, Cohorts: d.Cohorts, GroupTypes: d.GroupTypes,
		PropertyMatchingVersion: d.PropertyMatchingVersion, Timezone: d.Timezone})
	return set, nil
}

// Run marks a team's set stale on each of its change notices, until ctx is
// done.
func (c *catalogEvents) Run(ctx context.Context, nc *nats.Conn) error {
	sub, err := nc.Subscribe(changes.Wildcard(c.ns), func(msg *nats.Msg) {
		n, err := changes.Parse(c.ns, msg.Subject, msg.Data)
		if errors.Is(err, changes.ErrSubject) {
			return
		}
		c.mu.Lock()
		if e := c.mu.teams[n.Team]; e != nil {
			e.stale = true
		}
		c.mu.Unlock()
	})
	if err != nil {
		return fmt.Errorf("event counting: subscribe to change notices: %w", err)
	}
	<-ctx.Done()
	_ = sub.Unsubscribe()
	return nil
}
