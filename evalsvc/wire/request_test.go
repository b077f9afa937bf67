package wire

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"unsafe"
)

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeFlagsRequest(t *testing.T) {
	const body = `{"token":"phc_x","distinct_id":"u1","groups":{"company":"acme","project":42},"person_properties":{"plan":"pro","n":5.0},"flag_keys_to_evaluate":["a","b"]}`
	b64 := base64.StdEncoding.EncodeToString([]byte(body))
	cases := []struct {
		name        string
		ct, ce, q   string
		body        []byte
		wantToken   string
		wantID      string
		wantErrCode string
		wantStatus  int
	}{
		{"plain JSON", "application/json", "", "v=2", []byte(body), "phc_x", "u1", "", 0},
		{"no content type counts as JSON", "", "", "", []byte(body), "phc_x", "u1", "", 0},
		{"text/plain", "text/plain; charset=utf-8", "", "", []byte(body), "phc_x", "u1", "", 0},
		{"gzip by parameter", "application/json", "", "compression=gzip-js", gz(t, body), "phc_x", "u1", "", 0},
		{"gzip by header", "application/json", "gzip", "", gz(t, body), "phc_x", "u1", "", 0},
		{"gzip by magic bytes", "application/json", "", "", gz(t, body), "phc_x", "u1", "", 0},
		{"base64 JSON body", "application/json", "", "", []byte(b64), "phc_x", "u1", "", 0},
		{"base64 without padding, url-escaped", "text/plain", "", "", []byte(url.QueryEscape(strings.TrimRight(b64, "="))), "phc_x", "u1", "", 0},
		{"form data=", "application/x-www-form-urlencoded", "", "compression=base64", []byte("data=" + url.QueryEscape(b64)), "phc_x", "u1", "", 0},
		{"plain JSON sent as a form (curl -d)", "application/x-www-form-urlencoded", "", "", []byte(body), "phc_x", "u1", "", 0},
		{"api_key alias, numeric distinct id", "application/json", "", "", []byte(`{"api_key":"phc_y","distinct_id":8675309}`), "phc_y", "8675309", "", 0},
		{"$token and float distinct id", "application/json", "", "", []byte(`{"$token":"phc_z","$distinct_id":123.45}`), "phc_z", "123.45", "", 0},
		{"NaN and Infinity become null", "application/json", "", "", []byte(`{"token":"t","distinct_id":"d","person_properties":{"a":NaN,"b":-Infinity,"c":"NaN"}}`), "t", "d", "", 0},
		{"missing distinct id", "application/json", "", "", []byte(`{"token":"t"}`), "", "", CodeMissingDistinctID, 400},
		{"distinct id of the wrong type", "application/json", "", "", []byte(`{"token":"t","distinct_id":{}}`), "", "", CodeBadBody, 400},
		{"not JSON", "application/json", "", "", []byte(`{{{`), "", "", CodeBadBody, 400},
		{"unsupported content type", "application/xml", "", "", []byte(body), "", "", CodeBadContentType, 400},
		{"unsupported compression", "application/json", "", "compression=lz4", []byte(body), "", "", CodeBadCompression, 400},
		{"gzip with a form body", "application/x-www-form-urlencoded", "", "compression=gzip", gz(t, body), "", "", CodeBadCompression, 400},
		{"broken gzip", "application/json", "gzip", "", []byte{0x1f, 0x8b, 1, 2, 3}, "", "", CodeBadBody, 400},
		{"groups not an object", "application/json", "", "", []byte(`{"token":"t","distinct_id":"d","groups":[1]}`), "", "", CodeBadBody, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := DecodeFlagsRequest(c.ct, c.ce, Query(c.q), c.body, Limits{})
			if c.wantErrCode != "" {
				var re *RequestError
				if !errors.As(err, &re) || re.Code != c.wantErrCode || re.Status != c.wantStatus {
					t.Fatalf("got %v, want %s (%d)", err, c.wantErrCode, c.wantStatus)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Token != c.wantToken || r.DistinctID != c.wantID {
				t.Errorf("token %q id %q, want %q %q", r.Token, r.DistinctID, c.wantToken, c.wantID)
			}
		})
	}
}

func TestDecodeFlagsRequestFields(t *testing.T) {
	long := strings.Repeat("é", 250)
	body := `{"token":"t","distinct_id":"` + long + `","groups":{"company":"acme","project":42,"none":null},
	  "$group_properties":{"company":{"plan":"pro"}},"flag_keys":["x"],"person_properties":{"$device_id":"dev-9","n":5.0,"m":NaN},
	  "geoip_disable":true,"disable_flags":"true","evaluation_environments":["web"],"$anon_distinct_id":"anon-1","timezone":"Europe/Paris"}`
	r, err := DecodeFlagsRequest("application/json", "", "", []byte(body), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len([]rune(r.DistinctID)); n != MaxDistinctIDLength {
		t.Errorf("distinct id has %d characters, want %d", n, MaxDistinctIDLength)
	}
	if r.Groups["company"] != "acme" || r.Groups["project"] != "42" || len(r.Groups) != 2 {
		t.Errorf("groups %v", r.Groups)
	}
	if r.GroupProperties["company"]["plan"] != "pro" {
		t.Errorf("group properties %v", r.GroupProperties)
	}
	if r.PersonProperties["n"] != json.Number("5.0") || r.PersonProperties["m"] != nil {
		t.Errorf("numbers must keep their text and NaN become null: %#v", r.PersonProperties)
	}
	if len(r.FlagKeys) != 1 || r.FlagKeys[0] != "x" || !r.GeoIPDisable || !r.DisableFlags {
		t.Errorf("flag keys %v geoip %v disable %v", r.FlagKeys, r.GeoIPDisable, r.DisableFlags)
	}
	if r.DeviceID != "dev-9" || r.AnonDistinctID != "anon-1" || r.Timezone != "Europe/Paris" || r.EvaluationContexts[0] != "web" {
		t.Errorf("device %q anon %q tz %q contexts %v", r.DeviceID, r.AnonDistinctID, r.Timezone, r.EvaluationContexts)
	}
}

func TestDecodeLimit(t *testing.T) {
	big := `{"token":"t","distinct_id":"d","person_properties":{"x":"` + strings.Repeat("a", 5000) + `"}}`
	_, err := DecodeFlagsRequest("application/json", "gzip", "", gz(t, big), Limits{MaxDecodedBytes: 1000})
	var re *RequestError
	if !errors.As(err, &re) || re.Status != 413 || re.Code != CodeBodyTooLarge {
		t.Fatalf("got %v, want 413 body_too_large", err)
	}
}

func TestChooseShape(t *testing.T) {
	cases := []struct {
		decide     bool
		query      string
		want       Shape
		wantConfig bool
	}{
		{false, "v=2", ShapeV2, false},
		{false, "v=4", ShapeV2, false},
		{false, "v=1", ShapeLegacy, false},
		{false, "v=abc", ShapeLegacy, false},
		{false, "v=2&config=true", ShapeV2, true},
		{false, "", ShapeV2, true},
		{false, "config=false", ShapeLegacy, false},
		{true, "", ShapeDecideV1, true},
		{true, "v=2", ShapeDecideV2, true},
		{true, "v=3", ShapeLegacy, true},
		{true, "v=4", ShapeV2, true},
	}
	for _, c := range cases {
		got, cfg := ChooseShape(c.decide, Query(c.query))
		if got != c.want || cfg != c.wantConfig {
			t.Errorf("decide=%v %q: got %v config=%v, want %v config=%v", c.decide, c.query, got, cfg, c.want, c.wantConfig)
		}
	}
}

func FuzzDecodeFlagsRequest(f *testing.F) {
	f.Add("application/json", "", "v=2", []byte(`{"token":"t","distinct_id":"d"}`))
	f.Add("application/x-www-form-urlencoded", "", "compression=base64", []byte("data=eyJ0b2tlbiI6InQiLCJkaXN0aW5jdF9pZCI6ImQifQ"))
	f.Add("text/plain", "gzip", "", []byte{0x1f, 0x8b})
	f.Add("application/json", "", "", []byte(`{"distinct_id":NaN,"token":Infinity}`))
	f.Fuzz(func(t *testing.T, ct, ce, q string, body []byte) {
		r, err := DecodeFlagsRequest(ct, ce, Query(q), body, Limits{MaxDecodedBytes: 1 << 16})
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || re.Status < 400 || re.Status > 499 || re.Code == "" {
				t.Fatalf("error %v is not a 4xx RequestError with a code", err)
			}
			return
		}
		if len([]rune(r.DistinctID)) > MaxDistinctIDLength {
			t.Fatalf("distinct id longer than %d", MaxDistinctIDLength)
		}
	})
}

// TestTokenCache: a token repeated across requests is one string (no copy
// per request), whatever other tokens came between, and each request gets
// its own token right, escaped or not, under any of its names.
func TestTokenCache(t *testing.T) {
	decode := func(body string) string {
		t.Helper()
		var r FlagsRequest
		if err := DecodeFlagsRequestInto(&r, "application/json", "", "", []byte(body), Limits{}); err != nil {
			t.Fatal(err)
		}
		return r.Token
	}
	const tok = "phc_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
	first := decode(`{"token":"` + tok + `","distinct_id":"a"}`)
	for i := range 100 { // more tokens than slots
		other := fmt.Sprintf("phc_other_%d", i)
		if got := decode(`{"api_key":"` + other + `","distinct_id":"b"}`); got != other {
			t.Fatalf("token %q, want %q", got, other)
		}
	}
	for _, body := range []string{
		`{"token":"` + tok + `","distinct_id":"a"}`,
		`{"$token":"` + tok + `","distinct_id":"a"}`,
		`{"token":"phc_\u00301234` + tok[9:] + `","distinct_id":"a"}`,
	} {
		if got := decode(body); got != tok {
			t.Fatalf("%s: token %q, want %q", body, got, tok)
		}
	}
	if first != tok {
		t.Fatalf("token %q, want %q", first, tok)
	}
	// The cache is the parser's (pooled): checked on one parser.
	p := new(parser)
	a := p.token([]byte(tok))
	p.token([]byte("phc_another"))
	if b := p.token([]byte(tok)); b != tok || unsafe.StringData(a) != unsafe.StringData(b) {
		t.Error("the same token twice: two strings")
	}
	long := strings.Repeat("x", tokenMaxLen+1)
	if got := decode(`{"token":"` + long + `","distinct_id":"a"}`); got != long {
		t.Errorf("a long token: %q", got)
	}
}
