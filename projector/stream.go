package projector

import (
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/projector/ingest"
)

// Default names of the JetStream objects the projector uses.
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
// differs).
func IngestStreamConfig(name string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        name,
		Description: "Vexil ingest: persons, groups and events (docs/ingest.md)",
		Subjects:    slices.Clone(ingest.SubjectWildcards),
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
