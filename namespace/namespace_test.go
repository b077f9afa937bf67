package namespace

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in   string
		want Name
		ok   bool
	}{
		{"", Default, true},
		{"vexil", "vexil", true},
		{"staging", "staging", true},
		{"eu-west-2", "eu-west-2", true},
		{strings.Repeat("a", MaxLen), Name(strings.Repeat("a", MaxLen)), true},
		{strings.Repeat("a", MaxLen+1), "", false},
		{"Staging", "", false},
		{"2nd", "", false},
		{"-x", "", false},
		{"a_b", "", false},
		{"a.b", "", false},
		{"a*", "", false},
		{"a>", "", false},
		{"a b", "", false},
		{"é", "", false},
	}
	for _, c := range cases {
		got, err := Parse(c.in)
		if c.ok && (err != nil || got != c.want) {
			t.Errorf("Parse(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
		if !c.ok && !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %q, %v; want ErrInvalid", c.in, got, err)
		}
	}
}

func TestNames(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Name("").Subject("changes", "42"), "vexil.changes.42"},
		{Default.Subject(), "vexil"},
		{Name("staging").Subject("persons", "*"), "staging.persons.*"},
		{Name("").Stream("INGEST"), "VEXIL_INGEST"},
		{Name("eu-west").Stream("CHANGES"), "EU-WEST_CHANGES"},
		{Name("").Consumer("projector"), "vexil-projector"},
		{Name("staging").Bucket("precompute_runs"), "staging_precompute_runs"},
		{Name("").String(), "vexil"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
