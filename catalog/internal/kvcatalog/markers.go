package kvcatalog

import (
	"context"
	"fmt"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/internal/records"
)

func markerKey(name string) []byte { return newKey(tagMarker).last(name) }

// GetMarker implements catalog.Markers.
func (e *Engine) GetMarker(ctx context.Context, name string) (catalog.Marker, error) {
	m, err := pointGet[catalog.Marker](e, ctx, markerKey(name))
	if err != nil {
		return catalog.Marker{}, fmt.Errorf("catalog: get marker %s: %w", name, err)
	}
	return m, nil
}

// PutMarker implements catalog.Markers.
func (e *Engine) PutMarker(ctx context.Context, m catalog.Marker) (catalog.Marker, error) {
	out, err := writeValue(e, ctx, func(r Reader, b *Batch, now time.Time) (catalog.Marker, error) {
		next, err := records.PutMarker(m, now)
		if err != nil {
			return catalog.Marker{}, err
		}
		old, ok, err := getJSON[catalog.Marker](r, markerKey(m.Name))
		switch {
		case err != nil:
			return catalog.Marker{}, err
		case m.Version == 0 && ok:
			return catalog.Marker{}, catalog.ErrExists
		case m.Version != 0 && !ok:
			return catalog.Marker{}, catalog.ErrNotFound
		case ok && old.Version != m.Version:
			return catalog.Marker{}, conflict("marker", m.Version, old.Version)
		}
		return putRecord(b, markerKey(m.Name), next)
	})
	if err != nil {
		return catalog.Marker{}, fmt.Errorf("catalog: put marker %s: %w", m.Name, err)
	}
	return out, nil
}
