package flags

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// pythonLower is testdata/lower/python_lower.txt: what Python 3.11's
// str.lower() does to each code point, and each code point's class for the
// final-sigma rule ("cased", "ignorable" or "").
type pythonLower struct {
	maps  map[rune]string
	class map[rune]string
}

func loadPythonLower(t *testing.T) pythonLower {
	t.Helper()
	f, err := os.Open("testdata/lower/python_lower.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pl := pythonLower{maps: map[rune]string{}, class: map[rune]string{}}
	hex := func(s string) rune {
		n, err := strconv.ParseUint(s, 16, 32)
		if err != nil {
			t.Fatalf("bad code point %q: %v", s, err)
		}
		return rune(n)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch {
		case fields[0] == "map" && len(fields) >= 3:
			var b strings.Builder
			for _, h := range fields[2:] {
				b.WriteRune(hex(h))
			}
			pl.maps[hex(fields[1])] = b.String()
		case fields[0] == "sigma" && len(fields) == 4:
			for r := hex(fields[1]); r <= hex(fields[2]); r++ {
				pl.class[r] = fields[3]
			}
		default:
			t.Fatalf("bad line %q", sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(pl.maps) < 1400 || len(pl.class) < 5000 {
		t.Fatalf("table too small: %d mappings, %d classed code points", len(pl.maps), len(pl.class))
	}
	return pl
}

// TestLowerFullMatchesPython compares lowerFull with Python's str.lower()
// on every code point, and the final-sigma classes on every code point.
func TestLowerFullMatchesPython(t *testing.T) {
	pl := loadPythonLower(t)
	bad := 0
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if 0xD800 <= r && r <= 0xDFFF {
			continue
		}
		want, ok := pl.maps[r]
		if !ok {
			want = string(r)
		}
		if got := lowerFull(string(r)); got != want {
			bad++
			if bad <= 20 {
				t.Errorf("lowerFull(U+%04X) = %+q, Python %+q", r, got, want)
			}
		}
		var class string
		switch {
		case caseIgnorable(r):
			class = "ignorable"
		case cased(r):
			class = "cased"
		}
		if class != pl.class[r] {
			bad++
			if bad <= 20 {
				t.Errorf("U+%04X is %q for the final-sigma rule, Python %q", r, class, pl.class[r])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d differences from Python", bad)
	}
}

func TestLowerFullSigmaAndSpecialCasing(t *testing.T) {
	// Expectations from Python 3.11: repr(s.lower()).
	for _, c := range []struct{ in, want string }{
		{"ΟΔΟΣ", "οδος"},
		{"ΟΔΟΣ ΟΔΟΣ", "οδος οδος"},
		{"Σ", "σ"},
		{"ΣΑ", "σα"},
		{"ΑΣ.", "ας."},
		{"ΑΣ'Α", "ασ'α"},
		{"Α'Σ", "α'ς"},
		{"'Σ", "'σ"},
		{"Α\u0301Σ", "α\u0301ς"},
		{"ΑΣ\u0301", "ας\u0301"},
		{"ΑΣ\u0301Β", "ασ\u0301β"},
		{"1Σ", "1σ"},
		{"ΣΣ", "σς"},
		{"İstanbul", "i\u0307stanbul"},
		{"KELVIN \u212a", "kelvin k"},
		{"ǅ", "ǆ"},
		{"plain ascii", "plain ascii"},
		{"MiXeD", "mixed"},
		{"ÉCOLE", "école"},
		{"bad \xff byte", "bad \xff byte"},
	} {
		if got := lowerFull(c.in); got != c.want {
			t.Errorf("lowerFull(%+q) = %+q, want %+q", c.in, got, c.want)
		}
	}
}

func TestEqualLower(t *testing.T) {
	for _, c := range []struct {
		prop, filter string
		want         bool
	}{
		{"İ", "i\u0307", true},
		{"İ", "İ", true},
		{"İ", "i", false},
		{"i", "İ", false},
		{"ΟΔΟΣ", "οδος", true},
		{"ΟΔΟΣ", "οδοσ", false},
		{"οδοσ", "ΟΔΟΣ", false},
		{"É", "é", true},
		{"ABC", "abc", true},
		{"ABC", "abd", false},
		{"abc", "abcd", false},
		{"", "", true},
		{"Straße", "STRASSE", false},
	} {
		if got := equalLower(c.prop, lowerFull(c.filter)); got != c.want {
			t.Errorf("equalLower(%+q, lowerFull(%+q)) = %v, want %v", c.prop, c.filter, got, c.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		equalLower("Some-ASCII-Value@Example.com", "some-ascii-value@example.com")
		equalLower("ÉCOLE", "école")
	}); n != 0 {
		t.Errorf("equalLower allocates %v times for short values", n)
	}
}
