package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/projector/ingest"
)

// Event names of the events mode: the load is counted (a pair the cohort
// tracks) but never makes anyone a member; a probe event makes its person
// a member at once.
const (
	loadEvent  = "vexil_freshness_load"
	probeEvent = "vexil_freshness_probe"
)

// runEventFreshness is -freshness -events: it publishes events at a fixed
// rate and, for a sample of them, polls /flags until the flag that
// targets the behavioural cohort "performed the probe event in the last
// hour" turns on for the event's person. Each sampled event is the first
// probe event of a person made for it; the others are load events of
// c.persons persons, which the cohort counts too (performed at least a
// million times in a day: never a member), so every event takes the whole
// counting path. Each run creates its own cohort and flag (named after the
// run's start), so that earlier runs' counters cannot answer for it.
func runEventFreshness(ctx context.Context, c freshnessConfig, stdout io.Writer) error {
	runID := time.Now().Unix()
	samples := int(c.rate*c.duration.Seconds())/c.sampleEvery + 1
	before, _, err := precomputeRun(ctx, c)
	if err != nil {
		return err
	}
	if err := ensureProbeFlag(ctx, c); err != nil {
		return err
	}
	cohort, err := createEventCohort(ctx, c, runID)
	if err != nil {
		return err
	}
	flagKey := fmt.Sprintf("freshness-events-%d", runID)
	if err := ensureFlag(ctx, c, flagKey, "Freshness probe (events)",
		fmt.Sprintf(`{"groups":[{"properties":[{"key":"id","type":"cohort","value":%d}],"rollout_percentage":100}]}`, cohort)); err != nil {
		return err
	}

	nc, err := nats.Connect(c.natsURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	loadID := func(i int) string { return fmt.Sprintf("fresh-ev-load-%d", i) }
	sampleID := func(i int) string { return fmt.Sprintf("fresh-ev-%d-%d", runID, i) }

	// The persons: an event of a distinct id without a person is not
	// counted. probe 2 turns the person probe flag on, which says the row
	// is there.
	personSubject := ingest.Subject(c.ns, ingest.Persons, c.team)
	var ids []string
	for i := range c.persons {
		ids = append(ids, loadID(i))
	}
	for i := range samples + 1 {
		ids = append(ids, sampleID(i))
	}
	for _, did := range ids {
		body := fmt.Sprintf(`{"type":"person_update","team":%d,"person_id":"person-%s","distinct_ids":[%q],"version":1,"$set":{"probe":2}}`, c.team, did, did)
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: personSubject, Data: []byte(body), Header: jsonHeader()}); err != nil {
			return err
		}
	}
	if err := waitAcks(js); err != nil {
		return err
	}
	if err := waitFor(ctx, 2*time.Minute, func() (bool, error) { return probe(ctx, client, c, ids[len(ids)-1]) }); err != nil {
		return fmt.Errorf("the persons' rows: %w", err)
	}
	if !c.waitRun {
		fmt.Fprintln(stdout, "(measuring while the precompute run the probe flag started may still be running)")
	} else if waited, err := waitPrecompute(ctx, c, before); err != nil {
		return err
	} else if waited > 0 {
		fmt.Fprintf(stdout, "(waited %v for the precompute run the probe flag started)\n", waited.Round(time.Second))
	}

	eventSubject := ingest.Subject(c.ns, ingest.Events, c.team)
	seq := 0
	publish := func(did, event string) error {
		seq++
		body := fmt.Sprintf(`{"type":"event","team":%d,"distinct_id":%q,"event":%q,"uuid":"%d-%d","timestamp":%q}`,
			c.team, did, event, runID, seq, time.Now().UTC().Format(time.RFC3339Nano))
		_, err := js.PublishMsgAsync(&nats.Msg{Subject: eventSubject, Data: []byte(body), Header: jsonHeader()})
		return err
	}
	// The projector follows the team's cohorts through the change notice:
	// the first probe event counted (the spare sample person) says the
	// cohort's pairs are tracked.
	warm := sampleID(samples)
	if err := waitFor(ctx, 2*time.Minute, func() (bool, error) {
		if err := publish(warm, probeEvent); err != nil {
			return false, err
		}
		time.Sleep(100 * time.Millisecond)
		return probeKey(ctx, client, c, warm, flagKey)
	}); err != nil {
		return fmt.Errorf("the cohort's events are not counted: %w", err)
	}

	var (
		mu      sync.Mutex
		delays  []time.Duration
		lost    int
		pending sync.WaitGroup
	)
	interval := time.Duration(float64(time.Second) / c.rate)
	start := time.Now()
	sent, sampled := 0, 0
	for i := 0; time.Since(start) < c.duration && sampled < samples; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		if ctx.Err() != nil {
			break
		}
		sent++
		if i%c.sampleEvery != 0 {
			if err := publish(loadID(i%c.persons), loadEvent); err != nil {
				return err
			}
			continue
		}
		did := sampleID(sampled)
		sampled++
		published := time.Now()
		if err := publish(did, probeEvent); err != nil {
			return err
		}
		pending.Add(1)
		go func() {
			defer pending.Done()
			deadline := published.Add(2 * time.Second)
			for time.Now().Before(deadline) {
				if on, err := probeKey(ctx, client, c, did, flagKey); err == nil && on {
					mu.Lock()
					delays = append(delays, time.Since(published))
					mu.Unlock()
					return
				}
				time.Sleep(500 * time.Microsecond)
			}
			mu.Lock()
			lost++
			mu.Unlock()
		}()
	}
	elapsed := time.Since(start)
	if err := waitAcks(js); err != nil {
		return err
	}
	pending.Wait()
	if len(delays) == 0 {
		return fmt.Errorf("no sampled event became visible (%d lost)", lost)
	}
	slices.Sort(delays)
	pct := func(q float64) time.Duration { return delays[min(len(delays)-1, int(q*float64(len(delays))))] }
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	fmt.Fprintf(stdout, "event freshness (flag %s) at %.0f events/s for %v (%d events sent, %.0f/s achieved): %d events followed, %d not visible within 2s; publish → visible in /flags p50 %v p90 %v p99 %v max %v\n",
		flagKey, c.rate, c.duration, sent, float64(sent)/elapsed.Seconds(), len(delays), lost, r(pct(0.5)), r(pct(0.9)), r(pct(0.99)), r(delays[len(delays)-1]))
	return nil
}

// createEventCohort creates the run's behavioural cohort and returns its
// id.
func createEventCohort(ctx context.Context, c freshnessConfig, runID int64) (int64, error) {
	body := fmt.Sprintf(`{"name":"freshness events %d","filters":{"properties":{"type":"OR","values":[
		{"key":%q,"type":"behavioral","value":"performed_event","time_value":1,"time_interval":"hour"},
		{"key":%q,"type":"behavioral","value":"performed_event_multiple","operator":"gte","operator_value":1000000,"time_value":1,"time_interval":"day"}]}}}`,
		runID, probeEvent, loadEvent)
	b, err := manage(ctx, c, fmt.Sprintf("/api/projects/%d/cohorts", c.team), []byte(body), false)
	if err != nil {
		return 0, fmt.Errorf("create the cohort: %w", err)
	}
	var co struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(b, &co); err != nil || co.ID <= 0 {
		return 0, fmt.Errorf("create the cohort: no id in %s", b)
	}
	return co.ID, nil
}

func jsonHeader() nats.Header { return nats.Header{"Content-Type": []string{"application/json"}} }

// waitAcks waits for the acks of the messages published asynchronously.
func waitAcks(js jetstream.JetStream) error {
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-time.After(time.Minute):
		return errors.New("publish acks did not arrive within a minute")
	}
}

// waitFor calls done until it reports true, for at most limit.
func waitFor(ctx context.Context, limit time.Duration, done func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := done()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("not yet")
			}
			return fmt.Errorf("after %v: %w", limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Bounds of -freshness -events: the persons made for the samples are
// rate × duration / 50.
const (
	maxEventRate     = 100_000
	maxEventDuration = 10 * time.Minute
)
