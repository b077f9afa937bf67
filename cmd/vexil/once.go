package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/vexil-dev/vexil/catalog"
)

// Marker names of the one-time jobs of a cluster.
const (
	markerDemo     = "vexil/demo"
	markerFirstKey = "vexil/first-key"
)

// onceState is the value of a one-time job's marker.
type onceState struct {
	// State is onceRunning, onceDone or onceFailed.
	State string    `json:"state"`
	Node  string    `json:"node,omitempty"`
	Since time.Time `json:"since"`
	// Result is what the job returned (onceDone).
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

const (
	onceRunning = "running"
	onceDone    = "done"
	onceFailed  = "failed"
)

// clusterOnce runs a job once per cluster, through a marker in the shared
// catalog. The node that creates the marker (compare-and-set) runs the job
// and stores its result; the others wait for that result. A job that
// failed, or still runs after stale (its node died), is taken over by the
// next node with a compare-and-set, so two nodes never run it together.
type clusterOnce struct {
	markers catalog.Markers
	name    string
	// node names this node in the marker (host and process id).
	node  string
	stale time.Duration
	poll  time.Duration
	now   func() time.Time
}

func newClusterOnce(m catalog.Markers, name string, stale time.Duration) clusterOnce {
	host, _ := os.Hostname()
	return clusterOnce{markers: m, name: name, node: fmt.Sprintf("%s/%d", host, os.Getpid()),
		stale: stale, poll: 200 * time.Millisecond, now: time.Now}
}

// do returns the job's result, running the job when this node is the one
// to run it (ran is then true).
func (o clusterOnce) do(ctx context.Context, job func(ctx context.Context) (json.RawMessage, error)) (result json.RawMessage, ran bool, err error) {
	for {
		m, err := o.markers.GetMarker(ctx, o.name)
		var claim catalog.Marker
		switch {
		case errors.Is(err, catalog.ErrNotFound):
			claim = catalog.Marker{Name: o.name} // create
		case err != nil:
			return nil, false, fmt.Errorf("marker %s: %w", o.name, err)
		default:
			var st onceState
			if err := json.Unmarshal(m.Value, &st); err != nil {
				return nil, false, fmt.Errorf("marker %s: %w", o.name, err)
			}
			switch {
			case st.State == onceDone:
				return st.Result, false, nil
			case st.State == onceRunning && o.now().Sub(st.Since) < o.stale:
				select { // another node runs it: wait for its result
				case <-ctx.Done():
					return nil, false, ctx.Err()
				case <-time.After(o.poll):
				}
				continue
			}
			claim = m // failed, or stale: take over
		}
		claimed, err := o.put(ctx, claim, onceState{State: onceRunning, Node: o.node, Since: o.now().UTC()})
		if errors.Is(err, catalog.ErrExists) || errors.Is(err, catalog.ErrConflict) {
			continue // another node claimed it first
		}
		if err != nil {
			return nil, false, err
		}
		result, jerr := job(ctx)
		end := onceState{State: onceDone, Node: o.node, Since: o.now().UTC(), Result: result}
		if jerr != nil {
			end = onceState{State: onceFailed, Node: o.node, Since: o.now().UTC(), Error: jerr.Error()}
		}
		// The marker is written without the job's context: a job cut
		// short by shutdown is marked failed, so the next start retries.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		_, err = o.put(wctx, claimed, end)
		cancel()
		if jerr != nil {
			return nil, true, jerr
		}
		if err != nil {
			return nil, true, err
		}
		return result, true, nil
	}
}

// put writes st over m (a compare-and-set on m.Version; 0 creates it).
func (o clusterOnce) put(ctx context.Context, m catalog.Marker, st onceState) (catalog.Marker, error) {
	v, err := json.Marshal(st)
	if err != nil {
		return m, err
	}
	out, err := o.markers.PutMarker(ctx, catalog.Marker{Name: o.name, Version: m.Version, Value: v})
	if err != nil {
		return m, fmt.Errorf("marker %s: %w", o.name, err)
	}
	return out, nil
}
