package store

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func samplePerson() *Person {
	p := NewPerson(-3, "pérson")
	p.ApplyUpdate(PersonUpdate{Version: 5, Set: map[string][]byte{"a": []byte("5.0"), "b": []byte(`"x"`)}, SetOnce: map[string][]byte{"c": []byte("null")}, Unset: []string{"d"}})
	p.ApplyDelete(2)
	return p
}

func TestCodecRoundTrip(t *testing.T) {
	p := samplePerson()
	g := NewGroup(9, 255, "grüpp")
	g.ApplyUpdate(GroupUpdate{Version: 3, Set: map[string][]byte{"n": []byte("1e2")}, Unset: []string{"z"}})
	g.Results, g.ResultsStamp = []byte("gr"), 1_763_100_000_000_001
	r := &Row{Team: 1 << 62, DistinctID: "d\x00", PersonID: "p", PersonVersion: -1, Revision: 1<<64 - 1,
		Properties: []byte(`{"a":1}`), Results: []byte{0, 1}, Counters: nil, ResultsStamp: 1_763_100_000_000_002}
	m := &Mapping{Team: 1, DistinctID: "d", PersonID: "p", Version: -9}

	var p2 Person
	var g2 Group
	var r2 Row
	var m2 Mapping
	for _, c := range []struct {
		in  interface{ MarshalBinary() ([]byte, error) }
		out interface {
			UnmarshalBinary([]byte) error
			MarshalBinary() ([]byte, error)
		}
	}{{p, &p2}, {g, &g2}, {r, &r2}, {m, &m2}} {
		b, err := c.in.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.out.UnmarshalBinary(b); err != nil {
			t.Fatalf("%T: %v", c.in, err)
		}
		b2, _ := c.out.MarshalBinary()
		if !bytes.Equal(b, b2) {
			t.Fatalf("%T does not round-trip", c.in)
		}
		// Every truncation is an error wrapping ErrCorrupt.
		for i := range len(b) {
			if err := c.out.UnmarshalBinary(b[:i]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%T truncated to %d: %v", c.in, i, err)
			}
		}
		if err := c.out.UnmarshalBinary(append(b, 0)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%T with a trailing byte: %v", c.in, err)
		}
	}
	if string(g2.Results) != "gr" || g2.ResultsStamp != g.ResultsStamp || r2.ResultsStamp != r.ResultsStamp {
		t.Fatalf("decoded results: group %q/%d, row stamp %d", g2.Results, g2.ResultsStamp, r2.ResultsStamp)
	}
	if p2.Set["d"].Value != nil || p2.Set["d"].Version != 5 || string(p2.Set["a"].Value) != "5.0" || !p2.Deleted || p2.DeleteVersion != 2 {
		t.Fatalf("decoded person %+v", p2)
	}
	if r2.Counters != nil || string(r2.Results) != "\x00\x01" || r2.Revision != 1<<64-1 {
		t.Fatalf("decoded row %+v", r2)
	}
}

func TestCodecCanonical(t *testing.T) {
	// Equal content built in different orders encodes identically; empty
	// and nil reserved fields encode alike.
	a := NewPerson(1, "p")
	b := NewPerson(1, "p")
	a.ApplyUpdate(PersonUpdate{Version: 1, Set: map[string][]byte{"x": []byte("1"), "y": []byte("2"), "z": []byte("3")}})
	for _, k := range []string{"z", "x", "y"} {
		b.ApplyUpdate(PersonUpdate{Version: 1, Set: map[string][]byte{k: a.Set[k].Value}})
	}
	ea, _ := a.MarshalBinary()
	eb, _ := b.MarshalBinary()
	if !bytes.Equal(ea, eb) {
		t.Fatal("equal persons encode differently")
	}
	r1 := &Row{Team: 1, DistinctID: "d", Properties: []byte("{}"), Results: []byte{}}
	r2 := &Row{Team: 1, DistinctID: "d", Properties: []byte("{}")}
	e1, _ := r1.MarshalBinary()
	e2, _ := r2.MarshalBinary()
	if !bytes.Equal(e1, e2) {
		t.Fatal("empty and nil Results encode differently")
	}
	if _, err := (Entity{}).AppendBinary(nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty entity: %v", err)
	}
}

// TestGroupCodecFormat1 decodes a group encoded before groups had results
// (format 1): no results, stamp 0; it re-encodes as format 2.
func TestGroupCodecFormat1(t *testing.T) {
	g := NewGroup(9, 2, "k")
	g.ApplyUpdate(GroupUpdate{Version: 3, Set: map[string][]byte{"n": []byte("1")}})
	b, _ := g.MarshalBinary()
	if b[1] != groupFormat {
		t.Fatalf("format byte %d, want %d", b[1], groupFormat)
	}
	old := slices.Clone(b[:len(b)-3]) // results (nil: 0), stamp (0) and counters (nil: 0)
	old[1] = 1
	var g1 Group
	if err := g1.UnmarshalBinary(old); err != nil {
		t.Fatal(err)
	}
	if b2, _ := g1.MarshalBinary(); !bytes.Equal(b2, b) || g1.Results != nil || g1.ResultsStamp != 0 {
		t.Fatalf("format 1 decoded to %+v", g1)
	}
	// Format 2 (no counters) decodes too.
	old2 := slices.Clone(b[:len(b)-1])
	old2[1] = 2
	var g2 Group
	if err := g2.UnmarshalBinary(old2); err != nil || g2.Counters != nil {
		t.Fatalf("format 2: %+v, %v", g2, err)
	}
	for _, f := range []byte{0, 4} {
		bad := slices.Clone(b)
		bad[1] = f
		if err := g1.UnmarshalBinary(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("format %d: %v, want ErrCorrupt", f, err)
		}
	}
	// Results are part of the canonical encoding; empty and nil alike.
	g.Results = []byte{}
	if b3, _ := g.MarshalBinary(); !bytes.Equal(b3, b) {
		t.Fatal("empty and nil group Results encode differently")
	}
	g.ResultsStamp = 1
	if b4, _ := g.MarshalBinary(); bytes.Equal(b4, b) {
		t.Fatal("ResultsStamp is not encoded")
	}
}

func TestResultsWin(t *testing.T) {
	for _, c := range []struct {
		stamp       int64
		results     string
		storedStamp int64
		stored      string
		want        bool
	}{
		{2, "a", 1, "z", true},
		{1, "z", 2, "a", false},
		{1, "b", 1, "a", true},
		{1, "a", 1, "b", false},
		{1, "a", 1, "a", false},
		{1, "\x80", 1, "\x7f\xff", true}, // unsigned bytes
		{1, "a\x00", 1, "a", true},
		{1, "", 1, "", false},
		{1, "", 0, "", true}, // nothing stored: stamp 0
	} {
		if got := ResultsWin(c.stamp, []byte(c.results), c.storedStamp, []byte(c.stored)); got != c.want {
			t.Errorf("ResultsWin(%d, %q, %d, %q) = %v, want %v", c.stamp, c.results, c.storedStamp, c.stored, got, c.want)
		}
	}
}

func FuzzUnmarshalPerson(f *testing.F) {
	b, _ := samplePerson().MarshalBinary()
	f.Add(b)
	f.Add([]byte{kindPerson, codecFormat})
	f.Fuzz(func(t *testing.T, data []byte) {
		var p Person
		if err := p.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// What decodes re-encodes to the same bytes (the encoding is canonical).
		out, _ := p.MarshalBinary()
		if !bytes.Equal(out, data) {
			t.Fatalf("re-encoding differs:\n%x\n%x", data, out)
		}
	})
}

func FuzzUnmarshalRow(f *testing.F) {
	b, _ := (&Row{Team: 1, DistinctID: "d", PersonID: "p", Properties: []byte("{}"), Results: []byte("r")}).MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Row
		if err := r.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if _, err := r.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	})
}
