package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/projector/ingest"
)

// freshnessConfig is a publish → visible measurement.
type freshnessConfig struct {
	httpBase    string // http://127.0.0.1:8000
	natsURL     string
	ns          namespace.Name // of the serving environment
	token       string         // project token
	personalKey string         // to create the probe flag
	waitRun     bool           // wait for the precompute run the probe flag starts
	team        int64
	rate        float64       // person writes per second
	duration    time.Duration // of the writes
	persons     int           // distinct ids written in turn
	sampleEvery int           // one write in sampleEvery is followed to visibility
}

const probeFlag = "freshness-probe"

// runFreshness publishes person updates at a fixed rate and, for a sample of
// them, polls /flags until the new value shows: the probe flag is on when
// the person's "probe" property is even, and every write flips the parity.
func runFreshness(ctx context.Context, c freshnessConfig, stdout io.Writer) error {
	before, _, err := precomputeRun(ctx, c)
	if err != nil {
		return err
	}
	if err := ensureProbeFlag(ctx, c); err != nil {
		return err
	}
	// Creating the probe flag starts a precompute run over every row; the
	// steady state is measured, after it.
	if !c.waitRun {
		fmt.Fprintln(stdout, "(measuring while the precompute run the probe flag started may still be running)")
	} else if waited, err := waitPrecompute(ctx, c, before); err != nil {
		return err
	} else if waited > 0 {
		fmt.Fprintf(stdout, "(waited %v for the precompute run the probe flag started)\n", waited.Round(time.Second))
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
	var (
		mu      sync.Mutex
		delays  []time.Duration
		lost    int
		pending sync.WaitGroup
	)
	seq := make([]int, c.persons)
	interval := time.Duration(float64(time.Second) / c.rate)
	start := time.Now()
	subject := ingest.Subject(c.ns, ingest.Persons, c.team)
	for i := 0; time.Since(start) < c.duration; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		if ctx.Err() != nil {
			break
		}
		p := i % c.persons
		seq[p]++
		v := seq[p]
		did := fmt.Sprintf("fresh-%d", p)
		body := fmt.Sprintf(`{"type":"person_update","team":%d,"person_id":"fresh-person-%d","distinct_ids":[%q],"version":%d,"$set":{"probe":%d}}`, c.team, p, did, v, v)
		published := time.Now()
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: []byte(body), Header: nats.Header{"Content-Type": []string{"application/json"}}}); err != nil {
			return err
		}
		if i%c.sampleEvery != 0 || i < c.persons { // the first round creates the persons
			continue
		}
		pending.Add(1)
		go func(did string, want bool, published time.Time) {
			defer pending.Done()
			deadline := published.Add(2 * time.Second)
			for time.Now().Before(deadline) {
				got, err := probe(ctx, client, c, did)
				if err == nil && got == want {
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
		}(did, v%2 == 0, published)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		return errors.New("publish acks did not arrive within a minute")
	}
	pending.Wait()
	if len(delays) == 0 {
		return fmt.Errorf("no sampled write became visible (%d lost)", lost)
	}
	slices.Sort(delays)
	pct := func(q float64) time.Duration { return delays[min(len(delays)-1, int(q*float64(len(delays))))] }
	fmt.Fprintf(stdout, "freshness at %.0f person writes/s for %v: %d writes followed, %d not visible within 2s; publish → visible in /flags p50 %v p90 %v p99 %v max %v\n",
		c.rate, c.duration, len(delays), lost, pct(0.5).Round(10*time.Microsecond), pct(0.9).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), delays[len(delays)-1].Round(10*time.Microsecond))
	return nil
}

func probe(ctx context.Context, client *http.Client, c freshnessConfig, did string) (bool, error) {
	return probeKey(ctx, client, c, did, probeFlag)
}

// probeKey asks /flags whether the flag key is on for did.
func probeKey(ctx context.Context, client *http.Client, c freshnessConfig, did, key string) (bool, error) {
	body := fmt.Sprintf(`{"token":%q,"distinct_id":%q,"flag_keys_to_evaluate":[%q]}`, c.token, did, key)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.httpBase+"/flags/?v=2", strings.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return false, err
	}
	defer res.Body.Close()
	var out struct {
		Flags map[string]struct {
			Enabled bool `json:"enabled"`
		} `json:"flags"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		return false, err
	}
	return out.Flags[key].Enabled, nil
}

// ensureProbeFlag creates the probe flag through the management API unless
// it exists.
func ensureProbeFlag(ctx context.Context, c freshnessConfig) error {
	return ensureFlag(ctx, c, probeFlag, "Freshness probe", `{"groups":[{"properties":[{"key":"probe","type":"person","operator":"regex","value":"[02468]$"}],"rollout_percentage":100}]}`)
}

// ensureFlag creates a flag through the management API unless it exists,
// and waits until /flags serves it.
func ensureFlag(ctx context.Context, c freshnessConfig, key, name, filters string) error {
	body, _ := json.Marshal(map[string]any{"key": key, "name": name, "active": true, "filters": json.RawMessage(filters)})
	if _, err := manage(ctx, c, fmt.Sprintf("/api/projects/%d/feature_flags", c.team), body, true); err != nil {
		return fmt.Errorf("create the flag %s: %w", key, err)
	}
	// The evaluation nodes reload on the change notice; wait until the flag
	// is served.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.httpBase+"/flags/?v=2",
			strings.NewReader(fmt.Sprintf(`{"token":%q,"distinct_id":"x","flag_keys_to_evaluate":[%q]}`, c.token, key)))
		req.Header.Set("Content-Type", "application/json")
		if res, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if bytes.Contains(b, []byte(key)) {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("the flag %s was never served", key)
}

// manage POSTs body to the management API's path and returns the response
// body; a 409 is success when conflictOK. A refusal under load (429, 503)
// is retried after its Retry-After, for up to a minute.
func manage(ctx context.Context, c freshnessConfig, path string, body []byte, conflictOK bool) ([]byte, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.httpBase+path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+c.personalKey)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		switch {
		case res.StatusCode < 300:
			return b, nil
		case res.StatusCode == http.StatusConflict && conflictOK:
			return b, nil
		case (res.StatusCode == http.StatusServiceUnavailable || res.StatusCode == http.StatusTooManyRequests) && time.Now().Before(deadline):
			wait := time.Second
			if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && s > 0 && s <= 10 {
				wait = time.Duration(s) * time.Second
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(wait):
			}
			continue
		}
		return nil, fmt.Errorf("%d %s", res.StatusCode, b)
	}
}

// precomputeRun returns the id and state of the team's latest precompute
// run; ok is false when the server has no precompute.
func precomputeRun(ctx context.Context, c freshnessConfig) (string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/projects/%d/precompute", c.httpBase, c.team), nil)
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.personalKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", err
	}
	defer res.Body.Close()
	var st struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&st) != nil {
		return "", "", nil // no precompute here
	}
	return st.ID, st.State, nil
}

// waitPrecompute waits until a run other than before has finished, or 5 s
// pass without a new run (the probe flag existed already), and returns how
// long it waited.
func waitPrecompute(ctx context.Context, c freshnessConfig, before string) (time.Duration, error) {
	start := time.Now()
	for {
		id, state, err := precomputeRun(ctx, c)
		switch {
		case err != nil:
			return 0, err
		case state == "":
			return 0, nil
		case id != before && (state == "PRECOMPUTE_STATE_FINISHED" || state == "PRECOMPUTE_STATE_NONE"):
			return time.Since(start), nil
		case id == before && time.Since(start) > 5*time.Second:
			return 0, nil
		case time.Since(start) > 10*time.Minute:
			return 0, fmt.Errorf("the precompute run is still %s after %v", state, time.Since(start).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
