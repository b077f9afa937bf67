package streams_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/polltest"
	"github.com/vexil-dev/vexil/streams"
)

// TestNext: Next returns a waiting message, nothing once its wait passes,
// and ctx's error when ctx ends while it waits; the request it leaves at
// the server then takes no message from the next one (an hour's AckWait
// would hold a message delivered to it).
func TestNext(t *testing.T) {
	ctx := context.Background()
	js := natstest.Start(t).JetStream
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "NEXT", Subjects: []string{"next.>"}}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "NEXT", jetstream.ConsumerConfig{Durable: "c",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	msg, err := streams.Next(ctx, cons, time.Second)
	if msg != nil || err != nil {
		t.Fatalf("Next on an empty stream = %v, %v; want nil, nil", msg, err)
	}

	if _, err := js.Publish(ctx, "next.a", []byte("a")); err != nil {
		t.Fatal(err)
	}
	msg, err = streams.Next(ctx, cons, streams.IdlePoll)
	if err != nil || msg == nil || string(msg.Data()) != "a" {
		t.Fatalf("Next with a message waiting = %v, %v; want the message a", msg, err)
	}
	if err := msg.Ack(); err != nil {
		t.Fatal(err)
	}

	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		m, err := streams.Next(cctx, cons, time.Hour)
		if m != nil {
			err = errors.New("a message from an empty stream")
		}
		done <- err
	}()
	polltest.Eventually(t, time.Minute, func() error { // the request is at the server
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumWaiting != 1 {
			return errors.New("no pull request waiting")
		}
		return nil
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after its context ended: %v, want context.Canceled", err)
	}

	if _, err := js.Publish(ctx, "next.b", []byte("b")); err != nil {
		t.Fatal(err)
	}
	msg, err = streams.Next(ctx, cons, 10*time.Second)
	if err != nil || msg == nil || string(msg.Data()) != "b" {
		t.Fatalf("Next after a cancelled wait = %v, %v; want the message b", msg, err)
	}
}
