package snapshot_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/snapshot"
)

// TestReplayRefusesUnknownTeams: production's projector knows team 1
// only; replay with the same teams dead-letters the same messages (team 2's
// and a malformed one), counts them by reason, and ends with production's
// digest.
func TestReplayRefusesUnknownTeams(t *testing.T) {
	ctx := context.Background()
	ns := natstest.Start(t)
	b := pebbleBackend()
	prodStore := b.open(t)
	pctx, cancel := context.WithCancel(ctx)
	p, err := projector.New(projector.Config{Conn: ns.Conn, Store: prodStore, AtomicStore: true, Teams: projector.AllowTeams(1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("projector: %v", err)
		}
	}()
	prod := &production{ns: ns, store: prodStore}
	// Empty store, cut 0: the snapshot is taken before any message.
	dir := filepath.Join(t.TempDir(), "snap")
	m, err := snapshot.Create(ctx, snapshot.Options{Store: b.open(t), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(subject, body string) {
		t.Helper()
		msg := nats.NewMsg(subject)
		msg.Header.Set("Content-Type", "application/json")
		msg.Data = []byte(body)
		if _, err := ns.JetStream.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		team := 1 + i%2 // five of team 2, which production does not know
		publish(fmt.Sprintf("vexil.persons.%d", team), fmt.Sprintf(`{"type":"person_update","team":%d,"person_id":"p%d","distinct_ids":["d%d"],"version":1,"$set":{"n":%d}}`, team, i, i, i))
	}
	publish("vexil.persons.1", `{"type":"person_update",`) // malformed
	last := prod.caughtUp(t)
	dl, err := ns.JetStream.Stream(ctx, projector.DeadLetterStreamName(namespace.Default))
	if err != nil {
		t.Fatal(err)
	}
	info, err := dl.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 6 {
		t.Fatalf("production dead-lettered %d messages, want 6", info.State.Msgs)
	}

	restored := b.open(t)
	if _, err := snapshot.Restore(ctx, dir, restored, snapshot.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := snapshot.Replay(ctx, snapshot.ReplayOptions{JetStream: ns.JetStream, From: m.CutSequence, To: last, Store: restored,
		AtomicStore: true, Teams: projector.AllowTeams(1)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Messages != 11 || res.DeadLettered() != 6 || res.DeadLetters["unknown_team"] != 5 {
		t.Fatalf("replay %+v, want 11 messages, 6 dead letters of which 5 unknown_team", res)
	}
	if got, want := digest(t, restored), digest(t, prodStore); got != want {
		t.Fatalf("replayed digest %s, production's %s", got, want)
	}
	// Without the team set, replay would apply team 2: not production's.
	all := b.open(t)
	res, err = snapshot.Replay(ctx, snapshot.ReplayOptions{JetStream: ns.JetStream, From: m.CutSequence, To: last, Store: all, AtomicStore: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.DeadLettered() != 1 || digest(t, all) == digest(t, prodStore) {
		t.Fatalf("replay allowing every team: %+v, want 1 dead letter and a state unlike production's", res)
	}
}
