package pebblestore_test

import (
	"context"
	"testing"

	"github.com/vexil-dev/vexil/store"
)

// CountersOf returns the counters of the rows that exist, nil for a row
// without any, nothing for a missing row or one whose person part was
// deleted, whatever the order of the keys.
func TestCountersOf(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	var b store.Batch
	for _, id := range []string{"a", "b", "c"} {
		b.PutRow(&store.Row{Team: 1, DistinctID: id, PersonID: "P" + id, Properties: []byte(`{}`)})
	}
	b.SetCounters(1, "a", []byte{1, 2, 3})
	b.SetCounters(1, "c", []byte{9})
	b.PutRow(&store.Row{Team: 2, DistinctID: "a", PersonID: "Q", Properties: []byte(`{}`)})
	b.SetCounters(2, "a", []byte{7})
	if err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	var d store.Batch
	d.DeleteRow(1, "c")
	if err := s.Apply(ctx, &d); err != nil {
		t.Fatal(err)
	}
	keys := []store.DistinctKey{{Team: 2, DistinctID: "a"}, {Team: 1, DistinctID: "zz"}, {Team: 1, DistinctID: "c"},
		{Team: 1, DistinctID: "b"}, {Team: 1, DistinctID: "a"}}
	got, err := s.CountersOf(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || string(got[keys[4]]) != "\x01\x02\x03" || string(got[keys[0]]) != "\x07" {
		t.Fatalf("counters %v", got)
	}
	if c, ok := got[keys[3]]; !ok || c != nil {
		t.Fatalf("a row without counters: %q %v", c, ok)
	}
}
