package ingest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vexil-dev/vexil/namespace"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
)

func i64(v int64) *int64 { return &v }

func TestSubjectsOfNamespaces(t *testing.T) {
	staging := namespace.Name("staging")
	if s := Subject(staging, Persons, 7); s != "staging.persons.7" {
		t.Errorf("Subject(staging) = %q", s)
	}
	if w := SubjectWildcards(staging); !slices.Equal(w, []string{"staging.persons.*", "staging.groups.*", "staging.events.*"}) {
		t.Errorf("SubjectWildcards(staging) = %q", w)
	}
	if w := SubjectWildcards(""); !slices.Equal(w, []string{"vexil.persons.*", "vexil.groups.*", "vexil.events.*"}) {
		t.Errorf("SubjectWildcards(default) = %q", w)
	}
	if f, team, err := ParseSubject(staging, "staging.groups.3"); err != nil || f != Groups || team != 3 {
		t.Errorf("ParseSubject(staging) = %v, %d, %v", f, team, err)
	}
	for _, c := range []struct {
		ns      namespace.Name
		subject string
	}{{staging, "vexil.persons.1"}, {"", "staging.persons.1"}, {staging, "stagingx.persons.1"}} {
		if _, _, err := ParseSubject(c.ns, c.subject); ReasonOf(err) != ReasonWrongSubject {
			t.Errorf("ParseSubject(%q, %q) = %v, want wrong_subject", c.ns, c.subject, err)
		}
	}
}

func TestParseSubject(t *testing.T) {
	cases := []struct {
		subject string
		fam     Family
		team    int64
		ok      bool
	}{
		{"vexil.persons.1", Persons, 1, true},
		{"vexil.groups.42", Groups, 42, true},
		{"vexil.events.9223372036854775807", Events, 9223372036854775807, true},
		{"vexil.persons.0", 0, 0, false},
		{"vexil.persons.-1", 0, 0, false},
		{"vexil.persons.01", 0, 0, false},
		{"vexil.persons.+1", 0, 0, false},
		{"vexil.persons.1.x", 0, 0, false},
		{"vexil.people.1", 0, 0, false},
		{"vexil.persons", 0, 0, false},
		{"other.persons.1", 0, 0, false},
	}
	for _, c := range cases {
		f, team, err := ParseSubject("", c.subject)
		if c.ok != (err == nil) || f != c.fam || team != c.team {
			t.Errorf("ParseSubject(%q) = %v, %d, %v; want %v, %d, ok=%v", c.subject, f, team, err, c.fam, c.team, c.ok)
		}
		if err != nil && ReasonOf(err) != ReasonWrongSubject {
			t.Errorf("ParseSubject(%q) reason %q, want %q", c.subject, ReasonOf(err), ReasonWrongSubject)
		}
		if c.ok && Subject("", f, team) != c.subject {
			t.Errorf("Subject(%v, %d) = %q, want %q", f, team, Subject("", f, team), c.subject)
		}
	}
}

func TestDecodeJSONKinds(t *testing.T) {
	ts := timestamppb.New(time.Date(2026, 11, 25, 8, 30, 0, 123000000, time.UTC))
	cases := []struct {
		name    string
		subject string
		json    string
		want    *ingestv1.Envelope
	}{
		{
			"person update keeps number text",
			"vexil.persons.1",
			`{"type":"person_update","team":1,"person_id":"p1","distinct_ids":["a","b"],
			  "$set":{"plan":"pro","seats":5.0,"n":5,"obj":{ "x" : [1, 2.50] },"html":"<b>&"},
			  "$set_once":{"first":"2026-01-01"},"$unset":["old"],"version":3,"timestamp":"2026-11-25T08:30:00.123Z"}`,
			&ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonUpdate{PersonUpdate: &ingestv1.PersonUpdate{
				Team: 1, PersonId: "p1", DistinctIds: []string{"a", "b"},
				Set:     map[string]string{"plan": `"pro"`, "seats": "5.0", "n": "5", "obj": `{"x":[1,2.50]}`, "html": `"<b>&"`},
				SetOnce: map[string]string{"first": `"2026-01-01"`}, Unset: []string{"old"},
				Version: i64(3), Timestamp: ts,
			}}},
		},
		{
			"person update with version 0 and nulls",
			"vexil.persons.7",
			`{"type":"person_update","team":7,"person_id":"p","$set":null,"version":0}`,
			&ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonUpdate{PersonUpdate: &ingestv1.PersonUpdate{
				Team: 7, PersonId: "p", Version: i64(0),
			}}},
		},
		{
			"merge",
			"vexil.persons.1",
			`{"type":"person_merge","team":1,"person_id":"p2","distinct_ids":["anon"],"version":9,"merge_kind":"identify"}`,
			&ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonMerge{PersonMerge: &ingestv1.PersonMerge{
				Team: 1, PersonId: "p2", DistinctIds: []string{"anon"}, Version: i64(9), MergeKind: ingestv1.MergeKind_MERGE_KIND_IDENTIFY,
			}}},
		},
		{
			"delete",
			"vexil.persons.1",
			`{"type":"person_delete","team":1,"person_id":"p2","version":10}`,
			&ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonDelete{PersonDelete: &ingestv1.PersonDelete{
				Team: 1, PersonId: "p2", Version: i64(10),
			}}},
		},
		{
			"group update",
			"vexil.groups.1",
			`{"type":"group_update","team":1,"group_type_index":0,"group_key":"acme","$set":{"employees":250},"$unset":["x"],"version":2}`,
			&ingestv1.Envelope{Kind: &ingestv1.Envelope_GroupUpdate{GroupUpdate: &ingestv1.GroupUpdate{
				Team: 1, GroupTypeIndex: 0, GroupKey: "acme", Set: map[string]string{"employees": "250"}, Unset: []string{"x"}, Version: i64(2),
			}}},
		},
		{
			"group type mapping",
			"vexil.groups.1",
			`{"type":"group_type_mapping","team":1,"group_type_index":255,"name":"company"}`,
			&ingestv1.Envelope{Kind: &ingestv1.Envelope_GroupTypeMapping{GroupTypeMapping: &ingestv1.GroupTypeMapping{
				Team: 1, GroupTypeIndex: 255, Name: "company",
			}}},
		},
		{
			"event",
			"vexil.events.1",
			`{"type":"event","team":1,"distinct_id":"a","event":"checkout","timestamp":"2026-11-25T08:30:00.123Z","uuid":"u1","properties":{"amount":12.50}}`,
			&ingestv1.Envelope{Kind: &ingestv1.Envelope_Event{Event: &ingestv1.Event{
				Team: 1, DistinctId: "a", Event: "checkout", Timestamp: ts, Uuid: "u1", Properties: map[string]string{"amount": "12.50"},
			}}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Decode("", c.subject, "application/json; charset=utf-8", []byte(c.json), Limits{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !proto.Equal(got, c.want) {
				t.Fatalf("Decode =\n%v\nwant\n%v", got, c.want)
			}
			// The same message as protobuf decodes to the same envelope.
			bin, err := proto.Marshal(c.want)
			if err != nil {
				t.Fatal(err)
			}
			for _, ct := range []string{"", ContentTypeProtobuf} {
				got, err := Decode("", c.subject, ct, bin, Limits{})
				if err != nil {
					t.Fatalf("Decode protobuf (%q): %v", ct, err)
				}
				if !proto.Equal(got, c.want) {
					t.Fatalf("Decode protobuf =\n%v\nwant\n%v", got, c.want)
				}
			}
			// MarshalJSON round-trips.
			js, err := MarshalJSON(c.want)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Decode("", c.subject, ContentTypeJSON, js, Limits{})
			if err != nil {
				t.Fatalf("Decode(MarshalJSON): %v\n%s", err, js)
			}
			if !proto.Equal(back, c.want) {
				t.Fatalf("round trip =\n%v\nwant\n%v\njson %s", back, c.want, js)
			}
			if s, err := SubjectOf("", c.want); err != nil || s != c.subject {
				t.Errorf("SubjectOf = %q, %v; want %q", s, err, c.subject)
			}
		})
	}
}

func TestDecodePoison(t *testing.T) {
	big := `{"type":"person_update","team":1,"person_id":"p","version":1,"$set":{` + func() string {
		var b strings.Builder
		for i := range 1001 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"k` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + `` + itoa(i) + `":1`)
		}
		return b.String()
	}() + `}}`
	cases := []struct {
		name, subject, ct, payload string
		want                       Reason
	}{
		{"garbage protobuf", "vexil.persons.1", "", "\xff\xff\xff\xff", ReasonUndecodable},
		{"garbage json", "vexil.persons.1", "application/json", "{not json", ReasonUndecodable},
		{"json array", "vexil.persons.1", "application/json", "[1,2]", ReasonUndecodable},
		{"json null", "vexil.persons.1", "application/json", "null", ReasonUndecodable},
		{"invalid utf-8", "vexil.persons.1", "application/json", "{\"type\":\"person_update\",\"team\":1,\"person_id\":\"\xff\",\"version\":1}", ReasonUndecodable},
		{"bad content type", "vexil.persons.1", "text/plain", "{}", ReasonContentType},
		{"empty envelope", "vexil.persons.1", "", "", ReasonUnknownKind},
		{"unknown type", "vexil.persons.1", "application/json", `{"type":"person_upsert","team":1}`, ReasonUnknownKind},
		{"missing type", "vexil.persons.1", "application/json", `{"team":1}`, ReasonMissingField},
		{"kind on wrong subject", "vexil.groups.1", "application/json", `{"type":"person_delete","team":1,"person_id":"p","version":1}`, ReasonWrongSubject},
		{"not an ingest subject", "vexil.people.1", "application/json", `{"type":"person_delete","team":1,"person_id":"p","version":1}`, ReasonWrongSubject},
		{"team mismatch", "vexil.persons.2", "application/json", `{"type":"person_delete","team":1,"person_id":"p","version":1}`, ReasonTeamMismatch},
		{"team as string", "vexil.persons.1", "application/json", `{"type":"person_delete","team":"1","person_id":"p","version":1}`, ReasonWrongType},
		{"version as float", "vexil.persons.1", "application/json", `{"type":"person_delete","team":1,"person_id":"p","version":1.0}`, ReasonWrongType},
		{"version too big", "vexil.persons.1", "application/json", `{"type":"person_delete","team":1,"person_id":"p","version":99999999999999999999}`, ReasonInvalidValue},
		{"set as array", "vexil.persons.1", "application/json", `{"type":"person_update","team":1,"person_id":"p","version":1,"$set":[1]}`, ReasonWrongType},
		{"distinct_ids as string", "vexil.persons.1", "application/json", `{"type":"person_update","team":1,"person_id":"p","version":1,"distinct_ids":"a"}`, ReasonWrongType},
		{"unset of numbers", "vexil.persons.1", "application/json", `{"type":"person_update","team":1,"person_id":"p","version":1,"$unset":[1]}`, ReasonWrongType},
		{"unknown member", "vexil.persons.1", "application/json", `{"type":"person_delete","team":1,"person_id":"p","version":1,"$set":{}}`, ReasonUnknownField},
		{"missing version", "vexil.persons.1", "application/json", `{"type":"person_delete","team":1,"person_id":"p"}`, ReasonMissingField},
		{"missing person", "vexil.persons.1", "application/json", `{"type":"person_delete","team":1,"version":1}`, ReasonMissingField},
		{"missing team", "vexil.persons.1", "application/json", `{"type":"person_delete","person_id":"p","version":1}`, ReasonMissingField},
		{"negative version", "vexil.persons.1", "application/json", `{"type":"person_delete","team":1,"person_id":"p","version":-1}`, ReasonInvalidValue},
		{"merge without ids", "vexil.persons.1", "application/json", `{"type":"person_merge","team":1,"person_id":"p","version":1}`, ReasonMissingField},
		{"merge kind", "vexil.persons.1", "application/json", `{"type":"person_merge","team":1,"person_id":"p","distinct_ids":["a"],"version":1,"merge_kind":"fuse"}`, ReasonInvalidValue},
		{"empty distinct id", "vexil.persons.1", "application/json", `{"type":"person_update","team":1,"person_id":"p","version":1,"distinct_ids":[""]}`, ReasonMissingField},
		{"empty property key", "vexil.persons.1", "application/json", `{"type":"person_update","team":1,"person_id":"p","version":1,"$set":{"":1}}`, ReasonInvalidValue},
		{"group index", "vexil.groups.1", "application/json", `{"type":"group_type_mapping","team":1,"group_type_index":256,"name":"x"}`, ReasonInvalidValue},
		{"bad timestamp", "vexil.events.1", "application/json", `{"type":"event","team":1,"distinct_id":"a","event":"e","uuid":"u","timestamp":"yesterday"}`, ReasonInvalidValue},
		{"event without timestamp", "vexil.events.1", "application/json", `{"type":"event","team":1,"distinct_id":"a","event":"e","uuid":"u"}`, ReasonMissingField},
		{"huge property map", "vexil.persons.1", "application/json", big, ReasonTooLarge},
		{"huge value", "vexil.persons.1", "application/json", `{"type":"person_update","team":1,"person_id":"p","version":1,"$set":{"a":"` + strings.Repeat("x", 300<<10) + `"}}`, ReasonTooLarge},
		{"huge payload", "vexil.persons.1", "application/json", strings.Repeat(" ", 2<<20), ReasonTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, err := Decode("", c.subject, c.ct, []byte(c.payload), Limits{})
			if err == nil {
				t.Fatalf("Decode accepted %v", env)
			}
			if !errors.Is(err, ErrPoison) {
				t.Fatalf("error %v is not ErrPoison", err)
			}
			if got := ReasonOf(err); got != c.want {
				t.Fatalf("reason %q, want %q (%v)", got, c.want, err)
			}
		})
	}
}

func TestDecodeProtobufPropertyValues(t *testing.T) {
	env := &ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonUpdate{PersonUpdate: &ingestv1.PersonUpdate{
		Team: 1, PersonId: "p", Version: i64(1),
		Set: map[string]string{"a": " [1, 2.0 ] ", "b": `"x y"`},
	}}}
	bin, _ := proto.Marshal(env)
	got, err := Decode("", "vexil.persons.1", "", bin, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "[1,2.0]", "b": `"x y"`}
	for k, v := range want {
		if got.GetPersonUpdate().GetSet()[k] != v {
			t.Errorf("$set[%q] = %q, want %q", k, got.GetPersonUpdate().GetSet()[k], v)
		}
	}
	env.GetPersonUpdate().Set["c"] = "not json"
	bin, _ = proto.Marshal(env)
	if _, err := Decode("", "vexil.persons.1", "", bin, Limits{}); ReasonOf(err) != ReasonInvalidValue {
		t.Fatalf("non-JSON value: err %v, want reason %q", err, ReasonInvalidValue)
	}
}

func TestLimitsOverride(t *testing.T) {
	msg := `{"type":"person_update","team":1,"person_id":"p","version":1,"distinct_ids":["a","b","c"]}`
	if _, err := Decode("", "vexil.persons.1", ContentTypeJSON, []byte(msg), Limits{MaxDistinctIDs: 2}); ReasonOf(err) != ReasonTooLarge {
		t.Fatalf("err %v, want too_large", err)
	}
	if _, err := Decode("", "vexil.persons.1", ContentTypeJSON, []byte(msg), Limits{MaxDistinctIDs: 3}); err != nil {
		t.Fatalf("err %v, want nil", err)
	}
	if err := (Limits{MaxProperties: -1}).Validate(); err == nil {
		t.Fatal("negative limit validated")
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}
