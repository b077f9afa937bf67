package results

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/flags"
)

// sampleEntries has every reason code, both values, variants, condition
// indexes -1, 0 and >0, and ValidUntil zero and set (with sub-millisecond
// parts, before and after 1970).
func sampleEntries() []Entry {
	vu := time.Date(2026, 11, 25, 10, 0, 0, 123_456_789, time.UTC)
	var out []Entry
	for i, rc := range reasonCodes {
		e := Entry{FlagID: int64(i + 1), Stamp: uint64(i)*0x9e3779b97f4a7c15 + 1, Compact: flags.Compact{Code: rc, ConditionIndex: -1}}
		switch i % 4 {
		case 0:
			e.Enabled = true
			e.ConditionIndex = 0
		case 1:
			e.Enabled, e.Variant = true, "variant-"+string(rune('a'+i))
			e.ConditionIndex = 3
		case 2:
			e.ValidUntil = vu.Add(time.Duration(i) * time.Hour)
		case 3:
			e.Enabled, e.Variant, e.ValidUntil = true, "v", vu
			e.ConditionIndex = 200 // two-byte uvarint
		}
		out = append(out, e)
	}
	out = append(out,
		Entry{FlagID: math.MaxInt64, Stamp: math.MaxUint64, Compact: flags.Compact{Code: flags.ReasonConditionMatch, ConditionIndex: 1, Enabled: true, Variant: string(make([]byte, 300))}},
		Entry{FlagID: 0, Stamp: 0, Compact: flags.Compact{Code: flags.ReasonOutOfRolloutBound, ConditionIndex: -1, ValidUntil: time.Unix(-1, 500_000)}},
		Entry{FlagID: 1 << 40, Compact: flags.Compact{Code: flags.ReasonHoldout, Enabled: true, Variant: "holdout-7", ConditionIndex: -1, ValidUntil: time.UnixMilli(0)}},
	)
	return out
}

// msFloor is t rounded down to the millisecond, as the encoding keeps it.
func msFloor(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return time.UnixMilli(t.UnixMilli())
}

func entriesEqual(t *testing.T, got, want []Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.ValidUntil.Equal(msFloor(w.ValidUntil)) || g.ValidUntil.IsZero() != w.ValidUntil.IsZero() {
			t.Errorf("entry %d ValidUntil = %v, want %v", i, g.ValidUntil, msFloor(w.ValidUntil))
		}
		g.ValidUntil, w.ValidUntil = time.Time{}, time.Time{}
		if g != w {
			t.Errorf("entry %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestCodecRoundTrip(t *testing.T) {
	headers := []Header{
		{},
		{Version: 1, Revision: 2, KeyConsistent: true},
		{Version: -5, Revision: math.MaxUint64},
		{Version: math.MaxInt64, Revision: 0x0123456789abcdef, KeyConsistent: true},
		{Version: math.MinInt64},
	}
	entrySets := map[string][]Entry{
		"none":   nil,
		"one":    {{FlagID: 7, Stamp: 9, Compact: flags.Compact{Enabled: true, Code: flags.ReasonConditionMatch}}},
		"sample": sampleEntries(),
	}
	for _, h := range headers {
		for name, entries := range entrySets {
			prefix := []byte("prefix")
			b := Append(bytes.Clone(prefix), h, entries)
			if !bytes.HasPrefix(b, prefix) {
				t.Fatal("Append overwrote dst")
			}
			b = b[len(prefix):]
			gh, ge, err := Decode(b, nil, stampsOf(entries))
			if err != nil {
				t.Fatalf("%+v %s: Decode: %v", h, name, err)
			}
			if gh != h {
				t.Errorf("%s: header %+v, want %+v", name, gh, h)
			}
			entriesEqual(t, ge, entries)
			// Re-encoding what decoded gives the same bytes.
			if again := Append(nil, gh, ge); !bytes.Equal(again, b) {
				t.Errorf("%+v %s: re-encoding differs:\n%x\n%x", h, name, again, b)
			}
			// Rows written in format 1 still decode, stamps as stored
			// whatever the current ones.
			gh, ge, err = Decode(appendFormat1(nil, h, entries), nil, nil)
			if err != nil || gh != h {
				t.Fatalf("%+v %s: format 1: header %+v, %v", h, name, gh, err)
			}
			entriesEqual(t, ge, entries)
		}
	}
}

// TestCodecStampGroups: a result's stamp is the current one only when its
// group's digest matches the current stamps of the whole group; a change
// of one flag makes its group stale and no other.
func TestCodecStampGroups(t *testing.T) {
	var entries []Entry
	for i := range 2*stampGroup + 3 { // two full groups and a partial one
		entries = append(entries, Entry{FlagID: int64(100 + i), Stamp: uint64(i)*0x9e3779b97f4a7c15 + 7, Compact: flags.Compact{Enabled: i%2 == 0, Code: flags.ReasonConditionMatch}})
	}
	b := Append(nil, Header{Version: 1}, entries)
	if want := 2 + 1 + 8 + 1 + len(entries)*3 + 3*digestBytes; len(b) != want {
		t.Errorf("%d bytes, want %d", len(b), want)
	}
	for _, changed := range []int{0, stampGroup - 1, stampGroup, 2*stampGroup + 2} {
		current := stampsOf(entries)
		current[entries[changed].FlagID]++
		_, got, err := Decode(b, nil, current)
		if err != nil {
			t.Fatal(err)
		}
		group := changed / stampGroup
		for i, e := range got {
			cur := current[e.FlagID]
			if stale := i/stampGroup == group; stale != (e.Stamp != cur) {
				t.Errorf("flag %d changed: entry %d stamp %x, current %x (group %d stale: %v)", changed, i, e.Stamp, cur, i/stampGroup, stale)
			}
		}
	}
	// A flag the current definitions lack (deleted) makes its group
	// stale; without current stamps every group is.
	current := stampsOf(entries)
	delete(current, entries[stampGroup].FlagID)
	_, got, _ := Decode(b, nil, current)
	for i, e := range got {
		cur, ok := current[e.FlagID]
		switch stale := i/stampGroup == 1; {
		case !ok && e.Stamp != 0:
			t.Errorf("flag deleted: its entry %d has stamp %x, want 0", i, e.Stamp)
		case ok && stale != (e.Stamp != cur):
			t.Errorf("flag deleted: entry %d stamp %x, current %x, stale %v", i, e.Stamp, cur, stale)
		}
	}
	for _, none := range []Stamper{nil, (*Plan)(nil)} {
		_, got, _ = Decode(b, nil, none)
		for i, e := range got {
			if e.Stamp != 0 {
				t.Errorf("no current stamps (%T): entry %d stamp %x", none, i, e.Stamp)
			}
		}
	}
}

func TestCodecValidUntilRoundsDown(t *testing.T) {
	cases := []struct {
		in   time.Time
		want int64 // Unix ms
	}{
		{time.UnixMilli(1_700_000_000_123).Add(999_999), 1_700_000_000_123},
		{time.UnixMilli(1_700_000_000_123), 1_700_000_000_123},
		{time.Unix(0, 1), 0},
		{time.Unix(-1, 999_999_999), -1}, // -1ns rounds down to -1ms
		{time.Unix(-2, 500_000), -2000},  // -1999.5ms
	}
	for _, tc := range cases {
		b := Append(nil, Header{}, []Entry{{FlagID: 1, Compact: flags.Compact{Code: flags.ReasonNoConditionMatch, ValidUntil: tc.in}}})
		_, es, err := Decode(b, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := es[0].ValidUntil
		if got.UnixMilli() != tc.want || got.Nanosecond()%1_000_000 != 0 {
			t.Errorf("%v: decoded %v (%d ms), want %d ms", tc.in, got, got.UnixMilli(), tc.want)
		}
		if got.After(tc.in) {
			t.Errorf("%v: decoded %v is later (an expiry must only move earlier)", tc.in, got)
		}
	}
}

func TestCodecUnencodableReasonLeftOut(t *testing.T) {
	in := []Entry{
		{FlagID: 1, Compact: flags.Compact{Code: flags.ReasonError}},
		{FlagID: 2, Compact: flags.Compact{Enabled: true, Code: flags.ReasonConditionMatch}},
		{FlagID: 3, Compact: flags.Compact{Code: "made_up"}},
		{FlagID: 4, Compact: flags.Compact{Code: ""}},
		{FlagID: 5, Compact: flags.Compact{Code: flags.ReasonOverride, Enabled: true, ConditionIndex: -1}},
	}
	h := Header{Version: 3, Revision: 4}
	_, got, err := Decode(Append(nil, h, in), nil, stampsOf(in))
	if err != nil {
		t.Fatal(err)
	}
	entriesEqual(t, got, []Entry{in[1], in[4]})
	_, got, err = Decode(Append(nil, h, in[:1]), nil, stampsOf(in))
	if err != nil || len(got) != 0 {
		t.Errorf("only unencodable entries: %v, %v", got, err)
	}
}

func TestDecodeReusesEntries(t *testing.T) {
	b := Append(nil, Header{}, sampleEntries()[:2])
	buf := make([]Entry, 5, 10)
	_, got, err := Decode(b, buf, nil)
	if err != nil || len(got) != 2 || &got[0] != &buf[0] {
		t.Fatalf("Decode did not reuse entries: len %d, err %v", len(got), err)
	}
	// Variant keys do not alias the input.
	v := got[1].Variant
	for i := range b {
		b[i] = 0
	}
	if v != sampleEntries()[1].Variant {
		t.Errorf("variant %q changed with the input", v)
	}
}

func TestDecodeCorrupt(t *testing.T) {
	valid := Append(nil, Header{Version: 300, Revision: 77, KeyConsistent: true}, sampleEntries())
	isCorrupt := func(name string, b []byte) {
		t.Helper()
		h, es, err := Decode(b, make([]Entry, 3), stampsOf(sampleEntries()))
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
		if len(es) != 0 {
			t.Errorf("%s: %d entries with an error", name, len(es))
		}
		_ = h
	}
	for n := range len(valid) {
		isCorrupt("prefix", valid[:n])
	}
	isCorrupt("nil", nil)
	isCorrupt("trailing byte", append(bytes.Clone(valid), 0))
	isCorrupt("trailing entry", append(bytes.Clone(valid), valid[len(valid)-20:]...))
	for _, f := range []byte{0, 3, 0xff} {
		b := bytes.Clone(valid)
		b[0] = f
		isCorrupt("format", b)
	}

	isCorrupt("digest cut short", valid[:len(valid)-1])
	isCorrupt("format 1 cut short", appendFormat1(nil, Header{}, sampleEntries()[:2])[:20])

	// Hand-built format 1 entries with one bad field each.
	head := func(n uint64) []byte {
		b := []byte{format1, 0}
		b = binary.AppendVarint(b, 1)
		b = binary.LittleEndian.AppendUint64(b, 2)
		return binary.AppendUvarint(b, n)
	}
	entry := func(id uint64, bits byte, ci uint64, tail ...byte) []byte {
		b := binary.AppendUvarint(nil, id)
		b = binary.LittleEndian.AppendUint64(b, 5)
		b = append(b, bits)
		b = binary.AppendUvarint(b, ci)
		return append(b, tail...)
	}
	ok := append(head(1), entry(1, 0x01, 1)...)
	if _, es, err := Decode(ok, nil, nil); err != nil || len(es) != 1 || !es[0].Enabled || es[0].Code != flags.ReasonConditionMatch || es[0].ConditionIndex != 0 {
		t.Fatalf("hand-built entry: %+v, %v", es, err)
	}
	isCorrupt("count beyond the input", head(1000))
	isCorrupt("count of an absent entry", append(head(2), entry(1, 0, 0)...))
	isCorrupt("huge count", head(math.MaxUint64))
	isCorrupt("flag id beyond int64", append(head(1), entry(math.MaxInt64+1, 0, 0)...))
	isCorrupt("reason code out of range", append(head(1), entry(1, byte(len(reasonCodes))<<4, 0)...))
	isCorrupt("reason code 15", append(head(1), entry(1, 0xf0, 0)...))
	isCorrupt("condition index beyond int32", append(head(1), entry(1, 0, math.MaxInt32+1)...))
	isCorrupt("variant longer than the input", append(head(1), entry(1, 0x02, 0, 50, 'a')...))
	isCorrupt("variant length overflow", append(head(1), entry(1, 0x02, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)...))
	isCorrupt("valid_until missing", append(head(1), entry(1, 0x04, 0)...))
	isCorrupt("overlong varint", append([]byte{format1, 0}, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01))
}

// TestCodecNonCanonical documents that Decode accepts encodings Append never
// writes (reserved bits, over-long varints, an empty variant flagged as
// present): re-encoding them gives different, shorter bytes that decode to
// the same value. Exact byte round trips therefore hold only for Append's
// output.
func TestCodecNonCanonical(t *testing.T) {
	canon := Append(nil, Header{Version: 1, Revision: 2}, []Entry{{FlagID: 1, Stamp: 5, Compact: flags.Compact{Code: flags.ReasonConditionMatch, ConditionIndex: 0}}})
	variants := map[string][]byte{}
	b := bytes.Clone(canon)
	b[1] |= 0x80 // reserved header bit
	variants["header bit"] = b
	b = bytes.Clone(canon)
	// The one entry is its id, bits and condition, then the digest.
	bits := len(b) - digestBytes - 2
	b[bits] |= 0x08 // reserved entry bit
	variants["entry bit"] = b
	// An over-long varint for the version (1 as 0x82 0x00).
	b = append([]byte{format, 0, 0x82, 0x00}, canon[3:]...)
	variants["overlong version"] = b
	// An empty variant flagged present.
	b = bytes.Clone(canon[:len(canon)-digestBytes])
	b[bits] |= 0x02
	variants["empty variant"] = append(append(b, 0), canon[len(canon)-digestBytes:]...)
	for name, b := range variants {
		h, es, err := Decode(b, nil, stampSet{1: 5})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if again := Append(nil, h, es); !bytes.Equal(again, canon) {
			t.Errorf("%s: re-encodes to %x, want %x", name, again, canon)
		}
	}
}

// TestAppendWritesUndecodable shows entries Append accepts but Decode then
// rejects, losing the whole row: a negative flag id and a condition index
// below -1. Live evaluation never gives them; flag ids are positive.
func TestAppendWritesUndecodable(t *testing.T) {
	for name, e := range map[string]Entry{
		"negative flag id":         {FlagID: -1, Compact: flags.Compact{Code: flags.ReasonConditionMatch}},
		"condition index below -1": {FlagID: 1, Compact: flags.Compact{Code: flags.ReasonConditionMatch, ConditionIndex: -2}},
	} {
		if _, _, err := Decode(Append(nil, Header{}, []Entry{e}), nil, nil); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Decode err = %v; if this now decodes, update the test", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Append(nil, Header{}, nil))
	f.Add(Append(nil, Header{Version: 300, Revision: 77, KeyConsistent: true}, sampleEntries()))
	f.Add(Append(nil, Header{Version: -1}, sampleEntries()[:3]))
	f.Add(appendFormat1(nil, Header{Version: 300, Revision: 77, KeyConsistent: true}, sampleEntries()))
	f.Add([]byte{format, 1, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, es, err := Decode(b, nil, nil)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			if len(es) != 0 {
				t.Fatalf("%d entries with an error", len(es))
			}
			return
		}
		enc := Append(nil, h, es)
		// Stamps round-trip through the digests when the current ones are
		// theirs: not when one flag id has two stamps (only in format 1).
		current := stampsOf(es)
		unique := true
		for _, e := range es {
			unique = unique && current[e.FlagID] == e.Stamp
		}
		h2, es2, err := Decode(enc, nil, current)
		if err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		if h2 != h || len(es2) != len(es) {
			t.Fatalf("re-decoded %+v %d entries, want %+v %d", h2, len(es2), h, len(es))
		}
		for i := range es {
			a, b := es[i], es2[i]
			if !a.ValidUntil.Equal(b.ValidUntil) || a.ValidUntil.IsZero() != b.ValidUntil.IsZero() {
				t.Fatalf("entry %d ValidUntil %v != %v", i, a.ValidUntil, b.ValidUntil)
			}
			a.ValidUntil, b.ValidUntil = time.Time{}, time.Time{}
			if !unique {
				a.Stamp, b.Stamp = 0, 0
			}
			if a != b {
				t.Fatalf("entry %d: %+v != %+v", i, b, a)
			}
		}
		if !unique {
			return
		}
		if again := Append(nil, h2, es2); !bytes.Equal(again, enc) {
			t.Fatalf("Append(Decode(Append(Decode(x)))) is not stable:\n%x\n%x", again, enc)
		}
	})
}
