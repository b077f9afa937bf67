package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/ingest"
	"github.com/vexil-dev/vexil/streams"
)

func init() {
	register(&command{
		name:    "publish",
		summary: "publish a JSON-lines file of ingest messages to NATS JetStream",
		run:     runPublish,
	})
}

// maxPublishLine bounds one line of the input: the largest payload the
// ingest contract accepts, plus room.
const maxPublishLine = ingest.DefaultMaxMessageBytes + 1024

func runPublish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("publish", stderr)
	natsURL := fs.String("nats-url", nats.DefaultURL, "NATS server URL")
	file := fs.String("file", "", `JSON-lines file of ingest messages (docs/ingest.md); "-" reads stdin`)
	encoding := fs.String("encoding", "json", `payload encoding sent: "json" (each line as written) or "protobuf"`)
	stream := fs.String("stream", "", "ingest stream, created with the projector's defaults if missing (empty: the namespace's, VEXIL_INGEST in the default namespace)")
	nsFlag := fs.String("namespace", string(namespace.Default), "namespace of the environment on NATS (its subjects and ingest stream: docs/deploy.md)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the JetStream acks")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: vexil publish --file FILE [--nats-url URL] [--encoding json|protobuf]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Sends each line of FILE, one ingest message in the JSON shape of docs/ingest.md,")
		fmt.Fprintln(stderr, "to its subject (<namespace>.persons.<team>, ...) and waits for the JetStream acks.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return &usageError{msg: "--file is required"}
	}
	if fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	ns, err := namespace.Parse(*nsFlag)
	if err != nil {
		return &usageError{msg: fmt.Sprintf("--namespace: %v", err)}
	}
	if *stream == "" {
		*stream = projector.StreamName(ns)
	}
	var enc ingest.Encoding
	switch *encoding {
	case "json":
		enc = ingest.JSON
	case "protobuf":
		enc = ingest.Protobuf
	default:
		return &usageError{msg: fmt.Sprintf("--encoding %q: want json or protobuf", *encoding)}
	}

	in := io.Reader(os.Stdin)
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}

	nc, err := nats.Connect(*natsURL, nats.Name("vexil publish"))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", *natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(256))
	if err != nil {
		return err
	}
	if _, err := streams.Ensure(ctx, js, projector.IngestStreamConfig(*stream, ns), slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))); err != nil {
		return err
	}
	p := publisher{js: js, ns: ns, enc: enc, timeout: *timeout}
	n, err := p.publishLines(ctx, in)
	if err != nil {
		if n > 0 {
			return fmt.Errorf("%w (%d messages before it were published)", err, n)
		}
		return err
	}
	fmt.Fprintf(stdout, "published %d messages\n", n)
	return nil
}

// publisher sends ingest messages read as JSON lines.
type publisher struct {
	js      jetstream.JetStream
	ns      namespace.Name
	enc     ingest.Encoding
	timeout time.Duration
}

// pending is a publish awaiting its ack, with the line it came from.
type pending struct {
	line int
	ack  jetstream.PubAckFuture
}

// publishLines publishes every non-blank line of in and waits for the acks.
// It stops at the first line it cannot accept; it returns how many
// messages were published and acknowledged.
func (p *publisher) publishLines(ctx context.Context, in io.Reader) (int, error) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), maxPublishLine)
	var inflight []pending
	acked := 0
	// drain waits for every in-flight publish, in order.
	drain := func() error {
		timer := time.NewTimer(p.timeout)
		defer timer.Stop()
		for len(inflight) > 0 {
			f := inflight[0]
			select {
			case <-f.ack.Ok():
			case err := <-f.ack.Err():
				return fmt.Errorf("line %d: publish to %s: %w", f.line, f.ack.Msg().Subject, err)
			case <-timer.C:
				return fmt.Errorf("line %d: no JetStream ack after %v", f.line, p.timeout)
			case <-ctx.Done():
				return ctx.Err()
			}
			inflight = inflight[1:]
			acked++
		}
		return nil
	}
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		env, err := ingest.DecodePayload(ingest.JSON, raw, ingest.Limits{})
		if err != nil {
			if derr := drain(); derr != nil {
				return acked, derr
			}
			return acked, fmt.Errorf("line %d: %w", line, err)
		}
		subject, err := ingest.SubjectOf(p.ns, env)
		if err != nil {
			return acked, fmt.Errorf("line %d: %w", line, err)
		}
		msg := nats.NewMsg(subject)
		switch p.enc {
		case ingest.JSON:
			msg.Header.Set(ingest.HeaderContentType, ingest.ContentTypeJSON)
			msg.Data = bytes.Clone(raw)
		case ingest.Protobuf:
			msg.Header.Set(ingest.HeaderContentType, ingest.ContentTypeProtobuf)
			if msg.Data, err = proto.Marshal(env); err != nil {
				return acked, fmt.Errorf("line %d: %w", line, err)
			}
		}
		f, err := p.js.PublishMsgAsync(msg)
		if err != nil {
			return acked, fmt.Errorf("line %d: publish to %s: %w", line, subject, err)
		}
		inflight = append(inflight, pending{line: line, ack: f})
		if len(inflight) >= 256 {
			if err := drain(); err != nil {
				return acked, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line longer than %d bytes", maxPublishLine)
		}
		if derr := drain(); derr != nil {
			return acked, derr
		}
		return acked, fmt.Errorf("line %d: %w", line+1, err)
	}
	return acked, drain()
}
