// Package ingestv1 is the generated Go code of the ingest contract
// (ingest.proto): the messages producers publish on NATS JetStream for the
// projector. docs/ingest.md is the contract a producer follows.
package ingestv1
