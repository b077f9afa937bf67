// Package webhooks delivers the cohort membership signals (package
// signals) to the HTTP endpoints that teams configure through the
// management API.
//
// # Endpoints
//
// An Endpoint (URL, scopes: the signal types it takes, optional cohort
// ids, a generated secret) is stored in a JetStream key-value bucket
// (Names.Endpoints), at most MaxEndpointsPerTeam per team.
//
// # Delivery
//
// The Dispatcher reads the signal stream through its own durable consumer
// and queues one delivery per wanted endpoint in a work-queue stream, one
// subject per endpoint (message id: signal id and endpoint, so a
// redelivered signal is one delivery). Each endpoint's subject is drained
// by its own consumer with at most Config.PerEndpoint deliveries in flight
// and a timeout per attempt: a slow or failing endpoint holds only its own
// queue, and nothing of it is on the path of ingest or evaluation.
//
// A failed attempt (no answer within the timeout, or not 2xx; redirects
// are not followed) is retried after an exponential backoff with jitter;
// after Config.MaxAttempts the delivery becomes a dead letter
// (Names.Dead), which Webhooks.Redeliver queues again. Webhooks.Status
// reports, per endpoint, the counts, the last success and failure, the
// deliveries pending and the dead letters kept.
//
// # Signatures
//
// A delivery is a POST of the signal's JSON with the headers
// Vexil-Webhook-Id (the signal's id, the same on every attempt and
// redelivery: receivers dedupe on it), Vexil-Webhook-Attempt and
// Vexil-Signature: "t=<Unix seconds>,v1=<hex HMAC-SHA256 of
// "<t>.<body>" keyed by the endpoint's secret>". A receiver recomputes the
// HMAC over the raw body, compares in constant time and refuses a
// timestamp more than a few minutes from its clock (Verify, with
// DefaultTolerance), which bounds replays; deduping by id removes them.
package webhooks
