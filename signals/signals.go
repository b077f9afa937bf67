package signals

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/streams"
)

// Direction says whether a row entered or left a cohort.
type Direction string

// The directions.
const (
	Entered Direction = "entered"
	Left    Direction = "left"
)

// Cause says what made a row enter or leave a cohort.
type Cause string

// The causes. CauseTime is time alone: the window of a behavioural filter
// moved (an event aged out, or a "did not perform" window reopened), and
// the signal's Time is the exact instant it did.
const (
	CauseEvent      Cause = "event"      // the row's event counters changed
	CauseProperties Cause = "properties" // the person's properties changed
	CauseTime       Cause = "time"       // nothing changed but the clock
	CauseDefinition Cause = "definition" // the cohort's definition changed
)

// Signal is one membership transition, as published (JSON).
type Signal struct {
	// ID identifies the transition (see the package doc): the JetStream
	// message id, and the webhook's delivery id.
	ID         string `json:"id"`
	Type       string `json:"type"` // "cohort.entered" or "cohort.left"
	Team       int64  `json:"team"`
	Cohort     int64  `json:"cohort"`
	DistinctID string `json:"distinct_id,omitempty"`
	PersonID   string `json:"person_id,omitempty"`
	// GroupType (its name) and GroupKey name the group of a group's
	// signal (a cohort read by a flag aggregating on groups), in place of
	// DistinctID and PersonID.
	GroupType string    `json:"group_type,omitempty"`
	GroupKey  string    `json:"group_key,omitempty"`
	Direction Direction `json:"direction"`
	Cause     Cause     `json:"cause"`
	// Time is when the transition happened on the evaluation clock: the
	// instant the window moved for CauseTime, otherwise when the worker
	// computed the row after the change.
	Time time.Time `json:"time"`
	// Ordinal counts the row's transitions in the cohort, from 1.
	Ordinal uint64 `json:"ordinal"`
}

// TypeOf returns a signal type for d: "cohort.entered" or "cohort.left".
func TypeOf(d Direction) string { return "cohort." + string(d) }

// SignalID returns the ID of a transition (package doc).
func SignalID(team int64, distinctID string, cohort int64, d Direction, ordinal uint64) string {
	var h idHash
	h.u64(uint64(team))
	h.str(distinctID)
	return h.transition(cohort, d, ordinal)
}

// GroupSignalID is SignalID for a group's transition: the group is named
// by its type index and key, hashed apart from any distinct id.
func GroupSignalID(team int64, typeIndex int, key string, cohort int64, d Direction, ordinal uint64) string {
	var h idHash
	h.raw("group")
	h.u64(uint64(team))
	h.u64(uint64(typeIndex))
	h.str(key)
	return h.transition(cohort, d, ordinal)
}

// idHash writes a signal id's fields into SHA-256: integers as 8 bytes
// big-endian, strings prefixed by their length. The ids are stored and
// deduplicated across versions, so the bytes must never change
// (TestSignalIDsStable).
type idHash struct {
	h hash.Hash
	b [8]byte
}

func (x *idHash) write(p []byte) {
	if x.h == nil {
		x.h = sha256.New()
	}
	x.h.Write(p)
}

func (x *idHash) raw(s string) { x.write([]byte(s)) }

func (x *idHash) u64(v uint64) {
	binary.BigEndian.PutUint64(x.b[:], v)
	x.write(x.b[:])
}

func (x *idHash) str(s string) {
	x.u64(uint64(len(s)))
	x.raw(s)
}

// transition ends the id with what every transition has: the cohort, the
// direction and the ordinal.
func (x *idHash) transition(cohort int64, d Direction, ordinal uint64) string {
	x.u64(uint64(cohort))
	x.raw(string(d))
	x.u64(ordinal)
	return hex.EncodeToString(x.h.Sum(nil)[:16])
}

// CohortSubject is the subject of team's cohort signals in ns:
// vexil.signals.<team>.cohort in namespace.Default.
func CohortSubject(ns namespace.Name, team int64) string {
	return ns.Subject("signals", strconv.FormatInt(team, 10), "cohort")
}

// CohortWildcard matches every team's cohort signal subject of ns.
func CohortWildcard(ns namespace.Name) string { return ns.Subject("signals", "*", "cohort") }

// TeamOf returns the team of a cohort signal subject of ns.
func TeamOf(ns namespace.Name, subject string) (int64, bool) {
	prefix, suffix := ns.Subject("signals")+".", ".cohort"
	if len(subject) <= len(prefix)+len(suffix) || subject[:len(prefix)] != prefix || subject[len(subject)-len(suffix):] != suffix {
		return 0, false
	}
	team, err := strconv.ParseInt(subject[len(prefix):len(subject)-len(suffix)], 10, 64)
	return team, err == nil
}

// DedupWindow is the signal stream's duplicate window: longer than any
// redo of an observation (a trigger's ack wait, 30 s by default, and its
// redeliveries), so a transition republished by a redo is dropped.
const DedupWindow = 15 * time.Minute

// MaxAge is how long the signal stream keeps signals.
const MaxAge = 7 * 24 * time.Hour

// Names are the signals' names on NATS in one namespace; the comments show
// namespace.Default's.
type Names struct {
	// Stream captures the cohort signals of every team. "VEXIL_SIGNALS".
	Stream string
	// Bucket holds the rows' membership records. "vexil_cohort_members".
	Bucket string
}

// NamesOf returns the names in ns.
func NamesOf(ns namespace.Name) Names {
	return Names{Stream: ns.Stream("SIGNALS"), Bucket: ns.Bucket("cohort_members")}
}

// Ensure creates the signal stream and the membership bucket of ns when
// missing and returns the bucket (streams.Ensure: an existing stream keeps
// its configuration, log is warned of differences).
func Ensure(ctx context.Context, js jetstream.JetStream, ns namespace.Name, log *slog.Logger) (jetstream.KeyValue, error) {
	n := NamesOf(ns)
	if _, err := streams.Ensure(ctx, js, jetstream.StreamConfig{Name: n.Stream, Description: "Vexil cohort membership signals",
		Subjects: []string{CohortWildcard(ns)}, Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
		MaxAge: MaxAge, Duplicates: DedupWindow}, log); err != nil {
		return nil, fmt.Errorf("signals: %w", err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: n.Bucket, Description: "Vexil cohort membership records",
		Storage: jetstream.FileStorage, History: 1})
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.KeyValue(ctx, n.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("signals: ensure bucket %s: %w", n.Bucket, err)
	}
	return kv, nil
}
