package keyenc

import (
	"bytes"
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestTeamOrder(t *testing.T) {
	teams := []int64{math.MinInt64, -1 << 40, -2, -1, 0, 1, 2, 255, 256, 1 << 40, math.MaxInt64}
	for i := 1; i < len(teams); i++ {
		a, b := AppendTeam(nil, teams[i-1]), AppendTeam(nil, teams[i])
		if bytes.Compare(a, b) >= 0 {
			t.Fatalf("team %d encodes >= team %d", teams[i-1], teams[i])
		}
	}
	for _, team := range teams {
		got, rest, err := Team(AppendTeam(nil, team))
		if err != nil || got != team || len(rest) != 0 {
			t.Fatalf("Team round trip of %d: %d, %x, %v", team, got, rest, err)
		}
	}
}

func TestStringOrderAndRoundTrip(t *testing.T) {
	strs := []string{"", "\x00", "\x00\x00", "\x00\x01", "\x00\xff", "\x01", "a", "a\x00", "a\x00b", "a\x01", "ab", "b", "\xff", "\xff\x00", "日本"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, r.IntN(6))
		for i := range b {
			b[i] = []byte{0, 1, 0xff, 'a', 'b'}[r.IntN(5)]
		}
		strs = append(strs, string(b))
	}
	for _, a := range strs {
		ea := AppendString(nil, a)
		got, rest, err := String(append(ea, 'x'))
		if err != nil || got != a || string(rest) != "x" {
			t.Fatalf("String round trip of %q: %q, %q, %v", a, got, rest, err)
		}
	}
	// Order: comparing encodings (followed by anything) equals comparing
	// strings, and no encoding is a prefix of another.
	for i := range 3000 {
		a, b := strs[i%len(strs)], strs[(i*7+3)%len(strs)]
		ea := append(AppendString(nil, a), 0xff)
		eb := append(AppendString(nil, b), 0x00)
		want := strings.Compare(a, b)
		if got := bytes.Compare(ea, eb); a != b && cmp.Compare(got, 0) != want {
			t.Fatalf("order of %q, %q: encodings compare %d, strings %d", a, b, got, want)
		}
	}
}

func TestMalformed(t *testing.T) {
	for _, b := range [][]byte{nil, {'a'}, {0}, {'a', 0, 2}, {0, 0xff}} {
		if _, _, err := String(b); err != ErrMalformed {
			t.Fatalf("String(%x) = %v, want ErrMalformed", b, err)
		}
	}
	if _, _, err := Team([]byte{1, 2}); err != ErrMalformed {
		t.Fatalf("short team: %v", err)
	}
	for _, c := range []string{"x", "1!!", "2abc"} {
		if _, err := DecodeCursor(c); err != ErrMalformed {
			t.Fatalf("DecodeCursor(%q) = %v", c, err)
		}
	}
}

func TestKeysSortWithinKind(t *testing.T) {
	// Rows of one team sort by distinct id and stay within the team prefix.
	ids := []string{"b", "a\x00", "a", "", "日本", "a\x00\x00"}
	var keys [][]byte
	for _, id := range ids {
		keys = append(keys, Row(5, id))
	}
	slices.SortFunc(keys, bytes.Compare)
	slices.Sort(ids)
	prefix := Prefix(KindRow, 5)
	end := PrefixEnd(prefix)
	for i, k := range keys {
		id, rest, err := String(k[len(prefix):])
		if err != nil || id != ids[i] || len(rest) != 0 {
			t.Fatalf("key %d: %q, %v; want %q", i, id, err, ids[i])
		}
		if !bytes.HasPrefix(k, prefix) || bytes.Compare(k, end) >= 0 {
			t.Fatalf("row key %x outside its team range", k)
		}
		if i > 0 && bytes.Compare(Successor(keys[i-1]), k) > 0 {
			t.Fatalf("Successor(%x) skips %x", keys[i-1], k)
		}
	}
	if bytes.HasPrefix(Index(1, "p2", "x"), IndexPrefix(1, "p")) {
		t.Fatal("person p's index prefix covers person p2")
	}
	if PrefixEnd([]byte{0xff, 0xff}) != nil || !bytes.Equal(PrefixEnd([]byte{1, 0xff}), []byte{2}) {
		t.Fatal("PrefixEnd")
	}
	id := "any\x00id"
	got, err := DecodeCursor(EncodeCursor(id))
	if err != nil || got != id || EncodeCursor("") == "" {
		t.Fatalf("cursor round trip: %q, %v", got, err)
	}
}

func FuzzString(f *testing.F) {
	f.Add([]byte("a\x00\xff\x00\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, rest, err := String(b)
		if err != nil {
			return
		}
		// A decoded string re-encodes to the consumed prefix.
		if enc := AppendString(nil, s); !bytes.Equal(enc, b[:len(b)-len(rest)]) {
			t.Fatalf("re-encoding %q gives %x, consumed %x", s, enc, b[:len(b)-len(rest)])
		}
	})
}

func TestExpiryOrder(t *testing.T) {
	type e struct {
		at, team int64
		target   string
	}
	// In (at, team, target) order.
	want := []e{
		{math.MinInt64, 5, "a"}, {-1, 0, ""}, {0, -3, "z"}, {0, 2, "a"}, {0, 2, "a\x00"}, {0, 2, "b"},
		{7, math.MinInt64, "x"}, {7, 1, "x"}, {math.MaxInt64, 0, "r:d"},
	}
	var keys [][]byte
	for i := len(want) - 1; i >= 0; i-- {
		keys = append(keys, Expiry(want[i].at, want[i].team, want[i].target))
	}
	slices.SortFunc(keys, bytes.Compare)
	for i, k := range keys {
		at, team, target, err := DecodeExpiry(k)
		if err != nil || (e{at, team, target}) != want[i] {
			t.Fatalf("key %d: %v %v %q %v; want %v", i, at, team, target, err, want[i])
		}
		for _, until := range []int64{math.MinInt64, -1, 0, 7, math.MaxInt64} {
			end := ExpiryUntil(until)
			below := end == nil || bytes.Compare(k, end) < 0
			if below != (at <= until) {
				t.Fatalf("key %v: below ExpiryUntil(%d) = %v", want[i], until, below)
			}
		}
	}
	if _, _, _, err := DecodeExpiry(Row(1, "d")); err == nil {
		t.Fatal("DecodeExpiry accepted a row key")
	}
}
