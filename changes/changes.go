package changes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/vexil-dev/vexil/namespace"
)

// Prefix starts every change-notice subject of ns ("vexil.changes." in
// namespace.Default).
func Prefix(ns namespace.Name) string { return ns.Subject("changes") + "." }

// Wildcard matches every team's change-notice subject of ns, and only those.
func Wildcard(ns namespace.Name) string { return Prefix(ns) + ">" }

// InstanceSubject carries the notices of ns about no one team (the
// revocation of a key): every node subscribes to it
// ("vexil.instance.changes" in namespace.Default). It lies outside
// Wildcard, so the consumers of team notices never see it.
func InstanceSubject(ns namespace.Name) string { return ns.Subject("instance") + ".changes" }

// MaxSize bounds a notice's payload. Notices are a few dozen bytes; a
// larger payload is not one.
const MaxSize = 16 << 10

// A Kind says what changed.
type Kind string

// The kinds of change. The management API announces the first five; the
// precompute worker announces KindPrecompute to itself when a team's stored
// results are not current (reconcile).
const (
	KindFlag        Kind = "flag"
	KindCohort      Kind = "cohort"
	KindEarlyAccess Kind = "early_access"
	KindTeam        Kind = "team"
	KindKey         Kind = "key"
	KindPrecompute  Kind = "precompute"
	// KindKeyRevoked is instance-wide (Team 0, on InstanceSubject): the
	// key ID was revoked, whichever teams it reached. Every node evicts
	// the key from its caches.
	KindKeyRevoked Kind = "key_revoked"
)

// Notice is published on Subject(ns, Team) after a committed change; a
// notice of an instance-wide kind (KindKeyRevoked) has Team 0 and goes to
// InstanceSubject(ns).
type Notice struct {
	Team int64 `json:"team_id"`
	Kind Kind  `json:"kind"`
	// ID is the changed entity's id (a flag's, a key's ...).
	ID      string `json:"id"`
	Key     string `json:"key,omitempty"`
	Version int64  `json:"version"`
	// Op is the activity action: created, updated, deleted, archived ...
	Op string `json:"op"`
}

// Errors of Encode and Parse.
var (
	// ErrSubject: the subject is not a change-notice subject.
	ErrSubject = errors.New("changes: not a change-notice subject")
	// ErrNotice: the notice cannot be encoded or its payload not read.
	ErrNotice = errors.New("changes: invalid notice")
)

// Subject is the subject of team's notices in ns.
func Subject(ns namespace.Name, team int64) string {
	return Prefix(ns) + strconv.FormatInt(team, 10)
}

// TeamOf returns the team of a change-notice subject of ns; false when
// subject is not one (another namespace or prefix, more tokens, a team that
// is not canonical).
func TeamOf(ns namespace.Name, subject string) (int64, bool) {
	rest, ok := strings.CutPrefix(subject, Prefix(ns))
	if !ok || rest == "" || rest[0] < '1' || rest[0] > '9' {
		return 0, false
	}
	team, err := strconv.ParseInt(rest, 10, 64)
	if err != nil {
		return 0, false
	}
	return team, true
}

// Instance reports whether the kind is instance-wide: its notices have
// Team 0 and go to InstanceSubject.
func (k Kind) Instance() bool { return k == KindKeyRevoked }

// Subject is the subject n is published on in ns.
func (n Notice) Subject(ns namespace.Name) string {
	if n.Kind.Instance() {
		return InstanceSubject(ns)
	}
	return Subject(ns, n.Team)
}

// Encode returns n's payload. The kind must be set; the team must be
// positive, or 0 for an instance-wide kind.
func (n Notice) Encode() ([]byte, error) {
	if n.Kind == "" {
		return nil, fmt.Errorf("%w: no kind", ErrNotice)
	}
	if n.Kind.Instance() {
		if n.Team != 0 {
			return nil, fmt.Errorf("%w: team %d on an instance-wide notice (%s)", ErrNotice, n.Team, n.Kind)
		}
		if n.ID == "" {
			return nil, fmt.Errorf("%w: no id on an instance-wide notice (%s)", ErrNotice, n.Kind)
		}
	} else if n.Team <= 0 {
		return nil, fmt.Errorf("%w: team %d is not positive", ErrNotice, n.Team)
	}
	data, err := json.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotice, err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrNotice, len(data), MaxSize)
	}
	return data, nil
}

// ParseInstance reads a notice published on InstanceSubject. A payload
// that cannot be read, or whose kind is not instance-wide, yields
// ErrNotice with a zero Notice: something instance-wide changed, not what.
func ParseInstance(data []byte) (Notice, error) {
	if len(data) > MaxSize {
		return Notice{}, fmt.Errorf("%w: payload of %d bytes, more than %d", ErrNotice, len(data), MaxSize)
	}
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return Notice{}, fmt.Errorf("%w: payload is not a JSON object", ErrNotice)
	}
	var n Notice
	if err := json.Unmarshal(data, &n); err != nil {
		return Notice{}, fmt.Errorf("%w: %w", ErrNotice, err)
	}
	if !n.Kind.Instance() || n.Team != 0 {
		return Notice{}, fmt.Errorf("%w: kind %q, team_id %d is not an instance-wide notice", ErrNotice, n.Kind, n.Team)
	}
	return n, nil
}

// Parse reads the notice published on subject of ns with payload data. The team
// comes from the subject (an invalid one: ErrSubject and a zero Notice). A
// payload that cannot be read (too large, not a JSON object, a member of
// the wrong type, another team) yields ErrNotice together with a Notice
// that carries the subject's team and nothing else: the team is known to
// have changed, not how.
func Parse(ns namespace.Name, subject string, data []byte) (Notice, error) {
	team, ok := TeamOf(ns, subject)
	if !ok {
		return Notice{}, fmt.Errorf("%w: %q", ErrSubject, subject)
	}
	bare := Notice{Team: team}
	if len(data) > MaxSize {
		return bare, fmt.Errorf("%w: payload of %d bytes, more than %d", ErrNotice, len(data), MaxSize)
	}
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return bare, fmt.Errorf("%w: payload is not a JSON object", ErrNotice)
	}
	var n Notice
	if err := json.Unmarshal(data, &n); err != nil {
		return bare, fmt.Errorf("%w: %w", ErrNotice, err)
	}
	if n.Team != 0 && n.Team != team {
		return bare, fmt.Errorf("%w: team_id %d on the subject of team %d", ErrNotice, n.Team, team)
	}
	n.Team = team
	return n, nil
}
