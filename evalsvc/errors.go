package evalsvc

import (
	"errors"
	"strconv"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/evalsvc/wire"
)

// Errors of the authentication and admission steps.
var (
	ErrMissingToken = errors.New("evalsvc: no project token")
	ErrUnknownKey   = errors.New("evalsvc: unknown or revoked key")
	ErrWrongKeyKind = errors.New("evalsvc: key of the wrong kind")
	// ErrOverloaded: admission refused the request (the node is at its
	// limit for the request's class).
	ErrOverloaded = admission.ErrOverloaded
	// ErrCatalogUnavailable wraps a failure to read keys or definitions.
	ErrCatalogUnavailable = errors.New("evalsvc: catalog unavailable")
)

// PostHog codes of the evaluation endpoints' failures that package wire
// does not name (it names the request decoding ones).
const (
	codeOverloaded          = "overloaded"
	codeMemoryPressure      = "memory_pressure"
	codeThrottled           = "throttled"
	typeThrottled           = "throttled_error"
	codeInvalidToken        = "invalid_token"
	codeCatalogUnavailable  = "catalog_unavailable"
	codeNotAuthenticated    = "not_authenticated"
	codeAuthFailed          = "authentication_failed"
	codePermissionDenied    = "permission_denied"
	codeTokenRequired       = "token_required"
	codeNotFound            = "not_found"
	metaPostHogCode         = "posthog_code"
	typeAuthenticationError = "authentication_error"
	typeValidationError     = "validation_error"
	typeServerError         = "server_error"
	typeInvalidRequest      = "invalid_request"
)

// failure is one way an evaluation request fails, alike on every
// transport: /flags and /decide, the local-evaluation definitions, gRPC
// Evaluate and WatchDefinitions, POST /api/evaluate.
type failure struct {
	// code gives the gRPC code and the HTTP status (errcode's table).
	code errcode.Code
	// typ is PostHog's error type in HTTP bodies.
	typ string
	// message is for a person; failures whose message depends on the
	// request (the decoding ones) leave it empty.
	message string
}

// failures is the one table of the evaluation endpoints' errors, by the
// stable code PostHog's SDKs see: HTTP bodies carry it as "code", gRPC
// statuses as ErrorInfo metadata "posthog_code" (the reason is errcode's
// code). Both transports answer a failure through this table only.
var failures = map[string]failure{
	codeOverloaded:             {errcode.Overloaded, typeServerError, "too many requests in flight; retry after the Retry-After delay"},
	codeThrottled:              {errcode.RateLimited, typeThrottled, "the project is over its request quota; retry after the Retry-After delay"},
	codeMemoryPressure:         {errcode.Unavailable, typeServerError, "the server is short of memory; retry shortly"},
	wire.CodeMissingToken:      {errcode.Unauthenticated, typeAuthenticationError, "API key is missing: send the project token as token or api_key (gRPC: the token field or authorization: Bearer phc_...)"},
	codeInvalidToken:           {errcode.Unauthenticated, typeAuthenticationError, "the project token is not valid"},
	codeCatalogUnavailable:     {errcode.Unavailable, typeServerError, "cannot check the key or load the project's flags now; retry shortly"},
	wire.CodeMissingDistinctID: {errcode.InvalidArgument, typeValidationError, ""},
	wire.CodeBadBody:           {errcode.InvalidArgument, typeValidationError, ""},
	wire.CodeBadContentType:    {errcode.InvalidArgument, typeValidationError, ""},
	wire.CodeBadCompression:    {errcode.InvalidArgument, typeValidationError, ""},
	wire.CodeBodyTooLarge:      {errcode.TooLarge, typeValidationError, ""},
	wire.CodeTooManyValues:     {errcode.TooLarge, typeValidationError, ""},
	wire.CodePropertyTooLarge:  {errcode.TooLarge, typeValidationError, ""},
	// The local-evaluation definitions (GET /flags/definitions,
	// WatchDefinitions).
	codeNotAuthenticated: {errcode.Unauthenticated, typeAuthenticationError, "no key: send \"Authorization: Bearer <secure or personal API key>\""},
	codeAuthFailed:       {errcode.Unauthenticated, typeAuthenticationError, "invalid API key"},
	codePermissionDenied: {errcode.PermissionDenied, typeAuthenticationError, ""},
	codeTokenRequired:    {errcode.InvalidArgument, typeAuthenticationError, "pass the project token: the key reaches several projects"},
	codeNotFound:         {errcode.NotFound, typeInvalidRequest, "no such project"},
}

// sentinelCodes classifies the service's sentinel errors, first match
// wins.
var sentinelCodes = []struct {
	err         error
	code, field string
}{
	{ErrOverloaded, codeOverloaded, ""},
	{ErrMemoryPressure, codeMemoryPressure, ""},
	{admission.ErrQuotaExceeded, codeThrottled, ""},
	{ErrMissingToken, wire.CodeMissingToken, "token"},
	{ErrUnknownKey, codeInvalidToken, "token"},
	{ErrWrongKeyKind, codeInvalidToken, "token"},
	{ErrCatalogUnavailable, codeCatalogUnavailable, ""},
}

// fail returns the error of one row of failures about field (may be
// empty), with message or, when it is empty, the row's own.
func fail(code, field, message string) *errcode.Error {
	f, ok := failures[code]
	if !ok {
		return errcode.New(errcode.Internal, "internal error").With(metaPostHogCode, code)
	}
	if message == "" {
		message = f.message
	}
	return (&errcode.Error{Code: f.code, Field: field, Message: message}).With(metaPostHogCode, code)
}

// tooLarge is the failure of a body over limit bytes.
func tooLarge(limit int) *errcode.Error {
	return fail(wire.CodeBodyTooLarge, "body", "the request body is over "+strconv.Itoa(limit)+" bytes").With("limit", strconv.Itoa(limit))
}

// classify turns any error of an evaluation request into its row of
// failures: an *errcode.Error is kept, a wire.RequestError and the
// service's sentinels are looked up, anything else is classified by
// errcode.From.
func classify(err error) *errcode.Error {
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[*errcode.Error](err); ok {
		return e
	}
	if re, ok := errors.AsType[*wire.RequestError](err); ok {
		return fail(re.Code, re.Field, re.Message).Wrap(err)
	}
	for _, s := range sentinelCodes {
		if errors.Is(err, s.err) {
			e := fail(s.code, s.field, "").Wrap(err)
			if re, ok := errors.AsType[*admission.RejectedError](err); ok {
				e = e.With(errcode.MetaRetryAfter, re.RetryAfterSeconds()).With("class", re.Class.String())
			}
			return e
		}
	}
	return errcode.From(err)
}

// postHogType returns PostHog's error type and code of a classified error.
func postHogType(e *errcode.Error) (typ, code string) {
	code = e.Meta[metaPostHogCode]
	if f, ok := failures[code]; ok {
		return f.typ, code
	}
	if code == "" {
		code = string(e.Code)
	}
	switch e.Code.HTTPStatus() / 100 {
	case 4:
		return typeInvalidRequest, code
	}
	return typeServerError, code
}
