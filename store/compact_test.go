package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// TestCompactValue checks CompactValue against json.Compact, on the fast
// path (no whitespace: v itself) and the slow one.
func TestCompactValue(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		same     bool // the result is the input slice
	}{
		{"string", `"pro"`, true},
		{"number text", `5.00`, true},
		{"object", `{"a":[1,2,{"b":null}]}`, true},
		{"nested whitespace", "{ \"a\" : [1, 2] }", false},
		{"space in string", `"a b"`, false},
		{"tab and newline", "[1,\n\t2]", false},
		{"invalid", `{`, false},
		{"empty", ``, false},
		{"two values", `1 2`, false},
		{"two values no space", `"a""b"`, false},
		{"trailing comma", `[1,]`, false},
		{"bare word", `nope`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			got, err := CompactValue(in)
			var want bytes.Buffer
			werr := json.Compact(&want, in)
			if werr == nil && want.Len() == 0 {
				werr = errors.New("empty")
			}
			if (err != nil) != (werr != nil) {
				t.Fatalf("CompactValue(%q) = %q, %v; json.Compact: %v", tc.in, got, err, werr)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("CompactValue(%q) error %v does not wrap ErrInvalid", tc.in, err)
				}
				return
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("CompactValue(%q) = %q, want %q", tc.in, got, want.Bytes())
			}
			if same := len(got) > 0 && &got[0] == &in[0]; same != tc.same {
				t.Fatalf("CompactValue(%q) returned the input: %v, want %v", tc.in, same, tc.same)
			}
		})
	}
}

// TestCompactAllCopiesOnlyOnChange checks that compactAll returns its
// argument when every value is compact and never modifies it.
func TestCompactAllCopiesOnlyOnChange(t *testing.T) {
	m := map[string][]byte{"a": []byte(`1`), "b": []byte(`"x"`)}
	got, err := compactAll(m)
	if err != nil || len(got) != 2 {
		t.Fatalf("compactAll = %q, %v", got, err)
	}
	got["c"] = nil
	if _, ok := m["c"]; !ok {
		t.Fatal("compactAll copied a map that needed no change")
	}
	delete(m, "c")
	m["d"] = []byte("[1, 2]")
	got, err = compactAll(m)
	if err != nil || string(got["d"]) != "[1,2]" || string(got["a"]) != "1" || len(got) != 3 {
		t.Fatalf("compactAll = %q, %v", got, err)
	}
	if string(m["d"]) != "[1, 2]" {
		t.Fatalf("compactAll modified its argument: %q", m)
	}
}
