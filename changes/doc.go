// Package changes owns the change-notice contract: the NATS subjects the
// management API announces committed definition changes on, and the notice
// it publishes there. The evaluation service refreshes its cache from them,
// the precompute worker starts runs from them; both parse them here.
//
// # Subjects
//
// A team's notices go to <namespace>.changes.<team> (Subject), so
// vexil.changes.<team> in namespace.Default, the team a positive decimal
// without sign or leading zeros. Wildcard matches every team's of one
// namespace and none of another's.
// The subject names the team: TeamOf reads it back, and a notice whose
// payload names another team is refused.
//
// Notices about no one team go to InstanceSubject(ns) (vexil.instance.changes in the default namespace),
// outside Wildcard, with team_id 0: KindKeyRevoked says a key (of any kind,
// an instance-wide one too) was revoked, and every node evicts it from its
// key cache. ParseInstance reads them.
//
// # Payload
//
// A Notice is JSON:
//
//	{"team_id":42,"kind":"flag","id":"7","key":"beta","version":3,"op":"updated"}
//
// key is omitted when empty. Readers need only the subject and kind;
// unknown kinds and unknown members are accepted, so the contract can grow.
// A payload is at most MaxSize bytes.
package changes
