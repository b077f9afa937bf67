package wire

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// typicalRequest is what posthog-node sends to /flags for one person in a
// company, with five person properties and a flag key list.
const typicalRequest = `{"token":"phc_k3Xq9vR2mT7wYp4LbN8sZc1dFh6jGa5eUo0iWx","distinct_id":"5f1c2a9e-8b7d-4c3e-a1f0-9d8e7c6b5a43",` +
	`"groups":{"company":"acme-42"},"person_properties":{"email":"ada@example.com","plan":"pro","$browser":"Chrome","age":31,"beta_tester":true},` +
	`"group_properties":{"company":{"plan":"enterprise","seats":250}},"geoip_disable":false,` +
	`"flag_keys_to_evaluate":["new-checkout","dark-mode","pricing-experiment"]}`

// storedProperties is a stored person row's properties, about 1 KB:
// canonical JSON (keys sorted, compact), as the projector writes it.
const storedProperties = `{"$browser":"Chrome","$browser_version":131,"$current_url":"https://app.example.com/settings/billing",` +
	`"$device_type":"Desktop","$geoip_city_name":"Paris","$geoip_continent_code":"EU","$geoip_country_code":"FR",` +
	`"$geoip_latitude":48.8534,"$geoip_longitude":2.3488,"$geoip_time_zone":"Europe/Paris","$initial_browser":"Chrome",` +
	`"$initial_referrer":"https://www.google.com/","$initial_referring_domain":"www.google.com","$initial_utm_source":"newsletter",` +
	`"$os":"Mac OS X","$os_version":"14.6.1","$pathname":"/settings/billing","$referring_domain":"$direct",` +
	`"company_size":250,"created_at":"2024-03-18T09:21:44.512Z","email":"ada.lovelace@example.com","email_verified":true,` +
	`"first_name":"Ada","is_admin":false,"last_name":"Lovelace","last_seen_at":"2026-11-24T17:02:11.004Z","locale":"fr-FR",` +
	`"login_count":1287,"mrr":1499.5,"onboarding_step":null,"plan":"enterprise","roles":["owner","billing"],` +
	`"signup_source":"organic","teams":[{"id":7,"name":"core"}],"trial_ends_at":null,"utm_campaign":"autumn-launch"}`

// wireBodies are the bodies of this package's request tests.
var wireBodies = []string{
	`{"token":"phc_x","distinct_id":"u1","groups":{"company":"acme","project":42},"person_properties":{"plan":"pro","n":5.0},"flag_keys_to_evaluate":["a","b"]}`,
	`{"api_key":"phc_y","distinct_id":8675309}`,
	`{"$token":"phc_z","$distinct_id":123.45}`,
	`{"token":"t","distinct_id":"d","person_properties":{"a":NaN,"b":-Infinity,"c":"NaN"}}`,
	`{"token":"t"}`,
	`{"token":"t","distinct_id":{}}`,
	`{{{`,
	`{"token":"t","distinct_id":"d","groups":[1]}`,
	`{"token":"t","distinct_id":"` + strings.Repeat("é", 250) + `","groups":{"company":"acme","project":42,"none":null},
	  "$group_properties":{"company":{"plan":"pro"}},"flag_keys":["x"],"person_properties":{"$device_id":"dev-9","n":5.0,"m":NaN},
	  "geoip_disable":true,"disable_flags":"true","evaluation_environments":["web"],"$anon_distinct_id":"anon-1","timezone":"Europe/Paris"}`,
	typicalRequest,
}

// trickyBodies are the edge cases of encoding/json and of the field rules.
var trickyBodies = []string{
	``, ` `, `null`, `nullx`, `[]`, `"x"`, `1`, `true`, `{}`, ` {} `, `{"distinct_id":"d"}trailing`,
	`{"distinct_id":"d"`, `{"distinct_id":"d",}`, `{"distinct_id" "d"}`, `{distinct_id:"d"}`, `{"distinct_id":'d'}`,
	`{"distinct_id":"d","distinct_id":null}`, `{"distinct_id":null,"$distinct_id":"x"}`, `{"distinct_id":5,"distinct_id":"six"}`,
	`{"distinct_id":-0.5e+10}`, `{"distinct_id":01}`, `{"distinct_id":1.}`, `{"distinct_id":.5}`, `{"distinct_id":1e}`, `{"distinct_id":-}`,
	`{"distinct_id":true}`, `{"distinct_id":[]}`, `{"\u0064istinct_id":"escaped key"}`, `{"distinct_id":"\ud83d\ude00 \ud800 \udc00 \u00e9 \/ \" \\ \b\f\n\r\t"}`,
	"{\"distinct_id\":\"bad \xff utf8 \xed\xa0\x80\"}", "{\"distinct_id\":\"ctl \x01\"}", `{"distinct_id":"bad \x escape"}`, `{"distinct_id":"\u12"}`,
	`{"distinct_id":"d","token":5}`, `{"distinct_id":"d","token":null,"api_key":"k"}`, `{"distinct_id":"d","token":null,"api_key":null,"$token":"k"}`,
	`{"distinct_id":"d","groups":{"a":"x","a":[]}}`, `{"distinct_id":"d","groups":{"a":[],"a":"x"}}`, `{"distinct_id":"d","groups":{"a":null,"b":1.5}}`,
	`{"distinct_id":"d","groups":null,"$groups":{"c":"k"}}`, `{"distinct_id":"d","groups":"x"}`, `{"distinct_id":"d","groups":{"a":true}}`,
	`{"distinct_id":"d","group_properties":{"a":{"p":1},"b":null}}`, `{"distinct_id":"d","group_properties":{"a":1}}`,
	`{"distinct_id":"d","group_properties":{"a":1,"a":{}}}`, `{"distinct_id":"d","group_properties":[]}`,
	`{"distinct_id":"d","person_properties":[]}`, `{"distinct_id":"d","person_properties":{"$device_id":7}}`,
	`{"distinct_id":"d","person_properties":{"$device_id":7},"device_id":true}`, `{"distinct_id":"d","$device_id":"x"}`,
	`{"distinct_id":"d","flag_keys":["a",null]}`, `{"distinct_id":"d","flag_keys":[]}`, `{"distinct_id":"d","flag_keys":"a"}`,
	`{"distinct_id":"d","flag_keys_to_evaluate":null,"flag_keys":["b"]}`, `{"distinct_id":"d","evaluation_contexts":[1,"a"]}`,
	`{"distinct_id":"d","geoip_disable":"TRUE","disable_flags":1}`, `{"distinct_id":"d","timezone":3,"evaluation_runtime":"server","$anon_distinct_id":false}`,
	`{"distinct_id":"d","x":[[[[{"y":[1,2,{"z":null}]}]]]]}`, `{"distinct_id":"d","person_properties":{"a":[],"b":{},"c":[{}],"d":-1.25E-3}}`,
	`{"distinct_id":"d","x":Infinity,"y":"Infinity"}`, `{"distinct_id":"d","x":NaNa}`, `{"distinct_id":"d" , "x" : [ 1 , 2 ] }`,
	`{"distinct_id":tru}`, `{"distinct_id":nul}`, `{"distinct_id":"d"}}`, `{"a":1,}`, `{,}`, `[1,]`,
	strings.Repeat(`[`, maxDepth) + strings.Repeat(`]`, maxDepth), `{"distinct_id":"d","x":` + strings.Repeat(`[`, maxDepth-1) + strings.Repeat(`]`, maxDepth-1) + `}`,
	`{"distinct_id":"d","x":` + strings.Repeat(`[`, maxDepth) + strings.Repeat(`]`, maxDepth) + `}`,
	`{"distinct_id":"d","person_properties":` + strings.Repeat(`{"a":`, maxDepth-1) + `1` + strings.Repeat(`}`, maxDepth-1) + `}`,
	`{"distinct_id":"d","person_properties":` + strings.Repeat(`{"a":`, maxDepth) + `1` + strings.Repeat(`}`, maxDepth) + `}`,
}

// vectorBodies turns the SDK test vectors (flags/testdata/posthog, made by
// running PostHog's SDKs) into /flags bodies and stored property objects.
func vectorBodies(tb testing.TB) (bodies, props []string) {
	tb.Helper()
	data, err := os.ReadFile("../../flags/testdata/posthog/flags.json")
	if err != nil {
		tb.Fatal(err)
	}
	var file struct {
		Cases []struct {
			DistinctID       any            `json:"distinct_id"`
			Groups           map[string]any `json:"groups"`
			PersonProperties map[string]any `json:"person_properties"`
			GroupProperties  map[string]any `json:"group_properties"`
			Flag             struct {
				Key string `json:"key"`
			} `json:"flag"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		tb.Fatal(err)
	}
	for _, c := range file.Cases {
		body := map[string]any{"token": "phc_vectors", "distinct_id": c.DistinctID, "flag_keys_to_evaluate": []string{c.Flag.Key}}
		if c.Groups != nil {
			body["groups"] = c.Groups
		}
		if c.PersonProperties != nil {
			body["person_properties"] = c.PersonProperties
			b, _ := json.Marshal(c.PersonProperties) // sorted keys, compact: canonical
			props = append(props, string(b))
		}
		if c.GroupProperties != nil {
			body["group_properties"] = c.GroupProperties
		}
		b, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		bodies = append(bodies, string(b))
	}
	return bodies, props
}

func allSeeds(tb testing.TB) []string {
	bodies, props := vectorBodies(tb)
	seeds := append(append([]string{}, wireBodies...), trickyBodies...)
	seeds = append(seeds, storedProperties)
	return append(append(seeds, bodies...), props...)
}

// parseUnlimited is parseFlagsBody with limits no input reaches, for the
// comparisons with encoding/json (which has none).
func parseUnlimited(body []byte) (*FlagsRequest, error) {
	return parseFlagsBody(body, Limits{MaxDecodedBytes: math.MaxInt, MaxValues: math.MaxInt, MaxStringBytes: math.MaxInt})
}

// parseDefaultLimits is parseFlagsBody with the default limits.
func parseDefaultLimits(body []byte) (*FlagsRequest, error) { return parseFlagsBody(body, Limits{}) }

// checkFlagsBody fails t unless parseFlagsBody and parseFlagsBodyStd agree
// on body. Where several group types are bad, the reference names one at
// random (map order), so any bad one is accepted.
func checkFlagsBody(t *testing.T, body []byte) {
	t.Helper()
	got, err := parseUnlimited(body)
	checkLimited(t, body, got, err)
	want, wantErr := parseFlagsBodyStd(body)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("%q: got %v, want error %v", body, err, wantErr)
	}
	if err != nil {
		var re, wre *RequestError
		if !errors.As(err, &re) || !errors.As(wantErr, &wre) {
			t.Fatalf("%q: errors %T %T are not *RequestError", body, err, wantErr)
		}
		if *re != *wre && !sameBadGroup(body, re, wre) {
			t.Fatalf("%q: got error %+v, want %+v", body, *re, *wre)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %#v\nwant %#v", body, got, want)
	}
}

// checkLimited fails t unless parseFlagsBody with small limits either
// refuses body for a limit or decodes it as it does without limits (got,
// err): limits change nothing but the refusal.
func checkLimited(t *testing.T, body []byte, got *FlagsRequest, err error) {
	t.Helper()
	lgot, lerr := parseFlagsBody(body, Limits{MaxValues: 8, MaxStringBytes: 16})
	var re *RequestError
	if errors.As(lerr, &re) && (re.Code == CodeTooManyValues || re.Code == CodePropertyTooLarge) {
		if re.Status != 413 || re.Field == "" {
			t.Fatalf("%q: limit error %+v", body, *re)
		}
		return
	}
	if (lerr == nil) != (err == nil) || lerr != nil && lerr.Error() != err.Error() || !reflect.DeepEqual(lgot, got) {
		t.Fatalf("%q: with limits %v %+v, without %v %+v", body, lerr, lgot, err, got)
	}
}

// sameBadGroup reports whether got and want are the same error about two
// group types that are both bad in body.
func sameBadGroup(body []byte, got, want *RequestError) bool {
	for _, field := range [][2]string{{"groups", "$groups"}, {"group_properties", "$group_properties"}} {
		prefix := field[0] + "."
		if !strings.HasPrefix(got.Field, prefix) || !strings.HasPrefix(want.Field, prefix) ||
			got.Status != want.Status || got.Code != want.Code || got.Message != want.Message {
			continue
		}
		m := map[string]any{}
		if err := decodePropertiesStd(sanitizeJSON5(body), m); err != nil {
			return false
		}
		obj, ok := m[field[0]].(map[string]any)
		if m[field[0]] == nil {
			obj, ok = m[field[1]].(map[string]any)
		}
		if !ok {
			return false
		}
		v, ok := obj[strings.TrimPrefix(got.Field, prefix)]
		if !ok || v == nil {
			return false
		}
		switch v.(type) {
		case string, json.Number: // a group key
			return field[0] == "group_properties"
		case map[string]any: // group properties
			return field[0] == "groups"
		}
		return true
	}
	return false
}

// checkProperties fails t unless DecodeProperties and decodePropertiesStd
// agree on b, into an empty map and into one that already holds a key.
func checkProperties(t *testing.T, b []byte) {
	t.Helper()
	for _, pre := range []map[string]any{nil, {}, {"pre": "existing", "a": json.Number("0")}} {
		var got, want map[string]any
		if pre != nil {
			got, want = map[string]any{}, map[string]any{}
			for k, v := range pre {
				got[k], want[k] = v, v
			}
		}
		err := DecodeProperties(b, got)
		wantErr := decodePropertiesStd(b, want)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("%q: got %v, want error %v", b, err, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n got %#v\nwant %#v", b, got, want)
		}
	}
}

func TestParseFlagsBodyMatchesStd(t *testing.T) {
	for _, s := range allSeeds(t) {
		checkFlagsBody(t, []byte(s))
	}
}

func TestDecodePropertiesMatchesStd(t *testing.T) {
	for _, s := range allSeeds(t) {
		checkProperties(t, []byte(s))
	}
}

func TestDecodeProperties(t *testing.T) {
	m := map[string]any{}
	if err := DecodeProperties([]byte(storedProperties), m); err != nil {
		t.Fatal(err)
	}
	if m["$browser_version"] != json.Number("131") || m["mrr"] != json.Number("1499.5") || m["email_verified"] != true ||
		m["plan"] != "enterprise" || m["trial_ends_at"] != nil || len(m) != 36 {
		t.Errorf("decoded %#v", m)
	}
	if roles, _ := m["roles"].([]any); len(roles) != 2 || roles[1] != "billing" {
		t.Errorf("roles %#v", m["roles"])
	}
	var syntax error = DecodeProperties([]byte(`{"a":1,}`), map[string]any{})
	if !errors.Is(syntax, ErrInvalidJSON) {
		t.Errorf("syntax error %v does not wrap ErrInvalidJSON", syntax)
	}
	before := map[string]any{"kept": "yes"}
	if err := DecodeProperties([]byte(`{"a":"b","c":[1,}`), before); err == nil || len(before) != 1 {
		t.Errorf("invalid input: err %v, map %v; want an error and the map unchanged", err, before)
	}
}

// fuzzSeeds are the seeds without the deeply nested ones, which make
// each execution and minimization slow; the tests above run those.
func fuzzSeeds(f *testing.F) []string {
	var out []string
	for _, s := range allSeeds(f) {
		if len(s) <= 4096 {
			out = append(out, s)
		}
	}
	return out
}

func FuzzParseFlagsBody(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add([]byte(s))
	}
	f.Fuzz(checkFlagsBody)
}

func FuzzDecodeProperties(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add([]byte(s))
	}
	f.Fuzz(checkProperties)
}

// Run with:
//
//	go test -run '^$' -bench 'ParseFlagsBody|DecodeProperties' -benchmem -count 5 ./evalsvc/wire/
func BenchmarkParseFlagsBody(b *testing.B) {
	same := [][]byte{[]byte(typicalRequest)}
	varied := variants(typicalRequest, "5f1c2a9e-8b7d-4c3e-a1f0-9d8e7c6b5a43", "ada@example.com", `"age":31`)
	for _, c := range []struct {
		name  string
		parse func([]byte) (*FlagsRequest, error)
	}{{"encoding-json", parseFlagsBodyStd}, {"wire", parseDefaultLimits}} {
		for _, in := range []struct {
			name   string
			bodies [][]byte
		}{{"same", same}, {"varied", varied}} {
			b.Run(c.name+"/"+in.name, func(b *testing.B) {
				b.SetBytes(int64(len(typicalRequest)))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, err := c.parse(in.bodies[i%len(in.bodies)]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

// variants makes 4096 copies of s in which each of the given substrings
// gets digits appended (it stays valid JSON), as different persons'
// requests or rows differ.
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

func BenchmarkDecodeProperties(b *testing.B) {
	same := [][]byte{[]byte(storedProperties)}
	varied := variants(storedProperties, "Paris", "48.8534", "2.3488", "2024-03-18T09:21:44.512Z", "ada.lovelace@example.com",
		`"first_name":"Ada`, "Lovelace", "2026-11-24T17:02:11.004Z", "1287", "1499.5", "/settings/billing")
	for _, c := range []struct {
		name   string
		decode func([]byte, map[string]any) error
	}{{"encoding-json", decodePropertiesStd}, {"wire", DecodeProperties}} {
		for _, in := range []struct {
			name string
			rows [][]byte
		}{{"same", same}, {"varied", varied}} {
			b.Run(c.name+"/"+in.name, func(b *testing.B) {
				b.SetBytes(int64(len(storedProperties)))
				b.ReportAllocs()
				m := map[string]any{}
				i := 0
				for b.Loop() {
					clear(m)
					if err := c.decode(in.rows[i%len(in.rows)], m); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

// TestBadGroupFieldIsStable: with several group types of the wrong type,
// the error names the smallest one, every time (it came from map order).
func TestBadGroupFieldIsStable(t *testing.T) {
	for _, c := range []struct{ body, field string }{
		{`{"distinct_id":"u","group_properties":{"b":1,"a":2,"c":{}}}`, "group_properties.a"},
		{`{"distinct_id":"u","groups":{"z":[],"y":{},"x":"ok"}}`, "groups.y"},
	} {
		for range 20 {
			_, err := parseDefaultLimits([]byte(c.body))
			var re *RequestError
			if !errors.As(err, &re) || re.Field != c.field {
				t.Fatalf("%s: got %v, want an error naming %s", c.body, err, c.field)
			}
		}
	}
}
