package errcode

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/store"
)

func TestTable(t *testing.T) {
	cases := []struct {
		err      error
		code     Code
		grpc     codes.Code
		httpCode int
	}{
		{fmt.Errorf("update flag 7: %w", catalog.ErrConflict), Conflict, codes.Aborted, http.StatusConflict},
		{fmt.Errorf("get: %w", catalog.ErrNotFound), NotFound, codes.NotFound, http.StatusNotFound},
		{fmt.Errorf("get row: %w", store.ErrNotFound), NotFound, codes.NotFound, http.StatusNotFound},
		{catalog.ErrExists, AlreadyExists, codes.AlreadyExists, http.StatusConflict},
		{catalog.ErrClosed, Unavailable, codes.Unavailable, http.StatusServiceUnavailable},
		{context.Canceled, Canceled, codes.Canceled, 499},
		{&flags.ValidationError{Flag: "f", Path: "filters.groups[0]", Code: flags.CodeRolloutOutOfRange, Reason: "over 100"},
			InvalidDefinition, codes.InvalidArgument, http.StatusBadRequest},
		{New(Unauthenticated, "no key"), Unauthenticated, codes.Unauthenticated, http.StatusUnauthorized},
		{New(PermissionDenied, "no scope"), PermissionDenied, codes.PermissionDenied, http.StatusForbidden},
		{New(TooLarge, "big"), TooLarge, codes.ResourceExhausted, http.StatusRequestEntityTooLarge},
		{New(LimitExceeded, "many"), LimitExceeded, codes.InvalidArgument, http.StatusBadRequest},
		{New(HasDependents, "deps"), HasDependents, codes.FailedPrecondition, http.StatusConflict},
		{New(PrecomputeUnavailable, "no run states"), PrecomputeUnavailable, codes.Unavailable, http.StatusServiceUnavailable},
		{status.Error(codes.ResourceExhausted, "grpc: received message larger than max"), TooLarge, codes.ResourceExhausted, http.StatusRequestEntityTooLarge},
		{errors.New("disk on fire"), Internal, codes.Internal, http.StatusInternalServerError},
	}
	for _, c := range cases {
		t.Run(c.err.Error(), func(t *testing.T) {
			e := From(c.err)
			if e.Code != c.code {
				t.Fatalf("code %s, want %s", e.Code, c.code)
			}
			if got := HTTPStatus(c.err); got != c.httpCode {
				t.Errorf("HTTP %d, want %d", got, c.httpCode)
			}
			st := GRPCStatus(c.err)
			if st.Code() != c.grpc {
				t.Errorf("gRPC %v, want %v", st.Code(), c.grpc)
			}
			// Across a connection the code survives.
			back := FromStatus(st)
			if back.Code != c.code {
				t.Errorf("round trip %s, want %s", back.Code, c.code)
			}
			if c.code == Internal && st.Message() != "internal error" {
				t.Errorf("internal message leaks: %q", st.Message())
			}
		})
	}
}

func TestFieldAndMetaSurvive(t *testing.T) {
	e := Field(Conflict, "version", "stale").With("current_version", "4")
	back := FromStatus(GRPCStatus(fmt.Errorf("wrapped: %w", e)))
	if back.Field != "version" || back.Meta["current_version"] != "4" || back.Message != "stale" {
		t.Fatalf("%+v", back)
	}
	ve := &flags.ValidationError{Flag: "f", Path: "filters.groups[0].properties[0].operator", Code: flags.CodeInvalidOperator, Reason: "unknown"}
	v := FromStatus(GRPCStatus(flags.ValidationErrors{ve}))
	if v.Code != InvalidDefinition || v.Field != "filters.groups[0].properties[0].operator" || v.Meta["engine_code"] != flags.CodeInvalidOperator {
		t.Fatalf("%+v", v)
	}
	if !errors.Is(e, &Error{Code: Conflict}) || errors.Is(e, &Error{Code: NotFound}) {
		t.Error("errors.Is by code")
	}
}

func TestEveryCodeHasARow(t *testing.T) {
	for _, c := range Codes() {
		if c.HTTPStatus() == 0 || (c != Internal && c.GRPCCode() == codes.Internal) {
			t.Errorf("%s: %d %v", c, c.HTTPStatus(), c.GRPCCode())
		}
	}
	if len(Codes()) != len(table) {
		t.Fatal("Codes() misses some")
	}
}

// TestRejected: admission's refusals keep their Retry-After and class
// across a gRPC connection.
func TestRejected(t *testing.T) {
	cases := []struct {
		err   error
		code  Code
		grpc  codes.Code
		http  int
		retry string
		class string
	}{
		{&admission.RejectedError{Err: admission.ErrOverloaded, Class: admission.Management, RetryAfter: 1500 * time.Millisecond},
			Overloaded, codes.ResourceExhausted, http.StatusServiceUnavailable, "2", "management"},
		{fmt.Errorf("wrapped: %w", &admission.RejectedError{Err: admission.ErrQuotaExceeded, Class: admission.Evaluate}),
			RateLimited, codes.ResourceExhausted, http.StatusTooManyRequests, "1", "evaluate"},
	}
	for _, c := range cases {
		st := GRPCStatus(c.err)
		back := FromStatus(st)
		if st.Code() != c.grpc || back.Code != c.code || back.Code.HTTPStatus() != c.http || back.Meta[MetaRetryAfter] != c.retry ||
			back.Meta["class"] != c.class || RetryAfter(c.err) != c.retry {
			t.Errorf("%v: %v %+v, want %v %s retry %s class %s", c.err, st.Code(), back, c.grpc, c.code, c.retry, c.class)
		}
	}
	if RetryAfter(errors.New("x")) != "" || RetryAfter(nil) != "" {
		t.Error("RetryAfter of a non-refusal")
	}
}
