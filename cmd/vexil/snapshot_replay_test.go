package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/store/pebblestore"
	"github.com/vexil-dev/vexil/store/storetest"
)

// TestSnapshotRestoreReplayCommand: vexil snapshot restore --replay
// applies the stream after the snapshot's cut, up to a time ("as of") and
// then to the end.
func TestSnapshotRestoreReplayCommand(t *testing.T) {
	ctx := context.Background()
	ns := natstest.Start(t)
	if _, err := ns.JetStream.CreateStream(ctx, projector.IngestStreamConfig(projector.StreamName(namespace.Default), namespace.Default)); err != nil {
		t.Fatal(err)
	}
	publish := func(from, to int) uint64 {
		var seq uint64
		for i := from; i < to; i++ {
			m := nats.NewMsg("vexil.persons.1")
			m.Header.Set("Content-Type", "application/json")
			m.Data = fmt.Appendf(nil, `{"type":"person_update","team":1,"person_id":"p%d","distinct_ids":["d%d"],"version":1,"$set":{"n":%d}}`, i, i, i)
			ack, err := ns.JetStream.PublishMsg(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			seq = ack.Sequence
		}
		return seq
	}
	lastA := publish(0, 20)
	stream, err := ns.JetStream.Stream(ctx, projector.StreamName(namespace.Default))
	if err != nil {
		t.Fatal(err)
	}
	msgA, err := stream.GetMsg(ctx, lastA)
	if err != nil {
		t.Fatal(err)
	}
	publish(20, 30)

	// A snapshot of an empty store: cut 0.
	empty := t.TempDir()
	seedDataDir(t, empty, 0)
	snap := filepath.Join(t.TempDir(), "s")
	if code, out, errs := vexil(t, "snapshot", "create", "--data-dir", empty, "--out", snap); code != 0 {
		t.Fatalf("create: %s %s", out, errs)
	}
	rows := func(dir string) int {
		st, err := pebblestore.Open(pebblestore.Config{Dir: storeDir(dir)})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		n, err := storetest.Counts(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		return n["row"]
	}
	asOf := t.TempDir()
	code, out, errs := vexil(t, "snapshot", "restore", "--snapshot", snap, "--data-dir", asOf, "--replay", "--nats-url", ns.ClientURL(),
		"--to-time", msgA.Time.UTC().Format(time.RFC3339Nano))
	if code != 0 || !strings.Contains(out, "replayed 20 messages") {
		t.Fatalf("restore as of: %d %s %s", code, out, errs)
	}
	if got := rows(asOf); got != 20 {
		t.Errorf("as of the 20th message: %d rows, want 20", got)
	}
	now := t.TempDir()
	if code, out, errs := vexil(t, "snapshot", "restore", "--snapshot", snap, "--data-dir", now, "--replay", "--nats-url", ns.ClientURL()); code != 0 || !strings.Contains(out, "up to sequence 30") {
		t.Fatalf("restore to now: %d %s %s", code, out, errs)
	}
	if got := rows(now); got != 30 {
		t.Errorf("to now: %d rows, want 30", got)
	}
}
