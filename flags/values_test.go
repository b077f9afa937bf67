package flags

import (
	"encoding/json"
	"testing"
)

// TestNumberText pins how a number becomes text: as the server's serde_json
// writes a JSON value. posthog-python 7.91.1 (_value_to_string on what
// json.loads gives) writes the same text for every row but the two marked
// "server": it writes a positive exponent with a plus sign (1e+16) and
// keeps an integer of any size.
func TestNumberText(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{json.Number("5"), "5"},
		{json.Number("-3"), "-3"},
		{json.Number("5.0"), "5.0"},
		{json.Number("5.00"), "5.0"},
		{json.Number("1e3"), "1000.0"},
		{json.Number("1E3"), "1000.0"},
		{json.Number("1.5"), "1.5"},
		{json.Number("0.0001"), "0.0001"},
		{json.Number("1e-5"), "0.00001"},
		{json.Number("1e-6"), "1e-6"},
		{json.Number("1.5e-7"), "1.5e-7"},
		{json.Number("1e15"), "1000000000000000.0"},
		{json.Number("1e16"), "1e16"}, // server
		{json.Number("12345678901234567"), "12345678901234567"},
		{json.Number("18446744073709551615"), "18446744073709551615"},
		{json.Number("123456789012345678901234"), "1.2345678901234569e23"}, // server: beyond 64 bits, a float
		{json.Number("-0.0"), "-0.0"},
		{json.Number("0.0"), "0.0"},
		{json.Number("9007199254740993.5"), "9007199254740994.0"},
		{json.Number("1e400"), "1e400"}, // not a float64: kept as given
		{json.Number("abc"), "abc"},
		{1e6, "1000000.0"},
		{0.1, "0.1"},
		{float32(1.5), "1.5"},
		{-2.5e-9, "-2.5e-9"},
		{42, "42"},
		{[]any{json.Number("1e3"), "a<b", map[string]any{"b": json.Number("1.50"), "a": nil}}, `[1000.0,"a<b",{"a":null,"b":1.5}]`},
		{[]any{"q\"\\\n\x01é"}, `["q\"\\\n\u0001é"]`},
	} {
		if got := stringify(tc.in); got != tc.want {
			t.Errorf("stringify(%#v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestNumberTextNoAlloc: a number already in the server's form is returned
// without allocating (the exact and text operators stringify on every
// evaluation).
func TestNumberTextNoAlloc(t *testing.T) {
	for _, n := range []any{json.Number("5"), json.Number("5.0"), json.Number("1.5"), json.Number("-0.25")} {
		if a := testing.AllocsPerRun(100, func() { _ = stringify(n) }); a != 0 {
			t.Errorf("stringify(%s): %v allocations", n, a)
		}
	}
}
