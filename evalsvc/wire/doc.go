// Package wire is PostHog's wire format for flag evaluation, as Vexil
// serves it (../shared/posthog-compat.md §1-2): decoding /flags and
// /decide request bodies in every encoding the official SDKs send,
// choosing and writing the response shape (v2, legacy, /decide v1 and v2),
// and building the local-evaluation definitions payload with its ETag.
//
// It holds no transport: the evaluation service calls it from its HTTP
// handlers. Errors are *RequestError values carrying the HTTP status and a
// stable code.
package wire
