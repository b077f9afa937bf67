package precompute

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/namespace"
)

// Backlog is the work the workers of a namespace have not finished, read
// from NATS: what any worker still has to do, not only this one.
type Backlog struct {
	// Triggers and Pages are the row triggers and run pages not yet
	// acknowledged (waiting, or being computed); Notices the change
	// notices not yet handled.
	Triggers, Pages, Notices uint64
	// Runs counts the teams whose latest run has not finished.
	Runs int
}

// Idle reports whether nothing is left: a benchmark measures steady
// state only then (scripts/bench-peers.sh waits for it).
func (b Backlog) Idle() bool { return b == Backlog{} }

// BacklogOf reads the backlog of namespace ns. Consumers and a bucket not
// made yet count as nothing to do.
func BacklogOf(ctx context.Context, js jetstream.JetStream, ns namespace.Name) (Backlog, error) {
	n := NamesOf(ns)
	var b Backlog
	for _, c := range []struct {
		stream, durable string
		into            *uint64
	}{
		{n.Stream, "precompute-rows", &b.Triggers},
		{n.Stream, "precompute-pages", &b.Pages},
		{n.ChangeStream, "precompute-runs", &b.Notices},
	} {
		cons, err := js.Consumer(ctx, c.stream, c.durable)
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return Backlog{}, fmt.Errorf("precompute: backlog: consumer %s: %w", c.durable, err)
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return Backlog{}, fmt.Errorf("precompute: backlog: consumer %s: %w", c.durable, err)
		}
		*c.into = info.NumPending + uint64(info.NumAckPending)
	}
	kv, err := js.KeyValue(ctx, n.RunBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return b, nil
	}
	if err != nil {
		return Backlog{}, fmt.Errorf("precompute: backlog: run bucket: %w", err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return Backlog{}, fmt.Errorf("precompute: backlog: run bucket keys: %w", err)
	}
	var teams []string
	for k := range keys.Keys() { // closed once every key was listed
		teams = append(teams, k)
	}
	r := runs{kv}
	for _, k := range teams {
		var team int64
		if _, err := fmt.Sscan(k, &team); err != nil {
			continue // not a team's state
		}
		st, _, err := r.get(ctx, team)
		if err != nil {
			return Backlog{}, err
		}
		if st != nil && !st.Finished() {
			b.Runs++
		}
	}
	return b, nil
}

// backlogCollector exports the backlog as vexil_precompute_backlog, read
// from NATS at each scrape: no goroutine polls it in between.
type backlogCollector struct {
	js   jetstream.JetStream
	ns   namespace.Name
	desc *prometheus.Desc
}

func newBacklogCollector(js jetstream.JetStream, ns namespace.Name) *backlogCollector {
	return &backlogCollector{js: js, ns: ns, desc: prometheus.NewDesc("vexil_precompute_backlog",
		"Precompute work not finished by any worker, by kind: row triggers and run pages not acknowledged, change notices not handled, "+
			"teams whose latest run has not finished (runs). All zero: precompute is idle.", []string{"work"}, nil)}
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b, err := BacklogOf(ctx, c.js, c.ns)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, v := range []struct {
		work string
		n    float64
	}{{"triggers", float64(b.Triggers)}, {"pages", float64(b.Pages)}, {"notices", float64(b.Notices)}, {"runs", float64(b.Runs)}} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v.n, v.work)
	}
}
