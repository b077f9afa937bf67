package scyllacatalog

import (
	"context"
	"fmt"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/internal/records"
)

// GetMarker implements catalog.Markers.
func (c *Catalog) GetMarker(ctx context.Context, name string) (catalog.Marker, error) {
	err := c.enter(ctx)
	var m catalog.Marker
	if err == nil {
		err = c.getData(ctx, &m, c.q.getMarker, name)
	}
	if err != nil {
		return catalog.Marker{}, fmt.Errorf("catalog: get marker %s: %w", name, err)
	}
	return m, nil
}

// PutMarker implements catalog.Markers: INSERT ... IF NOT EXISTS for
// version 0, UPDATE ... IF version = ? otherwise.
func (c *Catalog) PutMarker(ctx context.Context, m catalog.Marker) (catalog.Marker, error) {
	out, err := c.putMarker(ctx, m)
	if err != nil {
		return catalog.Marker{}, fmt.Errorf("catalog: put marker %s: %w", m.Name, err)
	}
	return out, nil
}

func (c *Catalog) putMarker(ctx context.Context, m catalog.Marker) (catalog.Marker, error) {
	if err := c.enter(ctx); err != nil {
		return m, err
	}
	next, err := records.PutMarker(m, c.now())
	if err != nil {
		return m, err
	}
	next, raw, err := records.Encode(next)
	if err != nil {
		return m, err
	}
	if m.Version == 0 {
		applied, _, err := c.cas(ctx, "marker", c.q.insertMarker, next.Name, next.Version, string(raw))
		if err == nil && !applied {
			err = catalog.ErrExists
		}
		if err != nil {
			return m, err
		}
		return next, nil
	}
	applied, row, err := c.cas(ctx, "marker", c.q.updateMarker, next.Version, string(raw), next.Name, m.Version)
	if err != nil {
		return m, err
	}
	if !applied {
		if _, ok := row["version"].(int64); !ok {
			return m, catalog.ErrNotFound // no row: the condition had nothing to compare
		}
		return m, notApplied("marker", m.Version, row)
	}
	return next, nil
}
