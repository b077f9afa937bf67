package pebblestore

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/internal/keyenc"
)

var _ store.UsageStore = (*Store)(nil)

// Usage keys: KindUsage, team, flag, kind, bucket (8 bytes big-endian),
// node; so one flag's rows of one kind are contiguous and sorted by
// bucket. The value is ExpiresAt (8 bytes big-endian), then the row's.

func usagePrefix(team int64, flag string, kind byte) []byte {
	b := keyenc.AppendTeam([]byte{keyenc.KindUsage}, team)
	return append(keyenc.AppendString(b, flag), kind)
}

func usageKey(r store.UsageRow) []byte {
	b := binary.BigEndian.AppendUint64(usagePrefix(r.Team, r.Flag, r.Kind), uint64(r.Bucket))
	return keyenc.AppendString(b, r.Node)
}

// PutUsage implements store.UsageStore. Usage rows are written without
// waiting for the disk (a crash may lose the last flush, a clean Close
// keeps it), so the flusher never holds up ingest's synced batches.
func (s *Store) PutUsage(ctx context.Context, rows []store.UsageRow) error {
	if err := s.enter("put usage"); err != nil {
		return err
	}
	defer s.leave()
	wb := s.db.NewBatch()
	defer wb.Close()
	for _, r := range rows {
		if err := r.Validate(); err != nil {
			return err
		}
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(r.Value)), uint64(r.ExpiresAt))
		if err := wb.Set(usageKey(r), append(v, r.Value...), nil); err != nil {
			return fmt.Errorf("pebblestore: put usage: %w", err)
		}
	}
	if err := wb.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("pebblestore: put usage: %w", err)
	}
	return nil
}

// ScanUsage implements store.UsageStore.
func (s *Store) ScanUsage(ctx context.Context, team int64, flag string, kind byte, from, to int64, fn func(store.UsageRow) error) error {
	if err := s.enter("scan usage"); err != nil {
		return err
	}
	defer s.leave()
	if from < 0 {
		from = 0
	}
	if to <= from {
		return nil
	}
	prefix := usagePrefix(team, flag, kind)
	lower := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), uint64(from))
	upper := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), uint64(to))
	var fnErr error
	err := s.iterate(ctx, lower, upper, func(k, v []byte) (bool, error) {
		rest := k[len(prefix):]
		if len(rest) < 8 || len(v) < 8 {
			return false, fmt.Errorf("%w: usage key %x", store.ErrCorrupt, k)
		}
		node, _, err := keyenc.String(rest[8:])
		if err != nil {
			return false, fmt.Errorf("%w: usage key %x", store.ErrCorrupt, k)
		}
		r := store.UsageRow{Team: team, Flag: flag, Kind: kind, Bucket: int64(binary.BigEndian.Uint64(rest)), Node: node,
			ExpiresAt: int64(binary.BigEndian.Uint64(v)), Value: append([]byte(nil), v[8:]...)}
		if fnErr = fn(r); fnErr != nil {
			return false, nil
		}
		return true, nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("pebblestore: scan usage: %w", err)
	}
	return nil
}

// SweepUsage implements store.UsageStore: it walks every usage row (a few
// per flag, node and bucket within the retention) and deletes the expired.
func (s *Store) SweepUsage(ctx context.Context, now time.Time) (int, error) {
	return s.sweepExpired(ctx, keyenc.KindUsage, "usage", now)
}

// sweepExpired deletes the rows of one key kind whose value starts with an
// expiry (8 bytes big-endian, Unix seconds; 0: none) at or before now: the
// usage and SLO rows, which keep their retention in the value as ScyllaDB
// keeps it in a TTL.
func (s *Store) sweepExpired(ctx context.Context, kind byte, what string, now time.Time) (int, error) {
	if err := s.enter("sweep " + what); err != nil {
		return 0, err
	}
	defer s.leave()
	wb := s.db.NewBatch()
	defer wb.Close()
	n := 0
	lower := []byte{kind}
	err := s.iterate(ctx, lower, keyenc.PrefixEnd(lower), func(k, v []byte) (bool, error) {
		if len(v) >= 8 {
			if at := int64(binary.BigEndian.Uint64(v)); at != 0 && at <= now.Unix() {
				n++
				return true, wb.Delete(k, nil)
			}
		}
		return true, nil
	})
	if err == nil && n > 0 {
		err = wb.Commit(pebble.NoSync)
	}
	if err != nil {
		return 0, fmt.Errorf("pebblestore: sweep %s: %w", what, err)
	}
	return n, nil
}
