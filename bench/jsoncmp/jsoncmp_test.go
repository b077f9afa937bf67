package jsoncmp

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/bytedance/sonic"
	gojson "github.com/goccy/go-json"

	"github.com/vexil-dev/vexil/evalsvc/wire"
)

// decoder decodes one request body; decodeProps one stored row's
// properties into m.
type decoder struct {
	name        string
	body        func([]byte) error
	decodeProps func([]byte, map[string]any) error
}

// typed wraps a library's Unmarshal into the typed request.
func typed(unmarshal func([]byte, any) error) func([]byte) error {
	return func(b []byte) error { var v flagsBody; return unmarshal(b, &v) }
}

var sonicStd = sonic.ConfigStd // UseNumber, as wire keeps numbers as json.Number

// unmarshalers are the libraries' Unmarshal functions.
var unmarshalers = []struct {
	name      string
	unmarshal func([]byte, any) error
}{{"encoding-json", json.Unmarshal}, {"goccy-go-json", gojson.Unmarshal}, {"sonic", sonicStd.Unmarshal}}

var decoders = []decoder{
	{"wire", func(b []byte) error { _, err := wire.DecodeFlagsJSON(b, wire.Limits{}); return err }, wire.DecodeProperties},
	{"encoding-json", typed(json.Unmarshal), func(b []byte, m map[string]any) error {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		return d.Decode(&m)
	}},
	{"goccy-go-json", typed(gojson.Unmarshal), func(b []byte, m map[string]any) error {
		d := gojson.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		return d.Decode(&m)
	}},
	{"sonic", typed(sonicStd.Unmarshal), func(b []byte, m map[string]any) error {
		return sonicStd.Unmarshal(b, &m)
	}},
}

// variants makes 4096 copies of s in which each of the given substrings
// gets digits appended, as different persons' requests differ: a decoder
// cannot win by caching one input's strings.
func variants(s string, olds ...string) [][]byte {
	out := make([][]byte, 4096)
	for i := range out {
		v := s
		for j, old := range olds {
			v = strings.Replace(v, old, old+strconv.Itoa(1000+(i*(j+7))%9000), 1)
		}
		out[i] = []byte(v)
	}
	return out
}

// TestDecodersAgree checks that every decoder accepts every body and
// reads the same distinct id, so the benchmark compares equal work.
func TestDecodersAgree(t *testing.T) {
	for _, bd := range bodies {
		want, err := wire.DecodeFlagsJSON([]byte(bd.body), wire.Limits{})
		if err != nil {
			t.Fatalf("%s: wire: %v", bd.name, err)
		}
		for _, d := range unmarshalers {
			var v flagsBody
			err := d.unmarshal([]byte(bd.body), &v)
			if err != nil || v.DistinctID != want.DistinctID || len(v.PersonProperties) != len(want.PersonProperties) {
				t.Errorf("%s: %s: err %v, distinct_id %q (want %q), %d person properties (want %d)",
					bd.name, d.name, err, v.DistinctID, want.DistinctID, len(v.PersonProperties), len(want.PersonProperties))
			}
		}
	}
	for _, d := range decoders {
		m := map[string]any{}
		if err := d.decodeProps([]byte(storedProperties), m); err != nil || len(m) != 36 {
			t.Errorf("properties: %s: err %v, %d keys (want 36)", d.name, err, len(m))
		}
	}
}

func BenchmarkRequestBody(b *testing.B) {
	for _, bd := range bodies {
		in := variants(bd.body, "5a43", "5f6b2c8d4e1a", "ada@example.com")
		for _, d := range decoders {
			b.Run(bd.name+"/"+d.name, func(b *testing.B) {
				b.SetBytes(int64(len(bd.body)))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if err := d.body(in[i%len(in)]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

func BenchmarkStoredProperties(b *testing.B) {
	in := variants(storedProperties, "Paris", "48.8534", "2.3488", "2024-03-18T09:21:44.512Z", "ada.lovelace@example.com",
		`"first_name":"Ada`, "Lovelace", "2026-11-24T17:02:11.004Z", "1287", "1499.5", "/settings/billing")
	for _, d := range decoders {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(int64(len(storedProperties)))
			b.ReportAllocs()
			m := map[string]any{}
			i := 0
			for b.Loop() {
				clear(m)
				if err := d.decodeProps(in[i%len(in)], m); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
