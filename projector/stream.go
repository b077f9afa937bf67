package projector

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/projector/ingest"
)

// The names of the JetStream objects the projector uses in a namespace:
// Config's defaults for its Namespace.

// StreamName is the ingest stream of ns.
func StreamName(ns namespace.Name) string { return ns.Stream("INGEST") }

// DurableName is the projector's durable consumer of ns.
func DurableName(ns namespace.Name) string { return ns.Consumer("projector") }

// DeadLetterStreamName is the dead-letter stream of ns.
func DeadLetterStreamName(ns namespace.Name) string { return ns.Stream("DEADLETTER") }

// DeadLetterPrefixOf is the dead-letter subject prefix of ns.
func DeadLetterPrefixOf(ns namespace.Name) string { return ns.Subject("deadletter") + "." }

// The names in namespace.Default.
const (
	DefaultStream           = "VEXIL_INGEST"
	DefaultDurable          = "vexil-projector"
	DefaultDeadLetterStream = "VEXIL_DEADLETTER"
	DefaultDeadLetterPrefix = "vexil.deadletter."
)

// IngestMaxAge is how long the ingest stream keeps a message. A store
// snapshot can be restored and replayed from its recorded stream sequence as
// long as it is younger than this; older messages are dropped so the stream
// cannot fill the disk.
const IngestMaxAge = 7 * 24 * time.Hour

// DeadLetterMaxAge is how long dead letters are kept for inspection.
const DeadLetterMaxAge = 30 * 24 * time.Hour

// IngestStreamConfig is the configuration the projector creates the ingest
// stream with when it does not exist: file storage, messages kept for
// IngestMaxAge (limits retention, so snapshots can replay from a recorded
// sequence), a two-minute duplicate window for Nats-Msg-Id. An existing
// stream keeps its own configuration (streams.Ensure, which warns of what
// differs). It captures the ingest subjects of ns.
func IngestStreamConfig(name string, ns namespace.Name) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        name,
		Description: "Vexil ingest: persons, groups and events (docs/ingest.md)",
		Subjects:    ingest.SubjectWildcards(ns),
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      IngestMaxAge,
		Duplicates:  2 * time.Minute,
	}
}

// DeadLetterStreamConfig is the configuration of the dead-letter stream,
// which captures every subject under prefix.
func DeadLetterStreamConfig(name, prefix string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        name,
		Description: "Vexil ingest messages the projector could not apply (docs/ingest.md)",
		Subjects:    []string{prefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      DeadLetterMaxAge,
		Duplicates:  2 * time.Minute,
	}
}
