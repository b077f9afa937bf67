package flags

import (
	"unicode"
	"unicode/utf8"
)

// PostHog's exact and is_not lower-case both sides with full Unicode rules:
// its server with Rust's str::to_lowercase, posthog-python with str.lower().
// Both apply Unicode's unconditional SpecialCasing (U+0130 İ becomes "i̇",
// two code points) and the Final_Sigma context (Σ becomes ς at the end of a
// word, σ elsewhere), which Go's one-rune-to-one-rune unicode.ToLower does
// not. lowerFull follows Python 3.11 (Unicode 14.0) for every code point;
// lower_test.go checks it against a table that testdata/lower/gen_lower.py
// wrote with Python.

// lowerFull returns s lower-cased as Python's str.lower() does. An ASCII
// string without upper-case letters is returned as it is.
func lowerFull(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
			return string(appendLower(make([]byte, 0, len(s)+2), s))
		}
	}
	return s
}

// appendLower appends s lower-cased as Python's str.lower() does. Bytes
// that are not valid UTF-8 are copied as they are.
func appendLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			dst = append(dst, asciiLower(c))
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			dst = append(dst, c)
		case r == '\u0130': // İ: SpecialCasing's one unconditional lower mapping
			dst = append(dst, "i\u0307"...)
		case r == '\u03a3': // Σ
			if finalSigma(s, i, n) {
				dst = utf8.AppendRune(dst, '\u03c2')
			} else {
				dst = utf8.AppendRune(dst, '\u03c3')
			}
		default:
			dst = utf8.AppendRune(dst, unicode.ToLower(r))
		}
		i += n
	}
	return dst
}

// notInPython holds the code points that Go's Unicode 15.0 tables class as
// case-ignorable or cased and that Unicode 14.0 (Python 3.11) does not
// assign: the final-sigma rule does not skip them and does not count them
// as letters. Unicode 15.0 added no case mappings.
var notInPython = &unicode.RangeTable{
	R16: []unicode.Range16{{Lo: 0x0ece, Hi: 0x0ece, Stride: 1}},
	R32: []unicode.Range32{
		{Lo: 0x10efd, Hi: 0x10eff, Stride: 1},
		{Lo: 0x11241, Hi: 0x11241, Stride: 1},
		{Lo: 0x11f00, Hi: 0x11f01, Stride: 1},
		{Lo: 0x11f36, Hi: 0x11f3a, Stride: 1},
		{Lo: 0x11f40, Hi: 0x11f40, Stride: 1},
		{Lo: 0x11f42, Hi: 0x11f42, Stride: 1},
		{Lo: 0x13439, Hi: 0x13440, Stride: 1},
		{Lo: 0x13447, Hi: 0x13455, Stride: 1},
		{Lo: 0x1df25, Hi: 0x1df2a, Stride: 1},
		{Lo: 0x1e030, Hi: 0x1e06d, Stride: 1},
		{Lo: 0x1e08f, Hi: 0x1e08f, Stride: 1},
		{Lo: 0x1e4eb, Hi: 0x1e4ef, Stride: 1},
	},
}

// finalSigma reports whether the Σ at s[i:i+n] is in the Final_Sigma
// context: a cased letter precedes it and none follows it, skipping
// case-ignorable code points on both sides.
func finalSigma(s string, i, n int) bool {
	before := false
	for j := i; j > 0; {
		r, size := utf8.DecodeLastRuneInString(s[:j])
		j -= size
		if !caseIgnorable(r) {
			before = cased(r)
			break
		}
	}
	if !before {
		return false
	}
	for j := i + n; j < len(s); {
		r, size := utf8.DecodeRuneInString(s[j:])
		j += size
		if !caseIgnorable(r) {
			return !cased(r)
		}
	}
	return true
}

// cased is Unicode's Cased property: upper, lower and title case letters
// and the Other_Lowercase and Other_Uppercase code points.
func cased(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'
	}
	return unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Other_Lowercase, unicode.Other_Uppercase) &&
		!unicode.Is(notInPython, r)
}

// caseIgnorable is Unicode's Case_Ignorable property: nonspacing and
// enclosing marks, format controls, modifier letters and symbols, and the
// Word_Break classes MidLetter, MidNumLet and Single_Quote.
func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', '^', '`', '\u00b7', '\u0387', '\u055f', '\u05f4', '\u2018', '\u2019',
		'\u2024', '\u2027', '\ufe13', '\ufe52', '\ufe55', '\uff07', '\uff0e', '\uff1a':
		return true
	}
	if r < utf8.RuneSelf {
		return false
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk) && !unicode.Is(notInPython, r)
}
