package kvcatalog

import (
	"context"
	"fmt"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/internal/records"
)

// A key is stored under its hash (the lookup of every authenticated
// request); its id points at the hash, and each team it reaches indexes
// its id.
func keyKey(id string) []byte              { return newKey(tagKey).last(id) }
func keyHashKey(h []byte) []byte           { return newKey(tagKeyHash).last(string(h)) }
func keyTeamKey(t int64, id string) []byte { return newKey(tagKeyTeam).int(t).last(id) }

// PutKey implements catalog.Keys.
func (e *Engine) PutKey(ctx context.Context, k catalog.APIKey, ch catalog.Change) (catalog.APIKey, error) {
	out, err := writeValue(e, ctx, func(r Reader, b *Batch, now time.Time) (catalog.APIKey, error) {
		nk, err := records.NewKey(k, now)
		if err != nil {
			return catalog.APIKey{}, err
		}
		for _, key := range [][]byte{keyKey(nk.ID), keyHashKey(nk.Hash)} {
			if _, ok, err := r.Get(key); err != nil {
				return catalog.APIKey{}, err
			} else if ok {
				return catalog.APIKey{}, catalog.ErrExists
			}
		}
		out, err := putRecord(b, keyHashKey(nk.Hash), nk)
		if err != nil {
			return catalog.APIKey{}, err
		}
		b.Set(keyKey(nk.ID), nk.Hash)
		for _, t := range records.KeyTeams(nk) {
			b.Set(keyTeamKey(t, nk.ID), nil)
		}
		return out, e.logKey(b, now, nk, records.ActionCreated, ch, nil)
	})
	if err != nil {
		return catalog.APIKey{}, fmt.Errorf("catalog: put key %s: %w", k.ID, err)
	}
	return out, nil
}

// logKey writes the activity entries of a change of key k: one in each
// team it reaches.
func (e *Engine) logKey(b *Batch, now time.Time, k catalog.APIKey, action string, ch catalog.Change, before any) error {
	for _, t := range records.KeyTeams(k) {
		en, err := records.Entry(&e.ids, now, t, catalog.ScopeKey, k.ID, action, ch, before, k)
		if err != nil {
			return err
		}
		if err := e.putEntry(b, en); err != nil {
			return err
		}
	}
	return nil
}

// getKey reads a key by id: its hash, then the key.
func getKey(r Reader, id string) (catalog.APIKey, error) {
	hash, ok, err := r.Get(keyKey(id))
	if err != nil {
		return catalog.APIKey{}, err
	}
	if !ok {
		return catalog.APIKey{}, catalog.ErrNotFound
	}
	return get[catalog.APIKey](r, keyHashKey(hash))
}

// GetKey implements catalog.Keys.
func (e *Engine) GetKey(ctx context.Context, id string) (catalog.APIKey, error) {
	k, err := viewValue(e, ctx, func(r Reader) (catalog.APIKey, error) { return getKey(r, id) })
	if err != nil {
		return catalog.APIKey{}, fmt.Errorf("catalog: get key %s: %w", id, err)
	}
	return k, nil
}

// GetKeyByHash implements catalog.Keys.
func (e *Engine) GetKeyByHash(ctx context.Context, hash []byte) (catalog.APIKey, error) {
	var k catalog.APIKey
	err := e.point(ctx, func(r Reader) error {
		if len(hash) == 0 {
			return catalog.ErrNotFound
		}
		var err error
		k, err = get[catalog.APIKey](r, keyHashKey(hash))
		return err
	})
	if err != nil {
		return catalog.APIKey{}, fmt.Errorf("catalog: get key by hash: %w", err)
	}
	return k, nil
}

// ListKeys implements catalog.Keys.
func (e *Engine) ListKeys(ctx context.Context, teamID int64) ([]catalog.APIKey, error) {
	out, err := viewValue(e, ctx, func(r Reader) ([]catalog.APIKey, error) {
		prefix := newKey(tagKeyTeam).int(teamID)
		var ids []string
		if err := r.Scan(prefix, upper(prefix), func(k, _ []byte) (bool, error) {
			ids = append(ids, string(k[len(prefix):]))
			return true, nil
		}); err != nil {
			return nil, err
		}
		var out []catalog.APIKey
		for _, id := range ids {
			k, err := getKey(r, id)
			if err != nil {
				return nil, err
			}
			out = append(out, k)
		}
		return out, nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: list keys of team %d: %w", teamID, err)
	}
	return out, nil
}

// RevokeKey implements catalog.Keys.
func (e *Engine) RevokeKey(ctx context.Context, id string, ch catalog.Change) (catalog.APIKey, error) {
	out, err := writeValue(e, ctx, func(r Reader, b *Batch, now time.Time) (catalog.APIKey, error) {
		old, err := getKey(r, id)
		if err != nil {
			return catalog.APIKey{}, err
		}
		nk, err := records.Revoked(old, now)
		if err != nil {
			return catalog.APIKey{}, err
		}
		out, err := putRecord(b, keyHashKey(nk.Hash), nk)
		if err != nil {
			return catalog.APIKey{}, err
		}
		return out, e.logKey(b, now, nk, records.ActionRevoked, ch, old)
	})
	if err != nil {
		return catalog.APIKey{}, fmt.Errorf("catalog: revoke key %s: %w", id, err)
	}
	return out, nil
}
