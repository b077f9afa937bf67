package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/ingest"
	"github.com/vexil-dev/vexil/store"
)

// ReplayOptions configures Replay.
type ReplayOptions struct {
	// JetStream reads the production ingest stream. Required.
	JetStream jetstream.JetStream
	// Namespace of the ingest subjects. Default namespace.Default.
	Namespace namespace.Name
	// Stream is the ingest stream. Default projector.StreamName(Namespace).
	Stream string
	// From is the snapshot's cut: messages after it are replayed.
	From uint64
	// To is the last sequence to replay; 0 means the stream's last
	// sequence when Replay starts. For a result equal to production's, To
	// must be at least the manifest's EndSequence.
	To uint64
	// Until, when set, stops before the first message stored after it
	// ("as of" a time).
	Until time.Time
	// Team restricts the replay to one team's subjects; 0 replays all.
	Team int64
	// Store receives the replayed state (a restored snapshot). Required.
	Store store.Store
	// AtomicStore is projector.Config.AtomicStore for Store.
	AtomicStore bool
	// Events is projector.Config.Events (which events behavioural cohorts
	// count); nil drops events as production does without cohorts.
	Events func(team int64) *flags.Set
	// Progress, when set, is called as messages are copied and applied.
	Progress func(applied, total uint64)
	// Logger receives the replay's logs. Default slog.Default().
	Logger *slog.Logger
}

// ReplayResult is what Replay did.
type ReplayResult struct {
	// Messages replayed, and the last stream sequence among them (From
	// when none).
	Messages     uint64
	LastSequence uint64
	Elapsed      time.Duration
}

// Replay applies the ingest stream's messages in (From, To] (or up to
// Until) to o.Store with the production projector. The messages are copied,
// in stream order, into a private in-process JetStream server that the
// projector consumes: production's stream and consumers are only read (an
// ordered consumer), and the projector runs exactly as in production
// (batches, convergence, dead letters), so the replayed state is what
// production's projector makes of the same messages.
func Replay(ctx context.Context, o ReplayOptions) (ReplayResult, error) {
	start := time.Now()
	if o.JetStream == nil || o.Store == nil {
		return ReplayResult{}, errcode.New(errcode.InvalidArgument, "snapshot: replay needs a JetStream and a store")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Stream == "" {
		o.Stream = projector.StreamName(o.Namespace)
	}
	src, err := o.JetStream.Stream(ctx, o.Stream)
	if err != nil {
		return ReplayResult{}, fmt.Errorf("snapshot: replay: stream %s: %w", o.Stream, err)
	}
	info, err := src.Info(ctx)
	if err != nil {
		return ReplayResult{}, fmt.Errorf("snapshot: replay: stream %s: %w", o.Stream, err)
	}
	last := info.State.LastSeq
	to := o.To
	switch {
	case to == 0:
		to = last
	case to > last:
		return ReplayResult{}, errcode.New(errcode.InvalidArgument, "snapshot: replay: to-sequence %d is beyond stream %s's last sequence %d", to, o.Stream, last)
	}
	if first := info.State.FirstSeq; o.From+1 < first && o.From < to {
		return ReplayResult{}, errcode.New(errcode.FailedPrecondition, "snapshot: replay: stream %s starts at sequence %d: messages %d..%d are gone (older than the stream's max age); the snapshot is too old to replay", o.Stream, first, o.From+1, first-1)
	}
	res := ReplayResult{LastSequence: o.From}
	if o.From >= to {
		res.Elapsed = time.Since(start)
		return res, nil
	}

	scratch, err := startScratch()
	if err != nil {
		return res, err
	}
	defer scratch.close()
	sjs := scratch.js
	ns := o.Namespace
	if _, err := sjs.CreateStream(ctx, projector.IngestStreamConfig(projector.StreamName(ns), ns)); err != nil {
		return res, fmt.Errorf("snapshot: replay: scratch stream: %w", err)
	}
	pctx, stopProjector := context.WithCancel(ctx)
	defer stopProjector()
	proj, err := projector.New(projector.Config{Conn: scratch.nc, Store: o.Store, AtomicStore: o.AtomicStore, Namespace: ns,
		Events: o.Events, Logger: o.Logger.With("component", "replay-projector")})
	if err != nil {
		return res, err
	}
	g, gctx := errgroup.WithContext(pctx)
	g.Go(func() error {
		if err := proj.Run(gctx); err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	})
	var copied uint64
	g.Go(func() error {
		defer stopProjector()
		n, lastSeq, err := copyStream(gctx, o, src, sjs, to)
		if err != nil {
			return err
		}
		if o.Team == 0 && o.Until.IsZero() && lastSeq != to {
			return fmt.Errorf("copied the stream up to sequence %d, want %d", lastSeq, to)
		}
		copied, res.LastSequence = n, lastSeq
		o.Logger.Info("replay: messages copied", "messages", n, "last_sequence", lastSeq)
		return waitApplied(gctx, sjs, projector.StreamName(ns), projector.DurableName(ns), n, o.Progress)
	})
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return res, fmt.Errorf("snapshot: replay: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.Messages = copied
	res.Elapsed = time.Since(start)
	o.Logger.Info("replay complete", "messages", res.Messages, "last_sequence", res.LastSequence,
		"elapsed", res.Elapsed.Round(time.Millisecond))
	return res, nil
}

// copyStream copies the messages of (o.From, to] (and stored up to
// o.Until) from src into the scratch stream, in order.
func copyStream(ctx context.Context, o ReplayOptions, src jetstream.Stream, dst jetstream.JetStream, to uint64) (n, last uint64, err error) {
	subjects := ingest.SubjectWildcards(o.Namespace)
	if o.Team != 0 {
		for i, s := range subjects {
			subjects[i] = s[:len(s)-1] + strconv.FormatInt(o.Team, 10)
		}
	}
	cons, err := src.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    o.From + 1,
	})
	if err != nil {
		return 0, 0, err
	}
	last = o.From
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	if info.NumPending == 0 {
		return 0, last, nil // nothing matches after From
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(copyWindow))
	if err != nil {
		return 0, last, err
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return n, last, err
		}
		md, err := msg.Metadata()
		if err != nil {
			return n, last, err
		}
		seq := md.Sequence.Stream
		if seq > to || (!o.Until.IsZero() && md.Timestamp.After(o.Until)) {
			return n, last, waitPublished(ctx, dst)
		}
		out := nats.NewMsg(msg.Subject())
		out.Data = msg.Data()
		for k, v := range msg.Headers() {
			if k == jetstream.MsgIDHeader {
				continue // the scratch stream must not drop a redelivered copy
			}
			out.Header[k] = v
		}
		if _, err := dst.PublishMsgAsync(out); err != nil {
			return n, last, err
		}
		n, last = n+1, seq
		// The end is a sequence past to, or no matching message pending;
		// a pause in delivery is only a slow server.
		if seq == to || md.NumPending == 0 {
			return n, last, waitPublished(ctx, dst)
		}
		// At most copyWindow publishes outstanding: below the client's
		// limit of pending asynchronous publishes.
		if n%copyWindow == 0 {
			if err := waitPublished(ctx, dst); err != nil {
				return n, last, err
			}
		}
	}
}

// copyWindow is how many messages the copy has in flight, each way.
const copyWindow = 2048

func waitPublished(ctx context.Context, js jetstream.JetStream) error {
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitApplied waits until the scratch projector acknowledged all n
// messages (a message is acknowledged after its durable write).
func waitApplied(ctx context.Context, js jetstream.JetStream, stream, durable string, n uint64, progress func(applied, total uint64)) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := js.Consumer(ctx, stream, durable)
		if err == nil {
			info, err := c.Info(ctx)
			if err != nil {
				return err
			}
			if progress != nil {
				progress(info.AckFloor.Stream, n)
			}
			if info.AckFloor.Stream >= n && info.NumAckPending == 0 {
				return nil
			}
		} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// scratch is a private in-process JetStream server.
type scratch struct {
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	dir string
}

func startScratch() (*scratch, error) {
	dir, err := os.MkdirTemp("", "vexil-replay-")
	if err != nil {
		return nil, err
	}
	srv, err := server.NewServer(&server.Options{JetStream: true, StoreDir: dir, DontListen: true, NoLog: true, NoSigs: true})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("snapshot: replay: scratch NATS: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		os.RemoveAll(dir)
		return nil, errors.New("snapshot: replay: scratch NATS did not start")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		srv.Shutdown()
		os.RemoveAll(dir)
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		srv.Shutdown()
		os.RemoveAll(dir)
		return nil, err
	}
	return &scratch{srv: srv, nc: nc, js: js, dir: dir}, nil
}

func (s *scratch) close() {
	s.nc.Close()
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	os.RemoveAll(s.dir)
}

// StreamCut returns the cut of a running projector: the ingest stream's
// name and its durable consumer's ack floor (every message at or below it
// is acknowledged, so durably applied).
func StreamCut(js jetstream.JetStream, ns namespace.Name) func(context.Context) (Cut, error) {
	return func(ctx context.Context) (Cut, error) {
		stream, durable := projector.StreamName(ns), projector.DurableName(ns)
		c, err := js.Consumer(ctx, stream, durable)
		if err != nil {
			return Cut{}, fmt.Errorf("consumer %s on %s: %w", durable, stream, err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			return Cut{}, err
		}
		return Cut{Stream: stream, Sequence: info.AckFloor.Stream}, nil
	}
}

// StreamEnd returns the ingest stream's last sequence (Options.End).
func StreamEnd(js jetstream.JetStream, ns namespace.Name) func(context.Context) (uint64, error) {
	return func(ctx context.Context) (uint64, error) {
		s, err := js.Stream(ctx, projector.StreamName(ns))
		if err != nil {
			return 0, err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return 0, err
		}
		return info.State.LastSeq, nil
	}
}
