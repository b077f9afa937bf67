package catalogtest

import (
	"crypto/rand"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/vexil-dev/vexil/catalog"
)

// markerName returns a name no other run has used: the suite may share a
// database with earlier runs.
func markerName(what string) string { return "test/" + what + "/" + rand.Text() }

func testMarkers(t *testing.T, h Harness) {
	c := open(t, h)
	ctx := t.Context()
	name := markerName("markers")
	_, err := c.GetMarker(ctx, name)
	wantErr(t, "get a missing marker", err, catalog.ErrNotFound)
	_, err = c.PutMarker(ctx, catalog.Marker{Name: name, Version: 1, Value: json.RawMessage(`1`)})
	wantErr(t, "replace a missing marker", err, catalog.ErrNotFound)

	m, err := c.PutMarker(ctx, catalog.Marker{Name: name, Value: json.RawMessage(`{"state":"seeding"}`)})
	must(t, "create", err)
	if m.Version != 1 || m.Name != name || string(m.Value) != `{"state":"seeding"}` || m.UpdatedAt.IsZero() {
		t.Fatalf("created %+v", m)
	}
	got, err := c.GetMarker(ctx, name)
	must(t, "get", err)
	sameJSON(t, "read back", got, m)
	_, err = c.PutMarker(ctx, catalog.Marker{Name: name, Value: json.RawMessage(`{"state":"other"}`)})
	wantErr(t, "create twice", err, catalog.ErrExists)
	_, err = c.PutMarker(ctx, catalog.Marker{Name: name, Version: 2, Value: json.RawMessage(`{}`)})
	wantErr(t, "replace from a wrong version", err, catalog.ErrConflict)
	m2, err := c.PutMarker(ctx, catalog.Marker{Name: name, Version: 1, Value: json.RawMessage(`{"state":"done"}`)})
	must(t, "replace", err)
	if m2.Version != 2 || string(m2.Value) != `{"state":"done"}` {
		t.Fatalf("replaced %+v", m2)
	}
	got, err = c.GetMarker(ctx, name)
	must(t, "get", err)
	sameJSON(t, "read back", got, m2)

	for _, bad := range []catalog.Marker{
		{Name: ""},
		{Name: strings.Repeat("n", catalog.MaxMarkerName+1)},
		{Name: markerName("bad"), Value: json.RawMessage(`{not json`)},
		{Name: markerName("bad"), Value: json.RawMessage(`"` + strings.Repeat("v", catalog.MaxMarkerValue) + `"`)},
		{Name: markerName("bad"), Version: -1},
	} {
		_, err := c.PutMarker(ctx, bad)
		wantErr(t, "invalid marker "+bad.Name[:min(len(bad.Name), 20)], err, catalog.ErrInvalid)
	}
}

// testConcurrentMarkers creates one marker from several writers at once
// (through a peer handle when the harness has one): exactly one wins.
func testConcurrentMarkers(t *testing.T, h Harness) {
	c := open(t, h)
	handles := []catalog.Catalog{c, c}
	if h.Peer != nil {
		p := h.Peer(t, c)
		t.Cleanup(func() { _ = p.Close() })
		handles[1] = p
	}
	name := markerName("race")
	const writers = 8
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			_, errs[i] = handles[i%2].PutMarker(t.Context(), catalog.Marker{Name: name, Value: json.RawMessage(`{"writer":` + string(rune('0'+i)) + `}`)})
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		default:
			wantErr(t, "losing writer "+string(rune('0'+i)), err, catalog.ErrExists)
		}
	}
	if won != 1 {
		t.Fatalf("%d writers created the marker, want 1", won)
	}
}
