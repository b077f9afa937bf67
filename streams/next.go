package streams

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// IdlePoll is how long a role's pull request for its next message waits at
// the server. A request costs the client an inbox subscription, channels
// and a goroutine, and the server a request to parse and expire, so an idle
// consumer that asked every few milliseconds made most of an idle node's
// garbage. For a pull this long the server sends heartbeats every 5 s, so
// a request the server lost (a NATS restart) is noticed within 10 s.
const IdlePoll = 30 * time.Second

// Next waits for cons's next message with one pull request: until wait
// passes (nil, nil), or ctx ends (nil and ctx's error, at once). A request
// the server lost (missed heartbeats) also returns nil, nil, to be asked
// again.
func Next(ctx context.Context, cons jetstream.Consumer, wait time.Duration) (jetstream.Msg, error) {
	pctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	// FetchContext makes the request's expiry the context's deadline and
	// its end the end of the wait; FetchMaxWait would outlive a shutdown.
	msg, err := cons.Next(jetstream.FetchContext(pctx))
	switch {
	case err == nil:
		return msg, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, jetstream.ErrNoHeartbeat):
		return nil, nil
	}
	return nil, err
}
