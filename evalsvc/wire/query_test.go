package wire

import (
	"net/url"
	"strings"
	"testing"
)

// queryCases are raw queries with the parameters they hold as
// url.ParseQuery reads them.
var queryCases = []struct {
	name, raw string
}{
	{"empty", ""},
	{"one", "v=2"},
	{"several", "v=2&config=true&compression=gzip-js"},
	{"repeated: the first counts", "v=3&v=2&config=false&config=true"},
	{"present without a value", "config&v"},
	{"empty value", "config=&v="},
	{"escaped key and value", "%76=%32&con%66ig=tr%75e&compression=gzip%2Djs"},
	{"plus is a space", "compression=gzip+js&v+=4&v=+2"},
	{"escaped key equal to a plain one, later", "v=1&%76=2"},
	{"a bad escape drops the pair", "v=%zz&v=2&config=%&config=true&compression%g=x"},
	{"a semicolon drops the pair", "v=2;config=true&config=false&v=5"},
	{"empty pairs", "&&v=2&&config=true&"},
	{"equals in the value", "compression=a=b&v==2"},
	{"key with an escaped ampersand", "v%26config=1&config=true"},
	{"unicode", "config=%C3%A9t%C3%A9&v=%E2%82%AC"},
	{"too many parameters", strings.Repeat("x=1&", maxQueryParams) + "v=2"},
	{"just under the bound", strings.Repeat("x=1&", maxQueryParams-2) + "v=2"},
}

// TestQuery: Lookup, Get and Has answer as the url.Values ParseQuery
// returns, for the parameters /flags reads and some it does not.
func TestQuery(t *testing.T) {
	for _, c := range queryCases {
		t.Run(c.name, func(t *testing.T) {
			want, _ := url.ParseQuery(c.raw)
			for _, key := range []string{"v", "config", "compression", "x", "v ", "v&config", "", "missing"} {
				checkQuery(t, c.raw, want, key)
			}
		})
	}
	// A spot check of what the table means, beside the differential one.
	q := Query("v=%zz&%76=3&v=2&config")
	if v, ok := q.Lookup("v"); v != "3" || !ok {
		t.Errorf(`Lookup("v") = %q, %v, want "3", true`, v, ok)
	}
	if v, ok := q.Lookup("config"); v != "" || !ok {
		t.Errorf(`Lookup("config") = %q, %v, want "", true`, v, ok)
	}
	if q.Has("compression") {
		t.Error(`Has("compression") on a query without it`)
	}
}

func checkQuery(t *testing.T, raw string, want url.Values, key string) {
	t.Helper()
	q := Query(raw)
	v, ok := q.Lookup(key)
	_, wantOK := want[key]
	if ok != wantOK || v != want.Get(key) {
		t.Errorf("%q: Lookup(%q) = %q, %v; url.Values has %q, %v", raw, key, v, ok, want.Get(key), wantOK)
	}
	if q.Get(key) != want.Get(key) || q.Has(key) != want.Has(key) {
		t.Errorf("%q: Get/Has(%q) = %q/%v; url.Values %q/%v", raw, key, q.Get(key), q.Has(key), want.Get(key), want.Has(key))
	}
}

// TestQueryAllocs: a query without escapes is read without allocating.
func TestQueryAllocs(t *testing.T) {
	q := Query("v=2&config=true&compression=gzip-js&ip=1")
	n := testing.AllocsPerRun(100, func() {
		if _, cfg := ChooseShape(false, q); !cfg || q.Get("compression") != "gzip-js" {
			t.Fatal("wrong answer")
		}
	})
	if n != 0 {
		t.Errorf("%v allocations, want 0", n)
	}
}

func FuzzQuery(f *testing.F) {
	for _, c := range queryCases[:len(queryCases)-2] {
		f.Add(c.raw, "v")
	}
	f.Fuzz(func(t *testing.T, raw, key string) {
		want, _ := url.ParseQuery(raw)
		checkQuery(t, raw, want, key)
		for k := range want {
			checkQuery(t, raw, want, k)
		}
	})
}
