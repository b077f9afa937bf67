package store

import (
	"context"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// Inbox rows: the MCP signal inbox (package mcpsvc). Signals flow on NATS;
// each node copies the inbox stream's messages here, keyed by team and
// stream sequence, so a copy is an idempotent upsert and the sequence is
// the inbox cursor. Like usage rows they sit outside every entity: Dump
// does not visit them and they never take part in convergence.

// Bounds of inbox rows.
const (
	MaxSignalSubjectBytes = 256
	MaxSignalDataBytes    = 1 << 20
	MaxFindingIDBytes     = 64
)

// Signal is one stored signal of a team's inbox.
type Signal struct {
	Team int64
	// Seq is the inbox stream's sequence of the message: the cursor.
	Seq uint64
	// Subject is the NATS subject it was published on (its kind).
	Subject string
	// At is when the stream stored it, in Unix nanoseconds.
	At   int64
	Data []byte
	// ExpiresAt (Unix seconds) is when the row may be deleted (retention);
	// 0 keeps it.
	ExpiresAt int64
}

// Validate checks a signal's bounds.
func (s Signal) Validate() error {
	switch {
	case s.Team <= 0 || s.Seq == 0 || s.Seq > math.MaxInt64:
		return fmt.Errorf("%w: signal: team must be > 0 and seq in 1..2^63-1", ErrInvalid)
	case s.Subject == "" || len(s.Subject) > MaxSignalSubjectBytes || !utf8.ValidString(s.Subject):
		return fmt.Errorf("%w: signal subject: 1..%d bytes of UTF-8", ErrInvalid, MaxSignalSubjectBytes)
	case len(s.Data) > MaxSignalDataBytes:
		return fmt.Errorf("%w: signal data: %d bytes over %d", ErrInvalid, len(s.Data), MaxSignalDataBytes)
	case s.ExpiresAt < 0:
		return fmt.Errorf("%w: signal expiry must be >= 0", ErrInvalid)
	}
	return nil
}

// Expired reports whether the signal is past its retention at now.
func (s Signal) Expired(now time.Time) bool {
	return s.ExpiresAt != 0 && s.ExpiresAt <= now.Unix()
}

// ValidAckSeq checks an acknowledged position: 1..2^63-1, as signal
// sequences.
func ValidAckSeq(seq uint64) error {
	if seq == 0 || seq > math.MaxInt64 {
		return fmt.Errorf("%w: acknowledged position %d: 1..2^63-1", ErrInvalid, seq)
	}
	return nil
}

// ValidFindingID checks a finding id: 1..MaxFindingIDBytes of letters,
// digits, '-' and '_'.
func ValidFindingID(id string) error {
	if id == "" || len(id) > MaxFindingIDBytes {
		return fmt.Errorf("%w: finding id: 1..%d bytes", ErrInvalid, MaxFindingIDBytes)
	}
	for _, r := range id {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_') {
			return fmt.Errorf("%w: finding id: letters, digits, '-' and '_'", ErrInvalid)
		}
	}
	return nil
}

// InboxStore persists the signal inbox; memstore, pebblestore and
// scyllastore implement it. No method needs a lightweight transaction:
// every write is an upsert whose repetition or reordering gives the same
// state. Methods are safe for concurrent use.
type InboxStore interface {
	// PutSignals writes signals, each replacing the one of the same (Team,
	// Seq) (the same message copied again). Validated first (ErrInvalid).
	PutSignals(ctx context.Context, sigs []Signal) error
	// ListSignals returns up to limit of team's stored signals with Seq >
	// after, in Seq order, and whether more follow.
	ListSignals(ctx context.Context, team int64, after uint64, limit int) ([]Signal, bool, error)
	// CountSignals counts team's stored signals with Seq > after.
	CountSignals(ctx context.Context, team int64, after uint64) (uint64, error)
	// AckSignals records that team acknowledged up to seq (ValidAckSeq). The
	// acknowledged position only moves forward: of concurrent or late
	// acknowledgements the highest wins. expiresAt (Unix seconds, 0: never)
	// bounds how long this acknowledgement must be remembered: past it the
	// signals it covers have expired too.
	AckSignals(ctx context.Context, team int64, seq uint64, expiresAt int64) error
	// AckedSignals returns team's acknowledged position (0: none).
	AckedSignals(ctx context.Context, team int64) (uint64, error)
	// PutFinding remembers that the finding id of team was added to the
	// inbox (idempotent); ids are checked with ValidFindingID.
	PutFinding(ctx context.Context, team int64, id string) error
	// HasFinding reports whether PutFinding remembered id for team.
	HasFinding(ctx context.Context, team int64, id string) (bool, error)
	// SweepSignals deletes the signals expired at now and returns how many
	// (scyllastore writes a TTL instead: it deletes none itself).
	SweepSignals(ctx context.Context, now time.Time) (int, error)
}
