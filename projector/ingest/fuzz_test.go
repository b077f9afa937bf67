package ingest

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
)

// FuzzDecode feeds arbitrary payloads to both decoders: they must never
// panic, every error must be a poison *Error, and an accepted message must
// survive a round trip through both encodings unchanged.
func FuzzDecode(f *testing.F) {
	seeds := []string{
		`{"type":"person_update","team":1,"person_id":"p1","distinct_ids":["a"],"$set":{"n":5.0,"s":"x"},"$set_once":{"o":[1,{}]},"$unset":["u"],"version":3,"timestamp":"2026-11-25T08:30:00Z"}`,
		`{"type":"person_merge","team":1,"person_id":"p2","distinct_ids":["a","b"],"version":4,"merge_kind":"alias"}`,
		`{"type":"person_delete","team":1,"person_id":"p2","version":5}`,
		`{"type":"group_update","team":1,"group_type_index":2,"group_key":"acme","$set":{"size":1e3},"version":1}`,
		`{"type":"group_type_mapping","team":1,"group_type_index":0,"name":"company"}`,
		`{"type":"event","team":1,"distinct_id":"a","event":"e","uuid":"u","timestamp":"2026-11-25T08:30:00Z","properties":{"x":null}}`,
		`{"type":"person_update","team":"1"}`,
		"\x0a\x05\x08\x01\x12\x01p",
		"",
	}
	for _, s := range seeds {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, payload string, asJSON bool) {
		ct := ContentTypeProtobuf
		if asJSON {
			ct = ContentTypeJSON
		}
		env, err := Decode("", "vexil.persons.1", ct, []byte(payload), Limits{})
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || !errors.Is(err, ErrPoison) || pe.Reason == "" {
				t.Fatalf("error %v is not a poison *Error with a reason", err)
			}
			return
		}
		js, err := MarshalJSON(env)
		if err != nil {
			t.Fatalf("MarshalJSON of an accepted message: %v", err)
		}
		back, err := Decode("", "vexil.persons.1", ContentTypeJSON, js, Limits{})
		if err != nil {
			t.Fatalf("re-decoding %s: %v", js, err)
		}
		if !proto.Equal(env, back) {
			t.Fatalf("JSON round trip changed the message:\n%v\n%v", env, back)
		}
		bin, err := proto.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		back, err = Decode("", "vexil.persons.1", ContentTypeProtobuf, bin, Limits{})
		if err != nil {
			t.Fatalf("re-decoding protobuf: %v", err)
		}
		if !proto.Equal(env, back) {
			t.Fatalf("protobuf round trip changed the message:\n%v\n%v", env, back)
		}
	})
}
