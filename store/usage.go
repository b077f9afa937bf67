package store

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"
)

// Usage rows: the evaluation statistics package usage keeps (per flag, per
// team, per time bucket, per evaluation node). The store keeps them beside
// the evaluation data but outside every entity: Dump does not visit them
// and they never take part in convergence. Values are opaque to the store
// (package usage encodes them); each node writes only its own rows (Node
// is in the key), so a put replaces and readers merge the nodes' rows.
//
// Usage kinds (UsageRow.Kind):
const (
	UsageMinute  byte = 'm' // one minute bucket
	UsageHour    byte = 'h' // one hour bucket
	UsageDay     byte = 'd' // one UTC day bucket
	UsageLast    byte = 'l' // last evaluated (Bucket 0)
	UsageSetting byte = 's' // a team setting (Flag "", Bucket 0)
)

// Bounds of a usage row's key parts and value.
const (
	MaxUsageFlagBytes  = 400
	MaxUsageNodeBytes  = 128
	MaxUsageValueBytes = 256 << 10
)

// UsageRow is one stored usage row.
type UsageRow struct {
	Team int64
	// Flag is the flag key, "" for the team's own rows (polls, settings).
	Flag string
	Kind byte
	// Bucket is the bucket's start in Unix seconds (0 for UsageLast and
	// UsageSetting).
	Bucket int64
	// Node names the writer (an evaluation node's run); "" for shared rows.
	Node  string
	Value []byte
	// ExpiresAt (Unix seconds) is when the row may be deleted (retention);
	// 0 keeps it. Readers ask for bucket ranges inside the retention, so
	// a row past it but not yet deleted is never asked for.
	ExpiresAt int64
}

// Validate checks a row's bounds.
func (r UsageRow) Validate() error {
	switch r.Kind {
	case UsageMinute, UsageHour, UsageDay, UsageLast, UsageSetting:
	default:
		return fmt.Errorf("%w: usage kind %q", ErrInvalid, r.Kind)
	}
	switch {
	case len(r.Flag) > MaxUsageFlagBytes || !utf8.ValidString(r.Flag):
		return fmt.Errorf("%w: usage flag key: at most %d bytes of UTF-8", ErrInvalid, MaxUsageFlagBytes)
	case len(r.Node) > MaxUsageNodeBytes || !utf8.ValidString(r.Node):
		return fmt.Errorf("%w: usage node: at most %d bytes of UTF-8", ErrInvalid, MaxUsageNodeBytes)
	case len(r.Value) > MaxUsageValueBytes:
		return fmt.Errorf("%w: usage value: %d bytes over %d", ErrInvalid, len(r.Value), MaxUsageValueBytes)
	case r.Bucket < 0 || r.ExpiresAt < 0:
		return fmt.Errorf("%w: usage bucket and expiry must be >= 0", ErrInvalid)
	}
	return nil
}

// Expired reports whether the row is past its retention at now.
func (r UsageRow) Expired(now time.Time) bool {
	return r.ExpiresAt != 0 && r.ExpiresAt <= now.Unix()
}

// UsageStore persists usage rows; memstore, pebblestore and scyllastore
// implement it. Methods are safe for concurrent use.
type UsageStore interface {
	// PutUsage writes rows, each replacing the row of the same (Team,
	// Flag, Kind, Bucket, Node). Rows are validated first (ErrInvalid).
	PutUsage(ctx context.Context, rows []UsageRow) error
	// ScanUsage calls fn for each stored row of (team, flag, kind) with
	// from <= Bucket < to, in (Bucket, Node) order. An error from fn stops
	// the scan and is returned.
	ScanUsage(ctx context.Context, team int64, flag string, kind byte, from, to int64, fn func(UsageRow) error) error
	// SweepUsage deletes the rows expired at now and returns how many
	// (scyllastore writes a TTL instead: it deletes none itself).
	SweepUsage(ctx context.Context, now time.Time) (int, error)
}
