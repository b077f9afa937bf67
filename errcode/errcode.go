// Package errcode holds Vexil's stable error codes and the one table that
// maps them to gRPC codes and HTTP statuses, for every surface (the
// management API, evaluation, MCP). Clients and agents branch on the code,
// never on the message.
//
// Domain errors (catalog, store and engine sentinels) become an *Error
// through From; GRPCStatus turns any error into a gRPC status carrying a
// google.rpc.ErrorInfo detail (reason = the code, metadata = the field path
// and other facts) and, with a field, a google.rpc.BadRequest; FromStatus
// reads it back on the other side of a connection, so the HTTP gateway
// answers with the same status a direct caller would see.
package errcode

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/store"
)

// Code is a stable error code.
type Code string

// The codes. Each has one row in the table below.
const (
	// InvalidArgument: a request field is malformed or missing.
	InvalidArgument Code = "invalid_argument"
	// InvalidDefinition: a flag or cohort definition does not validate;
	// Field is the path, Meta["engine_code"] the engine's code.
	InvalidDefinition Code = "invalid_definition"
	// Unauthenticated: no key, an unknown key or a revoked key.
	Unauthenticated Code = "unauthenticated"
	// PermissionDenied: the key lacks the scope.
	PermissionDenied Code = "permission_denied"
	// NotFound: no such resource, or one the key may not see.
	NotFound Code = "not_found"
	// Conflict: the expected version is not the current one;
	// Meta["current_version"] holds the current one.
	Conflict Code = "version_conflict"
	// AlreadyExists: a unique name (a flag key) is taken.
	AlreadyExists Code = "already_exists"
	// HasDependents: other flags depend on the flag; Meta["dependents"]
	// lists their keys, comma-separated.
	HasDependents Code = "has_dependents"
	// FailedPrecondition: the resource is not in a state that allows the
	// operation (cancelling a finished job).
	FailedPrecondition Code = "failed_precondition"
	// TooLarge: the request body is over the limit.
	TooLarge Code = "request_too_large"
	// LimitExceeded: a list in the request is over its limit (page size,
	// conditions, overrides, members).
	LimitExceeded Code = "limit_exceeded"
	// Canceled: the caller went away.
	Canceled Code = "canceled"
	// DeadlineExceeded: the request ran out of time.
	DeadlineExceeded Code = "deadline_exceeded"
	// Unavailable: a backend is closed or unreachable; retry later.
	Unavailable Code = "unavailable"
	// PrecomputeUnavailable: the server cannot read precompute run states
	// (it has no NATS connection, or reading failed); retry later or ask
	// another node.
	PrecomputeUnavailable Code = "precompute_unavailable"
	// Overloaded: the node is at its concurrency limit for the request's
	// class; the request was refused before any work. Meta["retry_after"]
	// is the seconds to wait (HTTP: a Retry-After header).
	Overloaded Code = "overloaded"
	// RateLimited: the team is over its request quota; Meta["retry_after"]
	// as for Overloaded.
	RateLimited Code = "rate_limited"
	// Unimplemented: the method or route does not exist.
	Unimplemented Code = "unimplemented"
	// Internal: a bug or an unexpected backend failure; the message says no
	// more than that.
	Internal Code = "internal"
)

// MetaRetryAfter is the Meta key of the seconds a refused client should
// wait; HTTP surfaces send it as the Retry-After header.
const MetaRetryAfter = "retry_after"

// Domain is the ErrorInfo domain of Vexil's errors.
const Domain = "vexil.dev"

type mapping struct {
	grpc codes.Code
	http int
}

// table is THE mapping of codes to gRPC codes and HTTP statuses.
var table = map[Code]mapping{
	InvalidArgument:       {codes.InvalidArgument, http.StatusBadRequest},
	InvalidDefinition:     {codes.InvalidArgument, http.StatusBadRequest},
	Unauthenticated:       {codes.Unauthenticated, http.StatusUnauthorized},
	PermissionDenied:      {codes.PermissionDenied, http.StatusForbidden},
	NotFound:              {codes.NotFound, http.StatusNotFound},
	Conflict:              {codes.Aborted, http.StatusConflict},
	AlreadyExists:         {codes.AlreadyExists, http.StatusConflict},
	HasDependents:         {codes.FailedPrecondition, http.StatusConflict},
	FailedPrecondition:    {codes.FailedPrecondition, http.StatusConflict},
	TooLarge:              {codes.ResourceExhausted, http.StatusRequestEntityTooLarge},
	LimitExceeded:         {codes.InvalidArgument, http.StatusBadRequest},
	Canceled:              {codes.Canceled, 499},
	DeadlineExceeded:      {codes.DeadlineExceeded, http.StatusGatewayTimeout},
	Unavailable:           {codes.Unavailable, http.StatusServiceUnavailable},
	PrecomputeUnavailable: {codes.Unavailable, http.StatusServiceUnavailable},
	Overloaded:            {codes.ResourceExhausted, http.StatusServiceUnavailable},
	RateLimited:           {codes.ResourceExhausted, http.StatusTooManyRequests},
	Unimplemented:         {codes.Unimplemented, http.StatusNotImplemented},
	Internal:              {codes.Internal, http.StatusInternalServerError},
}

// byGRPC maps a bare gRPC code (an error that did not come from Vexil, such
// as grpc-go's own "message too large") to a Code.
var byGRPC = map[codes.Code]Code{
	codes.InvalidArgument:    InvalidArgument,
	codes.Unauthenticated:    Unauthenticated,
	codes.PermissionDenied:   PermissionDenied,
	codes.NotFound:           NotFound,
	codes.Aborted:            Conflict,
	codes.AlreadyExists:      AlreadyExists,
	codes.FailedPrecondition: FailedPrecondition,
	codes.ResourceExhausted:  TooLarge,
	codes.OutOfRange:         InvalidArgument,
	codes.Canceled:           Canceled,
	codes.DeadlineExceeded:   DeadlineExceeded,
	codes.Unavailable:        Unavailable,
	codes.Unimplemented:      Unimplemented,
}

// sentinels maps domain sentinel errors to codes, first match wins.
var sentinels = []struct {
	err  error
	code Code
}{
	{catalog.ErrNotFound, NotFound},
	{catalog.ErrConflict, Conflict},
	{catalog.ErrExists, AlreadyExists},
	{catalog.ErrInvalid, InvalidArgument},
	{catalog.ErrClosed, Unavailable},
	{store.ErrNotFound, NotFound},
	{store.ErrInvalid, InvalidArgument},
	{store.ErrClosed, Unavailable},
	{context.Canceled, Canceled},
	{context.DeadlineExceeded, DeadlineExceeded},
}

// Error is an error with a stable code.
type Error struct {
	Code Code
	// Message says what is wrong, for a person.
	Message string
	// Field is the request field path at fault ("flag.filters.groups[0]
	// .rollout_percentage"), empty when none.
	Field string
	// Meta holds further machine-readable facts (current_version,
	// dependents, engine_code).
	Meta map[string]string
	// Err is the cause, kept for errors.Is/As and logs; never sent.
	Err error
}

// New returns an *Error with a formatted message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Field returns an *Error about one request field.
func Field(code Code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// With returns a copy of e with one more Meta entry.
func (e *Error) With(key, value string) *Error {
	c := *e
	c.Meta = maps.Clone(e.Meta)
	if c.Meta == nil {
		c.Meta = map[string]string{}
	}
	c.Meta[key] = value
	return &c
}

// Wrap returns a copy of e with cause err.
func (e *Error) Wrap(err error) *Error {
	c := *e
	c.Err = err
	return &c
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, &Error{Code: c}) match any *Error with code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Message == "" && t.Field == ""
}

// From classifies err: an *Error in its chain is returned as is; a
// flags.ValidationError becomes InvalidDefinition with its path; a domain
// sentinel gets its code; a gRPC status keeps its code; anything else is
// Internal, with a message that reveals nothing. From(nil) is nil.
func From(err error) *Error {
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	if ve, ok := errors.AsType[*flags.ValidationError](err); ok {
		return FromValidation(ve, "")
	}
	if re, ok := errors.AsType[*admission.RejectedError](err); ok {
		return FromRejected(re)
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return &Error{Code: s.code, Message: sentinelMessage(s.code), Err: err}
		}
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return FromStatus(st)
	}
	return &Error{Code: Internal, Message: "internal error", Err: err}
}

func sentinelMessage(c Code) string {
	switch c {
	case NotFound:
		return "not found"
	case Conflict:
		return "the record was changed by someone else: read it again and retry"
	case AlreadyExists:
		return "already exists"
	case InvalidArgument:
		return "invalid argument"
	case Canceled:
		return "canceled"
	case DeadlineExceeded:
		return "deadline exceeded"
	}
	return "unavailable: retry later"
}

// FromValidation turns an engine validation error into InvalidDefinition,
// its path prefixed with prefix ("flag." gives "flag.filters.groups[0]").
func FromValidation(ve *flags.ValidationError, prefix string) *Error {
	path := ve.Path
	if prefix != "" {
		path = prefix + path
	}
	e := &Error{Code: InvalidDefinition, Field: path, Message: ve.Reason, Err: ve,
		Meta: map[string]string{"engine_code": ve.Code}}
	if ve.Flag != "" {
		e.Meta["flag"] = ve.Flag
	}
	return e
}

// FromRejected turns an admission refusal into Overloaded or RateLimited,
// with Meta retry_after (seconds) and class.
func FromRejected(re *admission.RejectedError) *Error {
	e := &Error{Code: Overloaded, Message: "the server is overloaded: retry after the Retry-After delay", Err: re,
		Meta: map[string]string{MetaRetryAfter: re.RetryAfterSeconds(), "class": re.Class.String()}}
	if errors.Is(re, admission.ErrQuotaExceeded) {
		e.Code, e.Message = RateLimited, "the project is over its request quota: retry after the Retry-After delay"
	}
	return e
}

// RetryAfter returns the Retry-After header value of err ("" for none).
func RetryAfter(err error) string {
	if e := From(err); e != nil {
		return e.Meta[MetaRetryAfter]
	}
	return ""
}

// GRPCCode returns the gRPC code of a Code (Internal for an unknown one).
func (c Code) GRPCCode() codes.Code {
	if m, ok := table[c]; ok {
		return m.grpc
	}
	return codes.Internal
}

// HTTPStatus returns the HTTP status of a Code (500 for an unknown one).
func (c Code) HTTPStatus() int {
	if m, ok := table[c]; ok {
		return m.http
	}
	return http.StatusInternalServerError
}

// HTTPStatus returns the HTTP status of any error (200 for nil).
func HTTPStatus(err error) int {
	if err == nil {
		return http.StatusOK
	}
	return From(err).Code.HTTPStatus()
}

// GRPCStatus returns the gRPC status of any error, with an ErrorInfo
// detail (and a BadRequest one when a field is at fault). nil gives OK.
func GRPCStatus(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	e := From(err)
	st := status.New(e.Code.GRPCCode(), e.Message)
	md := maps.Clone(e.Meta)
	if md == nil {
		md = map[string]string{}
	}
	if e.Field != "" {
		md["field"] = e.Field
	}
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: string(e.Code), Domain: Domain, Metadata: md}}
	if e.Field != "" {
		details = append(details, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: e.Field, Description: e.Message, Reason: string(e.Code)},
		}})
	}
	if withDetails, derr := st.WithDetails(details...); derr == nil {
		st = withDetails
	}
	return st
}

// FromStatus reads an *Error back from a gRPC status: the ErrorInfo's
// reason and metadata when it carries one from Vexil, else the code that
// corresponds to the gRPC code.
func FromStatus(st *status.Status) *Error {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == Domain {
			e := &Error{Code: Code(info.GetReason()), Message: st.Message()}
			if _, known := table[e.Code]; !known {
				e.Code = Internal
			}
			meta := maps.Clone(info.GetMetadata())
			if f, ok := meta["field"]; ok {
				e.Field = f
				delete(meta, "field")
			}
			if len(meta) > 0 {
				e.Meta = meta
			}
			return e
		}
	}
	c, ok := byGRPC[st.Code()]
	if !ok {
		c = Internal
	}
	return &Error{Code: c, Message: st.Message()}
}

// Codes returns every code, sorted (for documentation and tests).
func Codes() []Code {
	return slices.Sorted(maps.Keys(table))
}
