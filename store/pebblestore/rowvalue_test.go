package pebblestore

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/vexil-dev/vexil/store"
)

func TestRowValueRoundTrip(t *testing.T) {
	for _, v := range []rowValue{
		{present: true, row: store.Row{PersonID: "p", PersonVersion: 7, Revision: 1<<64 - 1, Properties: []byte(`{"a":5.0}`), Results: []byte("r"), Counters: []byte{0}, ResultsStamp: 1764066000123456}},
		{present: false, row: store.Row{Counters: []byte("c"), ResultsStamp: -5}},
		{present: false, row: store.Row{Results: []byte("r")}},
		{present: true, row: store.Row{PersonID: "", PersonVersion: -1, Properties: []byte("{}")}},
	} {
		b := appendRowValue(nil, &v)
		if len(b) > rowValueSize(&v) {
			t.Fatalf("encoded %d bytes, size bound %d", len(b), rowValueSize(&v))
		}
		var got rowValue
		if err := decodeRowValue(slices.Clone(b), &got); err != nil {
			t.Fatal(err)
		}
		if got.present != v.present || got.row.PersonID != v.row.PersonID || got.row.PersonVersion != v.row.PersonVersion ||
			got.row.Revision != v.row.Revision || !bytes.Equal(got.row.Properties, v.row.Properties) ||
			!bytes.Equal(got.row.Results, v.row.Results) || !bytes.Equal(got.row.Counters, v.row.Counters) ||
			got.row.ResultsStamp != v.row.ResultsStamp {
			t.Fatalf("round trip %+v -> %+v", v, got)
		}
		for i := range len(b) {
			if err := decodeRowValue(b[:i], &got); !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("truncated to %d: %v", i, err)
			}
		}
	}
}

// TestRowValueWithoutStamp decodes a value written before results were
// versioned (no flagStamp): stamp 0.
func TestRowValueWithoutStamp(t *testing.T) {
	// format, flags, person id "p", version 3, revision 9, props "{}",
	// results "r", counters "".
	old := []byte{rowFormat, flagPresent, 1, 'p', 6, 0, 0, 0, 0, 0, 0, 0, 9, 2, '{', '}', 1, 'r', 0}
	var v rowValue
	if err := decodeRowValue(old, &v); err != nil {
		t.Fatal(err)
	}
	if !v.present || v.row.PersonID != "p" || v.row.PersonVersion != 3 || v.row.Revision != 9 ||
		string(v.row.Properties) != "{}" || string(v.row.Results) != "r" || v.row.ResultsStamp != 0 || v.row.Counters != nil {
		t.Fatalf("decoded %+v", v)
	}
	if again := appendRowValue(nil, &v); !bytes.Equal(again, old) {
		t.Fatalf("re-encoded %x, want %x", again, old)
	}
}

func FuzzDecodeRow(f *testing.F) {
	f.Add(appendRowValue(nil, &rowValue{present: true, row: store.Row{PersonID: "p", Properties: []byte(`{"a":1}`), Results: []byte("r")}}))
	f.Add([]byte{rowFormat, flagPresent, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		var v rowValue
		if err := decodeRowValue(slices.Clone(data), &v); err != nil {
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// Whatever decodes re-encodes to a value that decodes the same.
		again := appendRowValue(nil, &v)
		var w rowValue
		if err := decodeRowValue(again, &w); err != nil {
			t.Fatal(err)
		}
		if w.present != v.present || w.row.PersonID != v.row.PersonID || !bytes.Equal(w.row.Properties, v.row.Properties) ||
			!bytes.Equal(w.row.Results, v.row.Results) || !bytes.Equal(w.row.Counters, v.row.Counters) ||
			w.row.Revision != v.row.Revision || w.row.PersonVersion != v.row.PersonVersion || w.row.ResultsStamp != v.row.ResultsStamp {
			t.Fatalf("re-decoded %+v differs from %+v", w, v)
		}
	})
}
