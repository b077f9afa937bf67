// Package namespace names one Vexil environment on a NATS system. Every
// stream, consumer, key-value bucket and subject of an environment derives
// from its Name, so environments sharing one NATS (staging beside
// production) never share a message; the packages that own each contract
// build their names from it (changes, projector/ingest, projector,
// precompute, admin).
package namespace

import (
	"errors"
	"fmt"
	"strings"
)

// Name is an environment's namespace: a lowercase letter followed by up to
// MaxLen-1 lowercase letters, digits and hyphens. The zero Name is Default.
type Name string

// Default is the namespace of a single environment. It yields the names
// Vexil has always used (subjects "vexil.…", streams "VEXIL_…"), so a
// deployment that sets no namespace keeps its streams and consumers.
const Default Name = "vexil"

// MaxLen bounds a Name, in bytes.
const MaxLen = 32

// ErrInvalid is wrapped by Parse's and Validate's errors.
var ErrInvalid = errors.New("namespace: invalid")

// Parse returns s as a Name; "" is Default.
func Parse(s string) (Name, error) {
	n := Name(s)
	if err := n.Validate(); err != nil {
		return "", err
	}
	return n.orDefault(), nil
}

// Validate reports whether n can name subjects, streams, consumers and
// buckets: NATS tokens and stream names differ in what they allow, so a
// Name keeps to what all of them take, in one case (stream names are n in
// upper case, which must not make two namespaces one).
func (n Name) Validate() error {
	s := string(n)
	if s == "" {
		return nil
	}
	if len(s) > MaxLen {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalid, len(s), MaxLen)
	}
	if s[0] < 'a' || s[0] > 'z' {
		return fmt.Errorf("%w: %q must start with a lowercase letter", ErrInvalid, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%w: %q may hold only lowercase letters, digits and '-'", ErrInvalid, s)
		}
	}
	return nil
}

func (n Name) orDefault() Name {
	if n == "" {
		return Default
	}
	return n
}

// String returns n, Default for the zero Name.
func (n Name) String() string { return string(n.orDefault()) }

// Subject returns the subject of tokens in n: "vexil.changes.42" for
// Default and tokens "changes", "42". With no tokens it is n's first token.
func (n Name) Subject(tokens ...string) string {
	if len(tokens) == 0 {
		return n.String()
	}
	return n.String() + "." + strings.Join(tokens, ".")
}

// Stream returns the stream of role in n: "VEXIL_INGEST" for Default and
// role "INGEST". Role is upper case, without '_'.
func (n Name) Stream(role string) string {
	return strings.ToUpper(n.String()) + "_" + role
}

// Consumer returns a durable consumer name of n: "vexil-projector" for
// Default and local "projector".
func (n Name) Consumer(local string) string { return n.String() + "-" + local }

// Bucket returns a key-value bucket name of n: "vexil_precompute_runs" for
// Default and local "precompute_runs".
func (n Name) Bucket(local string) string { return n.String() + "_" + local }
