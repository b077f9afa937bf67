// Package capture serves PostHog's capture endpoints (/e/, /i/v0/e/,
// /batch/, /capture/, /track/, /engage/) and turns what PostHog's SDKs send
// into Vexil ingest messages (docs/ingest.md) on NATS JetStream, so an app
// already using posthog-js, posthog-node or posthog-python feeds Vexil's
// persons and real-time cohorts with no separate producer.
//
// # What becomes what
//
//   - every event is published as an event (counted by the projector when
//     a behavioural cohort tracks it);
//   - an event's $set, $set_once and $unset (in its properties or at its
//     top level, as posthog-js puts them) become a person_update of the
//     event's person;
//   - $identify and $create_alias (and $merge_dangerously) become a
//     person_merge that puts both distinct ids on one person;
//   - $groupidentify becomes a group_update ($group_set), for a group type
//     the team has named (an unknown type is not created here: the
//     management API names group types);
//   - an event of a distinct id that has no person yet also creates one
//     (as PostHog does, unless $process_person_profile is false), because
//     the projector counts events only for distinct ids with a person.
//
// The person of a distinct id is the one the store maps it to; a distinct
// id without a mapping gets a person id derived from the team and the
// distinct id (a name-based UUID), so two requests about the same new id
// agree without coordination.
//
// # Versions
//
// The projector keeps the write with the highest version ($set_once: the
// lowest). A message's version is the event's time in microseconds, plus
// its index in the request (0..999) so that writes of one batch in the same
// millisecond keep their order. The event's time is the client's clock
// corrected for skew as PostHog does it (the server's now + timestamp -
// sent_at, or now - offset), and then never later than the server's now: a
// client whose clock runs ahead cannot pin a property beyond later writes.
// A client clock is still the order of its own writes, which is what a
// person's properties need (posthog-js sends an identify and the events
// after it in one batch).
//
// # Bounds and failures
//
// Like /flags: the body is bounded before and after decompression, the
// events of one request and each message (ingest.Limits) are bounded, and
// each team has an event rate (429 rate_limited with Retry-After). The
// endpoints have their own concurrency limit, never the evaluation's: past
// it a request is refused at once (503 overloaded). A request is answered
// once every message is acknowledged by JetStream (the durability point).
// When NATS is down or the ack does not come in time the answer is 503
// unavailable with Retry-After, which PostHog's SDKs retry; a retried
// request publishes the same message ids (from the event uuids), which
// JetStream drops inside its duplicate window, and later duplicates are
// harmless (events count once per uuid, versions make updates idempotent).
package capture
