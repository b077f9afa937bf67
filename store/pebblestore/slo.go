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

var _ store.SLOStore = (*Store)(nil)

// SLO keys: KindSLO, series, minute (8 bytes big-endian), node; so one
// series' rows are contiguous and sorted by minute. The value is
// ExpiresAt (8 bytes big-endian), then the row's.

func sloPrefix(series string) []byte {
	return keyenc.AppendString([]byte{keyenc.KindSLO}, series)
}

func sloKey(r store.SLORow) []byte {
	b := binary.BigEndian.AppendUint64(sloPrefix(r.Series), uint64(r.Minute))
	return keyenc.AppendString(b, r.Node)
}

// PutSLO implements store.SLOStore. Rows are written without waiting for
// the disk (a crash may lose the last minute, a clean Close keeps it), so
// the flusher never holds up ingest's synced batches.
func (s *Store) PutSLO(ctx context.Context, rows []store.SLORow) error {
	if err := s.enter("put slo"); err != nil {
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
		if err := wb.Set(sloKey(r), append(v, r.Value...), nil); err != nil {
			return fmt.Errorf("pebblestore: put slo: %w", err)
		}
	}
	if err := wb.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("pebblestore: put slo: %w", err)
	}
	return nil
}

// ScanSLO implements store.SLOStore.
func (s *Store) ScanSLO(ctx context.Context, series string, from, to int64, fn func(store.SLORow) error) error {
	if err := s.enter("scan slo"); err != nil {
		return err
	}
	defer s.leave()
	if from < 0 {
		from = 0
	}
	if to <= from {
		return nil
	}
	prefix := sloPrefix(series)
	lower := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), uint64(from))
	upper := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), uint64(to))
	var fnErr error
	err := s.iterate(ctx, lower, upper, func(k, v []byte) (bool, error) {
		rest := k[len(prefix):]
		if len(rest) < 8 || len(v) < 8 {
			return false, fmt.Errorf("%w: slo key %x", store.ErrCorrupt, k)
		}
		node, _, err := keyenc.String(rest[8:])
		if err != nil {
			return false, fmt.Errorf("%w: slo key %x", store.ErrCorrupt, k)
		}
		r := store.SLORow{Series: series, Minute: int64(binary.BigEndian.Uint64(rest)), Node: node,
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
		return fmt.Errorf("pebblestore: scan slo: %w", err)
	}
	return nil
}

// SweepSLO implements store.SLOStore: it walks every SLO row (one per
// series, node and minute within the retention) and deletes the expired.
func (s *Store) SweepSLO(ctx context.Context, now time.Time) (int, error) {
	return s.sweepExpired(ctx, keyenc.KindSLO, "slo", now)
}
