package wire

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// manyProperties is a person_properties object of n properties.
func manyProperties(n int) string {
	var b strings.Builder
	b.WriteString(`{"token":"phc_x","distinct_id":"d","person_properties":{`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"p%d":%d`, i, i)
	}
	b.WriteString(`}}`)
	return b.String()
}

func wantLimitError(t *testing.T, err error, status int, code, field string) {
	t.Helper()
	var re *RequestError
	if !errors.As(err, &re) || re.Status != status || re.Code != code || re.Field != field || re.Message == "" {
		t.Fatalf("got %v, want %d %s on %q", err, status, code, field)
	}
}

func TestLimitsCountValues(t *testing.T) {
	lim := Limits{MaxValues: 6, MaxStringBytes: 8}
	cases := []struct {
		name  string
		body  string
		field string // "" when accepted
	}{
		{"six properties", `{"distinct_id":"d","person_properties":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}}`, ""},
		{"seven properties", `{"distinct_id":"d","person_properties":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7}}`, "person_properties"},
		{"nested elements count", `{"distinct_id":"d","person_properties":{"a":[1,2,3],"b":{"c":[4,5]}}}`, "person_properties"},
		{"nested at the bound", `{"distinct_id":"d","person_properties":{"a":[1,2,3],"b":{"c":4}}}`, ""},
		{"one budget across fields", `{"distinct_id":"d","person_properties":{"a":1,"b":2,"c":3},"groups":{"x":"1","y":"2"},"flag_keys":["k","l"]}`, "flag_keys_to_evaluate"},
		{"groups", `{"distinct_id":"d","$groups":{"a":"1","b":"2","c":"3","d":"4","e":"5","f":"6","g":"7"}}`, "groups"},
		{"group properties", `{"distinct_id":"d","group_properties":{"a":{"x":1,"y":2},"b":{"x":1,"y":2,"z":3}}}`, "group_properties"},
		{"evaluation contexts", `{"distinct_id":"d","evaluation_contexts":["a","b","c","d","e","f","g"]}`, "evaluation_contexts"},
		{"ignored fields are not counted", `{"distinct_id":"d","other":[1,2,3,4,5,6,7,8,9],"person_properties":{"a":1}}`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := DecodeFlagsRequest("application/json", "", "", []byte(c.body), lim)
			if c.field == "" {
				if err != nil || r.DistinctID != "d" {
					t.Fatalf("got %v, %+v", err, r)
				}
				return
			}
			wantLimitError(t, err, 413, CodeTooManyValues, c.field)
		})
	}
}

func TestLimitsStringLength(t *testing.T) {
	lim := Limits{MaxStringBytes: 8}
	cases := []struct {
		name  string
		body  string
		field string // "" when accepted
	}{
		{"eight bytes", `{"distinct_id":"d","person_properties":{"abcdefgh":"12345678","n":12345678}}`, ""},
		{"escapes count once unquoted", `{"distinct_id":"d","person_properties":{"a":"\u00e9\u00e9\u00e9\u00e9"}}`, ""},
		{"value", `{"distinct_id":"d","person_properties":{"a":"123456789"}}`, "person_properties"},
		{"key", `{"distinct_id":"d","person_properties":{"abcdefghi":1}}`, "person_properties"},
		{"nested value", `{"distinct_id":"d","person_properties":{"a":["ok",{"b":"123456789"}]}}`, "person_properties"},
		{"number text", `{"distinct_id":"d","person_properties":{"a":1234567890}}`, "person_properties"},
		{"group key", `{"distinct_id":"d","groups":{"company":"123456789"}}`, "groups"},
		{"group type", `{"distinct_id":"d","group_properties":{"companies1":{}}}`, "group_properties"},
		{"group property", `{"distinct_id":"d","group_properties":{"company":{"plan":"123456789"}}}`, "group_properties"},
		{"flag key", `{"distinct_id":"d","flag_keys_to_evaluate":["123456789"]}`, "flag_keys_to_evaluate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeFlagsRequest("application/json", "", "", []byte(c.body), lim)
			if c.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantLimitError(t, err, 413, CodePropertyTooLarge, c.field)
		})
	}
}

// TestLimitsStopTheDecoding: the request, 150,000 person
// properties in 0.7 MB of gzip, is refused by the defaults, and the
// decoding stops at the first value past the bound: a body that is broken
// after it gets the limit's error, not a syntax error.
func TestLimitsStopTheDecoding(t *testing.T) {
	body := manyProperties(150_000)
	_, err := DecodeFlagsRequest("application/json", "gzip", "", gz(t, body), Limits{MaxDecodedBytes: 4 << 20})
	wantLimitError(t, err, 413, CodeTooManyValues, "person_properties")

	broken := []byte(body[:len(body)/2] + `,"broken":`)
	if _, err := parseUnlimited(broken); err == nil {
		t.Fatal("the broken body decodes without limits")
	}
	_, err = parseFlagsBody(broken, Limits{})
	wantLimitError(t, err, 413, CodeTooManyValues, "person_properties")

	long := `{"distinct_id":"d","person_properties":{"v":"` + strings.Repeat("a", 900_000) + `"`
	_, err = parseFlagsBody([]byte(long), Limits{}) // no closing brace
	wantLimitError(t, err, 413, CodePropertyTooLarge, "person_properties")
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestGzipBombStopsEarly: a body that inflates to 64 MiB is refused once
// MaxDecodedBytes+1 bytes are out, having read a small part of it.
func TestGzipBombStopsEarly(t *testing.T) {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if _, err := w.Write([]byte(`{"distinct_id":"d","person_properties":{"v":"`)); err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for range 64 {
		if _, err := w.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	bomb := b.Bytes()
	cr := &countingReader{r: bytes.NewReader(bomb)}
	_, err := gunzip(cr, 1<<16)
	wantLimitError(t, err, 413, CodeBodyTooLarge, "body")
	if cr.n*10 > len(bomb) {
		t.Errorf("read %d of the %d compressed bytes, want under a tenth", cr.n, len(bomb))
	}
	_, err = DecodeFlagsRequest("application/json", "", "", bomb, Limits{})
	wantLimitError(t, err, 413, CodeBodyTooLarge, "body")
}

func TestDecodeFlagsJSON(t *testing.T) {
	r, err := DecodeFlagsJSON([]byte(`{"token":"t","distinct_id":"","person_properties":{"a":1}}`), Limits{})
	if err != nil || r.DistinctID != "" || r.Token != "t" || len(r.PersonProperties) != 1 {
		t.Fatalf("got %v, %+v", err, r)
	}
	_, err = DecodeFlagsJSON([]byte(manyProperties(20)), Limits{MaxValues: 10})
	wantLimitError(t, err, 413, CodeTooManyValues, "person_properties")
	_, err = DecodeFlagsJSON([]byte(manyProperties(20)), Limits{MaxDecodedBytes: 100})
	wantLimitError(t, err, 413, CodeBodyTooLarge, "body")
}
