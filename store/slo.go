package store

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"
)

// SLO rollup rows: the per-minute latency and error rollups package slo
// keeps for the service level objectives (one series per kind of
// evaluation: remote, local). Like usage rows they live beside the
// evaluation data but outside every entity: Dump does not visit them and
// they never take part in convergence. Values are opaque to the store
// (package slo encodes them); each node writes only its own rows (Node is
// in the key), so a put replaces and readers sum the nodes' rows.
//
// The shape follows the usage rows (UsageRow) on purpose: the two are
// meant to become one kind of rollup row.

// Bounds of an SLO row's key parts and value.
const (
	MaxSLOSeriesBytes = 64
	MaxSLONodeBytes   = 128
	MaxSLOValueBytes  = 16 << 10
)

// SLORow is one stored SLO rollup: one series, one minute, one node.
type SLORow struct {
	Series string
	// Minute is the bucket's start in Unix seconds (a multiple of 60).
	Minute int64
	// Node names the writer (an evaluation node's run).
	Node  string
	Value []byte
	// ExpiresAt (Unix seconds) is when the row may be deleted; 0 keeps it.
	ExpiresAt int64
}

// Validate checks a row's bounds.
func (r SLORow) Validate() error {
	switch {
	case r.Series == "" || len(r.Series) > MaxSLOSeriesBytes || !utf8.ValidString(r.Series):
		return fmt.Errorf("%w: slo series: 1 to %d bytes of UTF-8", ErrInvalid, MaxSLOSeriesBytes)
	case len(r.Node) > MaxSLONodeBytes || !utf8.ValidString(r.Node):
		return fmt.Errorf("%w: slo node: at most %d bytes of UTF-8", ErrInvalid, MaxSLONodeBytes)
	case len(r.Value) > MaxSLOValueBytes:
		return fmt.Errorf("%w: slo value: %d bytes over %d", ErrInvalid, len(r.Value), MaxSLOValueBytes)
	case r.Minute < 0 || r.Minute%60 != 0:
		return fmt.Errorf("%w: slo minute %d: a non-negative multiple of 60", ErrInvalid, r.Minute)
	case r.ExpiresAt < 0:
		return fmt.Errorf("%w: slo expiry must be >= 0", ErrInvalid)
	}
	return nil
}

// Expired reports whether the row is past its retention at now.
func (r SLORow) Expired(now time.Time) bool {
	return r.ExpiresAt != 0 && r.ExpiresAt <= now.Unix()
}

// SLOStore persists SLO rollup rows; pebblestore and scyllastore
// implement it. Methods are safe for concurrent use.
type SLOStore interface {
	// PutSLO writes rows, each replacing the row of the same (Series,
	// Minute, Node). Rows are validated first (ErrInvalid).
	PutSLO(ctx context.Context, rows []SLORow) error
	// ScanSLO calls fn for each stored row of series with from <= Minute
	// < to, in (Minute, Node) order. An error from fn stops the scan and
	// is returned.
	ScanSLO(ctx context.Context, series string, from, to int64, fn func(SLORow) error) error
	// SweepSLO deletes the rows expired at now and returns how many
	// (scyllastore writes a TTL instead: it deletes none itself).
	SweepSLO(ctx context.Context, now time.Time) (int, error)
}
