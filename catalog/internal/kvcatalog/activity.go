package kvcatalog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/internal/records"
)

// Each activity entry is written twice: in its team's log and in its
// item's, both newest first (the entry id inverted).
func itemPrefix(team int64, scope catalog.Scope, item string) keyBuf {
	return newKey(tagItemActivity).int(team).str(string(scope)).str(item)
}

// putEntry writes en to its team's log and to its item's.
func (e *Engine) putEntry(b *Batch, en catalog.ActivityEntry) error {
	if err := setJSON(b, newKey(tagActivity).int(en.TeamID).inverted(en.ID), en); err != nil {
		return err
	}
	return setJSON(b, itemPrefix(en.TeamID, en.Scope, en.ItemID).inverted(en.ID), en)
}

// ListActivity implements catalog.Activity. The cursor is the id of the
// last entry returned.
func (e *Engine) ListActivity(ctx context.Context, q catalog.ActivityQuery) ([]catalog.ActivityEntry, string, error) {
	if err := records.CheckQuery(q); err != nil {
		return nil, "", fmt.Errorf("catalog: list activity: %w", err)
	}
	var out []catalog.ActivityEntry
	var next string
	err := e.view(ctx, func(r Reader) error {
		prefix := newKey(tagActivity).int(q.TeamID)
		if q.ItemID != "" {
			prefix = itemPrefix(q.TeamID, q.Scope, q.ItemID)
		}
		lower := []byte(prefix)
		if q.Cursor != "" {
			lower = after(keyBuf(bytes.Clone(prefix)).inverted(q.Cursor))
		}
		limit := q.EffectiveLimit()
		return r.Scan(lower, upper(prefix), func(k, v []byte) (bool, error) {
			if len(out) == limit {
				next = out[len(out)-1].ID
				return false, nil
			}
			var en catalog.ActivityEntry
			if err := json.Unmarshal(v, &en); err != nil {
				return false, fmt.Errorf("decode %q: %w", k, err)
			}
			out = append(out, en)
			return true, nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("catalog: list activity: %w", err)
	}
	return out, next, nil
}
