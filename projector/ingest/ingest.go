// Package ingest decodes and validates the messages producers publish on the
// Vexil ingest subjects (the contract of proto/vexil/ingest/v1 and
// docs/ingest.md), in both encodings: protobuf (the default) and JSON.
//
// Decode turns a NATS message (subject, Content-Type header, payload) into a
// validated *ingestv1.Envelope whose property values are compact JSON text
// with numbers exactly as written. A message that cannot be accepted yields
// an *Error carrying a stable Reason code (errors.Is(err, ErrPoison)); the
// projector dead-letters it under that code.
package ingest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/vexil-dev/vexil/namespace"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
)

// Header names and Content-Type values of the contract.
const (
	// HeaderContentType selects the encoding of the payload.
	HeaderContentType = "Content-Type"
	// ContentTypeProtobuf is a binary ingestv1.Envelope; also the default
	// when the header is absent.
	ContentTypeProtobuf = "application/protobuf"
	// ContentTypeJSON is the JSON shape described in docs/ingest.md.
	ContentTypeJSON = "application/json"
)

// A Family is the kind of subject a message is published on; it fixes
// which message kinds it may carry.
type Family int

// The subject families.
const (
	Persons Family = iota + 1 // vexil.persons.<team>: person updates, merges, deletes
	Groups                    // vexil.groups.<team>: group updates, group type mappings
	Events                    // vexil.events.<team>: events
)

// String returns the subject token of the family ("persons", ...).
func (f Family) String() string {
	switch f {
	case Persons:
		return "persons"
	case Groups:
		return "groups"
	case Events:
		return "events"
	}
	return "Family(" + strconv.Itoa(int(f)) + ")"
}

// Subject returns the subject a message of family f for team is published
// on in ns, for example "vexil.persons.42" in namespace.Default.
func Subject(ns namespace.Name, f Family, team int64) string {
	return ns.Subject(f.String(), strconv.FormatInt(team, 10))
}

// SubjectWildcards returns the subjects of every team of ns, the ones the
// projector's stream captures ("vexil.persons.*", "vexil.groups.*",
// "vexil.events.*" in namespace.Default).
func SubjectWildcards(ns namespace.Name) []string {
	return []string{ns.Subject(Persons.String(), "*"), ns.Subject(Groups.String(), "*"), ns.Subject(Events.String(), "*")}
}

// ParseSubject splits an ingest subject of ns into its family and team. The
// team token must be a positive decimal integer without sign or leading
// zeros.
func ParseSubject(ns namespace.Name, subject string) (Family, int64, error) {
	rest, ok := strings.CutPrefix(subject, ns.Subject()+".")
	if !ok {
		return 0, 0, poisonf(ReasonWrongSubject, "subject %q is not an ingest subject of namespace %q", subject, ns)
	}
	fam, teamText, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, 0, poisonf(ReasonWrongSubject, "subject %q has no team token", subject)
	}
	var f Family
	switch fam {
	case "persons":
		f = Persons
	case "groups":
		f = Groups
	case "events":
		f = Events
	default:
		return 0, 0, poisonf(ReasonWrongSubject, "subject %q: unknown family %q", subject, fam)
	}
	team, err := strconv.ParseInt(teamText, 10, 64)
	if err != nil || team <= 0 || strconv.FormatInt(team, 10) != teamText {
		return 0, 0, poisonf(ReasonWrongSubject, "subject %q: team token %q is not a positive decimal integer", subject, teamText)
	}
	return f, team, nil
}

// FamilyOf returns the family whose subjects carry env's kind, or 0 when the
// envelope holds no known kind.
func FamilyOf(env *ingestv1.Envelope) Family {
	switch env.GetKind().(type) {
	case *ingestv1.Envelope_PersonUpdate, *ingestv1.Envelope_PersonMerge, *ingestv1.Envelope_PersonDelete:
		return Persons
	case *ingestv1.Envelope_GroupUpdate, *ingestv1.Envelope_GroupTypeMapping:
		return Groups
	case *ingestv1.Envelope_Event:
		return Events
	}
	return 0
}

// Team returns the team of the message in env (0 when it holds none).
func Team(env *ingestv1.Envelope) int64 {
	switch k := env.GetKind().(type) {
	case *ingestv1.Envelope_PersonUpdate:
		return k.PersonUpdate.GetTeam()
	case *ingestv1.Envelope_PersonMerge:
		return k.PersonMerge.GetTeam()
	case *ingestv1.Envelope_PersonDelete:
		return k.PersonDelete.GetTeam()
	case *ingestv1.Envelope_GroupUpdate:
		return k.GroupUpdate.GetTeam()
	case *ingestv1.Envelope_GroupTypeMapping:
		return k.GroupTypeMapping.GetTeam()
	case *ingestv1.Envelope_Event:
		return k.Event.GetTeam()
	}
	return 0
}

// SubjectOf returns the subject env must be published on in ns.
func SubjectOf(ns namespace.Name, env *ingestv1.Envelope) (string, error) {
	f := FamilyOf(env)
	if f == 0 {
		return "", poisonf(ReasonUnknownKind, "envelope holds no known message kind")
	}
	team := Team(env)
	if team <= 0 {
		return "", poisonf(ReasonMissingField, "team must be > 0")
	}
	return Subject(ns, f, team), nil
}

// ErrPoison is matched (errors.Is) by every *Error: the message can never
// be applied and belongs on the dead-letter subject.
var ErrPoison = errors.New("ingest: poison message")

// A Reason is a stable code saying why a message was refused. Producers and
// operators branch on it (the dead-letter header Vexil-Reason, the metric
// label reason); the text beside it is for people.
type Reason string

// The reason codes. The list is part of the contract (docs/ingest.md).
const (
	ReasonUndecodable   Reason = "undecodable"              // not a protobuf Envelope / not JSON / not UTF-8
	ReasonContentType   Reason = "unsupported_content_type" // Content-Type neither protobuf nor JSON
	ReasonUnknownKind   Reason = "unknown_kind"             // empty envelope, unknown JSON "type"
	ReasonWrongSubject  Reason = "wrong_subject"            // not an ingest subject, or the kind does not belong on it
	ReasonTeamMismatch  Reason = "team_mismatch"            // message team != subject team
	ReasonUnknownTeam   Reason = "unknown_team"             // team not allowed by the projector's TeamSource
	ReasonWrongType     Reason = "wrong_type"               // a JSON field of the wrong type
	ReasonUnknownField  Reason = "unknown_field"            // a JSON field the kind does not have
	ReasonMissingField  Reason = "missing_field"            // a required field absent or empty
	ReasonInvalidValue  Reason = "invalid_value"            // out of range, bad timestamp, property value not JSON
	ReasonTooLarge      Reason = "too_large"                // over a size limit (Limits)
	ReasonStoreRejected Reason = "store_rejected"           // the store refused the write as invalid
)

// Reasons lists every reason code, for metrics and documentation.
var Reasons = []Reason{
	ReasonUndecodable, ReasonContentType, ReasonUnknownKind, ReasonWrongSubject,
	ReasonTeamMismatch, ReasonUnknownTeam, ReasonWrongType, ReasonUnknownField,
	ReasonMissingField, ReasonInvalidValue, ReasonTooLarge, ReasonStoreRejected,
}

// Error is a refused message: a stable Reason and a human-readable text.
type Error struct {
	Reason Reason
	Text   string
}

func (e *Error) Error() string { return "ingest: " + string(e.Reason) + ": " + e.Text }

// Is makes every *Error match ErrPoison.
func (e *Error) Is(target error) bool { return target == ErrPoison }

func poisonf(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Text: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the reason code of a poison error, or "" when err is not
// one.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}
