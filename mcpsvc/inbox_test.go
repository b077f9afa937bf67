package mcpsvc

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/polltest"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/memstore"
)

// runInbox runs in.Run until the test ends.
func runInbox(t testing.TB, in *Inbox) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestInboxCopiesIntoStore: signals published by others (a rollout
// signal on core NATS) reach the store through Run, keyed by stream
// sequence; a node sharing the store shares its consumer and writes the
// same rows, a node with its own store copies the whole stream into it;
// a read-only inbox (no JetStream) answers from the store and adds nothing.
func TestInboxCopiesIntoStore(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	open := func(st store.InboxStore, id string, withJS bool) *Inbox {
		cfg := InboxConfig{Store: st, Namespace: namespace.Default, StoreID: id, Logger: slog.New(slog.DiscardHandler)}
		if withJS {
			cfg.JetStream = ns.JetStream
		}
		in, err := OpenInbox(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	shared, own := memstore.New(), memstore.New()
	a, b := open(shared, "keyspace k", true), open(shared, "keyspace k", true)
	runInbox(t, a)
	runInbox(t, b)
	for i := range 5 {
		data, _ := json.Marshal(admin.RolloutSignal{Actor: "ann", Op: "updated", Kind: "flag", Key: fmt.Sprintf("f%d", i), Version: int64(i + 1)})
		if err := ns.Conn.Publish(namespace.Default.Subject("signals", "7", "rollout"), data); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Append(ctx, Finding{Team: 8, Kind: "stale_flag", Summary: "old is stale"}); err != nil {
		t.Fatal(err)
	}
	polltest.Eventually(t, time.Minute, func() error {
		if n, err := shared.CountSignals(ctx, 7, 0); n != 5 || err != nil {
			return fmt.Errorf("team 7 in the shared store: %d %v", n, err)
		}
		return nil
	})
	// List waits for the copy: one answer, every signal, in cursor order.
	entries, more, err := b.List(ctx, 7, 0, 0)
	if err != nil || more || len(entries) != 5 {
		t.Fatalf("list: %v %v %v", entries, more, err)
	}
	for i, e := range entries {
		if e.Kind != KindRollout || e.Summary != fmt.Sprintf("ann updated flag f%d (version %d)", i, i+1) || i > 0 && e.Cursor <= entries[i-1].Cursor {
			t.Fatalf("entry %d: %+v", i, e)
		}
	}
	// The finding Append wrote itself and Run copied again is one row.
	if got, _, _ := shared.ListSignals(ctx, 8, 0, 0); len(got) != 1 {
		t.Fatalf("team 8: %+v", got)
	}

	c := open(own, "pebble host:/other", true)
	runInbox(t, c)
	polltest.Eventually(t, time.Minute, func() error {
		if got, _, err := c.List(ctx, 7, 0, 0); err != nil || fmt.Sprint(got) != fmt.Sprint(entries) {
			return fmt.Errorf("another store's copy: %v %v, want %v", got, err, entries)
		}
		return nil
	})

	ro := open(shared, "", false)
	if !ro.ReadOnly() || a.ReadOnly() {
		t.Fatal("ReadOnly")
	}
	if got, _, err := ro.List(ctx, 7, 0, 0); err != nil || fmt.Sprint(got) != fmt.Sprint(entries) {
		t.Fatalf("read only: %v %v", got, err)
	}
	if err := ro.Append(ctx, Finding{Team: 7, Kind: "stale_flag", Summary: "s"}); errcode.From(err).Code != errcode.Unavailable {
		t.Fatalf("Append on a read-only inbox: %v", err)
	}
}

// TestInboxAckForwardOnly: an acknowledgement never moves the position
// back, whichever node makes it; pending counts what follows it.
func TestInboxAckForwardOnly(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	in, err := OpenInbox(ctx, InboxConfig{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	var sigs []store.Signal
	for seq := uint64(1); seq <= 6; seq++ {
		sigs = append(sigs, store.Signal{Team: 3, Seq: seq, Subject: "vexil.signals.3.finding", At: time.Now().UnixNano(),
			Data: []byte(`{"kind":"stale_flag","summary":"s"}`), ExpiresAt: time.Now().Add(InboxMaxAge).Unix()})
	}
	if err := st.PutSignals(ctx, sigs); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct{ ack, want, pending uint64 }{{4, 4, 2}, {2, 4, 2}, {6, 6, 0}} {
		got, err := in.Ack(ctx, 3, step.ack)
		if err != nil || got != step.want {
			t.Fatalf("Ack(%d): %d %v, want %d", step.ack, got, err, step.want)
		}
		if n, err := in.Pending(ctx, 3); n != step.pending || err != nil {
			t.Fatalf("pending after Ack(%d): %d %v, want %d", step.ack, n, err, step.pending)
		}
	}
	if _, err := OpenInbox(ctx, InboxConfig{}); err == nil {
		t.Fatal("an inbox without a store")
	}
}

// TestInboxImportsLegacyBucket: the acknowledged positions and finding ids
// earlier versions kept in a key-value bucket are in the store once the
// inbox opened (the cursors are the same stream sequences); importing
// again changes nothing and never moves a position back.
func TestInboxImportsLegacyBucket(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	kv, err := ns.JetStream.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: legacyBucket(namespace.Default), History: 1})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"7": "12", "8": "3", "finding.7.stale-old": "stale_flag", "junk": "1", "9": "x", "finding.x.y": "k"} {
		if _, err := kv.Put(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	st := memstore.New()
	if err := st.AckSignals(ctx, 8, 5, 0); err != nil { // acknowledged later, in the store
		t.Fatal(err)
	}
	for range 2 {
		in, err := OpenInbox(ctx, InboxConfig{Store: st, JetStream: ns.JetStream, Namespace: namespace.Default, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		for team, want := range map[int64]uint64{7: 12, 8: 5, 9: 0} {
			if got, err := in.Acked(ctx, team); got != want || err != nil {
				t.Fatalf("team %d: acknowledged %d %v, want %d", team, got, err, want)
			}
		}
		if ok, err := in.AppendOnce(ctx, Finding{Team: 7, Kind: "stale_flag", Summary: "s", ID: "stale-old"}); ok || err != nil {
			t.Fatalf("a finding the bucket knew was added again: %v %v", ok, err)
		}
	}
}

// BenchmarkInboxPending: the pending note's count when it is not cached
// (a signal of the team just arrived), with 50 signals pending and the
// copy running. NATS runs in process, so instruction counts include the
// server's side of each JetStream call.
func BenchmarkInboxPending(b *testing.B) {
	ns := natstest.Start(b)
	ctx := context.Background()
	in, err := OpenInbox(ctx, InboxConfig{Store: memstore.New(), JetStream: ns.JetStream, Namespace: namespace.Default, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	runInbox(b, in)
	for i := range 50 {
		if err := in.Append(ctx, Finding{Team: 7, Kind: "stale_flag", Summary: fmt.Sprintf("f%d is stale", i)}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		in.Touch(7)
		if n, err := in.Pending(ctx, 7); n != 50 || err != nil {
			b.Fatalf("pending: %d %v", n, err)
		}
	}
}
