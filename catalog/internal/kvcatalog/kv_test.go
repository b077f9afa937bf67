package kvcatalog

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/catalog/internal/records"
)

// TestKeyOrder checks that encoded keys sort like the values they encode:
// integers numerically, strings bytewise, inverted ids in reverse.
func TestKeyOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys [][]byte // in the order they must sort
	}{
		{"team ids", [][]byte{newKey(tagFlag).int(1).int(9), newKey(tagFlag).int(2).int(1), newKey(tagFlag).int(256).int(0), newKey(tagFlag).int(1 << 40).int(0)}},
		{"flag ids within a team", [][]byte{newKey(tagFlag).int(7).int(1), newKey(tagFlag).int(7).int(2), newKey(tagFlag).int(7).int(255), newKey(tagFlag).int(7).int(256)}},
		{"member ids", [][]byte{memberPrefix(1, 2).last("a"), memberPrefix(1, 2).last("a\x00"), memberPrefix(1, 2).last("ab"), memberPrefix(1, 2).last("b"), memberPrefix(1, 3).last("")}},
		{"item prefixes do not interleave", [][]byte{itemPrefix(1, "flag", "1").inverted("ff"), itemPrefix(1, "flag", "10").inverted("00"), itemPrefix(1, "flag", "2").inverted("00")}},
		{"activity newest first", [][]byte{newKey(tagActivity).int(1).inverted("0000000000000003aaaaaaaa"), newKey(tagActivity).int(1).inverted("0000000000000002ffffffff"), newKey(tagActivity).int(1).inverted("000000000000000200000000")}},
	} {
		if !slices.IsSortedFunc(tc.keys, bytes.Compare) {
			t.Errorf("%s: keys out of order: %q", tc.name, tc.keys)
		}
		for i := 1; i < len(tc.keys); i++ {
			if bytes.Equal(tc.keys[i-1], tc.keys[i]) {
				t.Errorf("%s: keys %d and %d are equal", tc.name, i-1, i)
			}
		}
	}
}

func TestUpperAndAfter(t *testing.T) {
	for _, tc := range []struct {
		prefix, want []byte
	}{
		{[]byte("a"), []byte("b")},
		{[]byte{'a', 0xff}, []byte("b")},
		{[]byte{0xff, 0xff}, nil},
		{[]byte{1, 2, 3}, []byte{1, 2, 4}},
	} {
		if got := upper(tc.prefix); !bytes.Equal(got, tc.want) {
			t.Errorf("upper(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
	k := []byte("key")
	if a := after(k); bytes.Compare(a, k) <= 0 || bytes.Compare(a, []byte("key\x01")) >= 0 || !bytes.Equal(k, []byte("key")) {
		t.Errorf("after(%q) = %q", k, a)
	}
}

// TestEntryIDs checks that entry ids sort by time even when the clock
// stands still or steps back, and have the cursor shape.
func TestEntryIDs(t *testing.T) {
	var g records.EntryIDs
	t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	times := []time.Time{t0, t0, t0.Add(-time.Second), t0.Add(time.Hour)}
	var ids []string
	for _, at := range times {
		id := g.Next(at)
		if err := records.CheckEntryID(id); err != nil {
			t.Fatalf("id %q: %v", id, err)
		}
		ids = append(ids, id)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("ids not strictly increasing: %v", ids)
		}
	}
}
