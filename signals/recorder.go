package signals

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/namespace"
)

// Membership is one cohort's membership of a row, as just computed.
type Membership struct {
	Cohort int64
	Member bool
	// ValidUntil is when it may change by time alone (zero: not by time).
	ValidUntil time.Time
}

// Observation is a row's memberships computed at Now, with what they were
// computed from. The row is a person's (DistinctID, PersonID) or, when
// GroupKey is set, a group's (GroupTypeIndex, GroupType its name,
// GroupKey).
type Observation struct {
	Team       int64
	DistinctID string
	PersonID   string
	// The group, for a group's row.
	GroupTypeIndex int
	GroupType      string
	GroupKey       string
	// Properties is the row's properties revision, Counters a hash of its
	// event counters: what changed between two observations names the
	// cause.
	Properties uint64
	Counters   uint64
	Now        time.Time
	// Members holds every watched cohort of the team, one entry each.
	Members []Membership
}

// record is the stored membership record of a row (JSON, short names: one
// per row of a team with behavioural cohorts).
type record struct {
	Properties uint64         `json:"p"`
	Counters   uint64         `json:"c"`
	Cohorts    []cohortRecord `json:"m"`
}

type cohortRecord struct {
	ID      int64  `json:"id"`
	Member  bool   `json:"in,omitempty"`
	Ordinal uint64 `json:"n,omitempty"`
	// Until is the membership's ValidUntil, Unix milliseconds (0: none).
	Until int64 `json:"u,omitempty"`
}

// Publish publishes one signal with its ID as the JetStream message id.
type Publish func(ctx context.Context, subject string, data []byte, msgID string) error

// Recorder derives signals from observations. It is safe for concurrent use.
type Recorder struct {
	ns      namespace.Name
	kv      jetstream.KeyValue
	publish Publish
}

// NewRecorder returns a Recorder over the bucket of Ensure, publishing
// through js.
func NewRecorder(ns namespace.Name, js jetstream.JetStream, kv jetstream.KeyValue) *Recorder {
	return &Recorder{ns: ns, kv: kv, publish: func(ctx context.Context, subject string, data []byte, msgID string) error {
		_, err := js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID))
		return err
	}}
}

// recordKey is the record's key: the team and a hash of the distinct id
// (a distinct id may hold characters a key may not); for a group, the
// team, "g" and the type index, and a hash of the group key.
func recordKey(o *Observation) string {
	if o.GroupKey != "" {
		h := sha256.Sum256([]byte(o.GroupKey))
		return "t" + strconv.FormatInt(o.Team, 10) + ".g" + strconv.Itoa(o.GroupTypeIndex) + "." + hex.EncodeToString(h[:16])
	}
	h := sha256.Sum256([]byte(o.DistinctID))
	return "t" + strconv.FormatInt(o.Team, 10) + "." + hex.EncodeToString(h[:16])
}

// subject names o's row in errors.
func (o *Observation) subject() string {
	if o.GroupKey != "" {
		return fmt.Sprintf("group %d/%q", o.GroupTypeIndex, o.GroupKey)
	}
	return strconv.Quote(o.DistinctID)
}

// maxAttempts bounds the compare-and-set retries of one observation
// against concurrent ones.
const maxAttempts = 8

// Observe publishes the transitions of o against the row's record and
// stores o as the new record. It returns the signals it published (a
// republished one, dropped by the stream as a duplicate, included). On an
// error nothing is lost: the caller redoes the observation, which publishes
// the same IDs.
func (r *Recorder) Observe(ctx context.Context, o Observation) ([]Signal, error) {
	key := recordKey(&o)
	for range maxAttempts {
		var old record
		var rev uint64
		e, err := r.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return nil, fmt.Errorf("signals: read record: %w", err)
		default:
			if err := json.Unmarshal(e.Value(), &old); err != nil {
				return nil, fmt.Errorf("signals: record of %s: %w", o.subject(), err)
			}
			rev = e.Revision()
		}
		next, out := transitions(old, rev != 0, o)
		if rev != 0 && equal(old, next) {
			return nil, nil
		}
		for _, s := range out {
			data, err := json.Marshal(s)
			if err != nil {
				return nil, fmt.Errorf("signals: encode: %w", err)
			}
			if err := r.publish(ctx, CohortSubject(r.ns, o.Team), data, s.ID); err != nil {
				return nil, fmt.Errorf("signals: publish: %w", err)
			}
		}
		data, err := json.Marshal(next)
		if err != nil {
			return nil, fmt.Errorf("signals: encode record: %w", err)
		}
		if rev == 0 {
			_, err = r.kv.Create(ctx, key, data)
		} else {
			_, err = r.kv.Update(ctx, key, data, rev)
		}
		if err == nil {
			return out, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !isWrongSequence(err) {
			return nil, fmt.Errorf("signals: write record: %w", err)
		}
		// Another observation wrote first: read its record and compare again.
	}
	return nil, fmt.Errorf("signals: record of %s: %d concurrent updates", o.subject(), maxAttempts)
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// transitions returns the record of o and the signals from old to it. A
// cohort absent from old (or no record at all) gets its baseline silently.
func transitions(old record, had bool, o Observation) (record, []Signal) {
	prev := make(map[int64]cohortRecord, len(old.Cohorts))
	for _, c := range old.Cohorts {
		prev[c.ID] = c
	}
	next := record{Properties: o.Properties, Counters: o.Counters, Cohorts: make([]cohortRecord, 0, len(o.Members))}
	var out []Signal
	for _, m := range o.Members {
		c := cohortRecord{ID: m.Cohort, Member: m.Member}
		if !m.ValidUntil.IsZero() {
			c.Until = m.ValidUntil.UnixMilli()
		}
		p, seen := prev[m.Cohort]
		if seen {
			c.Ordinal = p.Ordinal
		}
		if had && seen && p.Member != m.Member {
			c.Ordinal++
			d := Left
			if m.Member {
				d = Entered
			}
			cause, at := CauseDefinition, o.Now
			switch {
			case old.Properties != o.Properties:
				cause = CauseProperties
			case old.Counters != o.Counters:
				cause = CauseEvent
			case p.Until != 0 && p.Until <= o.Now.UnixMilli():
				cause, at = CauseTime, time.UnixMilli(p.Until).UTC()
			}
			s := Signal{Type: TypeOf(d), Team: o.Team, Cohort: m.Cohort, Direction: d, Cause: cause, Time: at.UTC(), Ordinal: c.Ordinal}
			if o.GroupKey != "" {
				s.ID = GroupSignalID(o.Team, o.GroupTypeIndex, o.GroupKey, m.Cohort, d, c.Ordinal)
				s.GroupType, s.GroupKey = o.GroupType, o.GroupKey
			} else {
				s.ID = SignalID(o.Team, o.DistinctID, m.Cohort, d, c.Ordinal)
				s.DistinctID, s.PersonID = o.DistinctID, o.PersonID
			}
			out = append(out, s)
		}
		next.Cohorts = append(next.Cohorts, c)
	}
	return next, out
}

func equal(a, b record) bool {
	if a.Properties != b.Properties || a.Counters != b.Counters || len(a.Cohorts) != len(b.Cohorts) {
		return false
	}
	for i := range a.Cohorts {
		if a.Cohorts[i] != b.Cohorts[i] {
			return false
		}
	}
	return true
}
