// Package wire is PostHog's wire format for flag evaluation, as Vexil
// serves it (docs/posthog-compat.md §1-2): decoding /flags and
// /decide request bodies in every encoding the official SDKs send,
// choosing and writing the response shape (v2, legacy, /decide v1 and v2),
// and building the local-evaluation definitions payload with its ETag.
//
// Request bodies and stored person and group properties go through one
// JSON decoder (DecodeProperties for the latter) that accepts what
// encoding/json accepts and builds the same values as its UseNumber
// decoding into an any, with far fewer allocations; fuzzers hold the two
// to the same results.
//
// Decoding a request is bounded (Limits): the body after gzip, the values
// of its properties, groups and key lists, and each key or value; it stops
// at the first value past a bound.
//
// It holds no transport: the evaluation service calls it from its HTTP
// handlers. Errors are *RequestError values carrying the HTTP status and a
// stable code.
package wire
