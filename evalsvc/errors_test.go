package evalsvc

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/status"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/evalsvc/wire"
)

// TestFailuresMatchWire: every failure package wire reports has a row in
// the table, whose HTTP status is the one wire gives (the table, not wire,
// now decides the status).
func TestFailuresMatchWire(t *testing.T) {
	cases := []struct {
		name, contentType, compression, body string
		code                                 string
	}{
		{"missing distinct id", "application/json", "", `{"token":"phc_x"}`, wire.CodeMissingDistinctID},
		{"not JSON", "application/json", "", `{"token":`, wire.CodeBadBody},
		{"content type", "image/png", "", `{}`, wire.CodeBadContentType},
		{"compression", "application/json", "lz4", `{}`, wire.CodeBadCompression},
		{"decompressed too large", "application/json", "gzip", gzipped(t, `{"token":"`+strings.Repeat("x", 200)+`"}`), wire.CodeBodyTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := url.Values{}
			if c.compression != "" {
				q.Set("compression", c.compression)
			}
			_, err := wire.DecodeFlagsRequest(c.contentType, "", wire.Query(q.Encode()), []byte(c.body), wire.Limits{MaxDecodedBytes: 100})
			re, ok := errors.AsType[*wire.RequestError](err)
			if !ok || re.Code != c.code {
				t.Fatalf("decode: %v, want a request error %s", err, c.code)
			}
			f, ok := failures[re.Code]
			if !ok {
				t.Fatalf("%s has no row in the table", re.Code)
			}
			if f.code.HTTPStatus() != re.Status {
				t.Errorf("%s: the table answers %d, wire says %d", re.Code, f.code.HTTPStatus(), re.Status)
			}
			if e := classify(fmt.Errorf("decoding: %w", err)); e.Meta[metaPostHogCode] != c.code || e.Field != re.Field || e.Message != re.Message {
				t.Errorf("classify: %+v", e)
			}
		})
	}
}

// TestFailuresAlikeOnBothTransports: each sentinel answers the same
// status, PostHog code and field over HTTP (writeFailure) and gRPC
// (rpcDone), and every row of the table is complete.
func TestFailuresAlikeOnBothTransports(t *testing.T) {
	s := newService(t, Config{Store: failingStore{}, Catalog: &fakeCatalog{}})
	cases := []struct {
		err     error
		status  int
		posthog string
		field   string
	}{
		{ErrOverloaded, 503, codeOverloaded, ""},
		{&admission.RejectedError{Err: admission.ErrQuotaExceeded, Class: admission.Poll, RetryAfter: 3 * time.Second}, 429, codeThrottled, ""},
		{ErrMissingToken, 401, wire.CodeMissingToken, "token"},
		{fmt.Errorf("%w: %w", ErrUnknownKey, errTeamGone), 401, codeInvalidToken, "token"},
		{ErrWrongKeyKind, 401, codeInvalidToken, "token"},
		{fmt.Errorf("%w: %w", ErrCatalogUnavailable, context.DeadlineExceeded), 503, codeCatalogUnavailable, ""},
		{fail(codeTokenRequired, "token", ""), 400, codeTokenRequired, "token"},
		{fail(codeNotFound, "", ""), 404, codeNotFound, ""},
		{tooLarge(10), 413, wire.CodeBodyTooLarge, "body"},
	}
	for _, c := range cases {
		t.Run(c.posthog, func(t *testing.T) {
			w := httptest.NewRecorder()
			writeFailure(w, c.err)
			var body apiError
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if w.Code != c.status || body.Code != c.posthog || body.Detail == "" || body.Type != failures[c.posthog].typ {
				t.Errorf("HTTP: %d %s, want %d %s", w.Code, w.Body, c.status, c.posthog)
			}
			if attr, _ := body.Attr.(string); attr != c.field {
				t.Errorf("HTTP attr %v, want %q", body.Attr, c.field)
			}
			if _, refused := errors.AsType[*admission.RejectedError](c.err); refused != (w.Header().Get("Retry-After") != "") {
				t.Errorf("Retry-After %q on a refusal: %v", w.Header().Get("Retry-After"), refused)
			}
			st := status.Convert(s.rpcDone("test", time.Time{}, c.err))
			e := errcode.FromStatus(st)
			if e.Code.HTTPStatus() != c.status || e.Meta[metaPostHogCode] != c.posthog || e.Field != c.field || e.Message != body.Detail {
				t.Errorf("gRPC: %v %+v, want HTTP %d %s field %q message %q", st.Code(), e, c.status, c.posthog, c.field, body.Detail)
			}
		})
	}
	for code, f := range failures {
		if f.typ == "" || f.code.HTTPStatus() == 500 {
			t.Errorf("%s: incomplete row %+v", code, f)
		}
	}
	// Anything else is internal, and says no more.
	w := httptest.NewRecorder()
	writeFailure(w, errors.New("disk on fire"))
	if w.Code != 500 || strings.Contains(w.Body.String(), "fire") {
		t.Errorf("an unexpected error: %d %s", w.Code, w.Body)
	}
}

func gzipped(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
