package vexilclient

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	evalv1 "github.com/vexil-dev/vexil/proto/vexil/eval/v1"
)

// hedgeBudget: hedges stay under a tenth of the calls (plus a burst of
// hedgeBurst), so a slow server gets at most 10% more load from them.
const (
	hedgeRatio = 10
	hedgeBurst = 10
)

type evalAnswer struct {
	resp *evalv1.EvaluateResponse
	err  error
}

// hedgedEvaluate is gRPC's hedging policy, done by the client since
// grpc-go does not implement it: maxAttempts 2, a second attempt on the
// next connection of the pool once HedgingDelay passes without an answer,
// or at once when the first fails with UNAVAILABLE (a non-fatal code); the
// first success wins and the other attempt is cancelled. Evaluate is
// idempotent, so a duplicate costs the server work only.
func (c *Client) hedgedEvaluate(ctx context.Context, in *evalv1.EvaluateRequest) (*evalv1.EvaluateResponse, error) {
	calls := c.calls.Add(1)
	if c.cfg.HedgingDelay <= 0 {
		return c.rpc().Evaluate(ctx, in)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan evalAnswer, 2)
	attempt := func() {
		resp, err := c.rpc().Evaluate(ctx, in)
		answers <- evalAnswer{resp, err}
	}
	go attempt()
	timer := time.NewTimer(c.cfg.HedgingDelay)
	defer timer.Stop()
	pending, hedged := 1, false
	hedge := func() {
		if hedged || c.hedges.Load()*hedgeRatio >= calls+hedgeBurst*hedgeRatio {
			return
		}
		c.hedges.Add(1)
		hedged = true
		pending++
		go attempt()
	}
	var firstErr error
	for {
		select {
		case a := <-answers:
			pending--
			if a.err == nil {
				return a.resp, nil
			}
			if firstErr == nil {
				firstErr = a.err
			}
			if status.Code(a.err) == codes.Unavailable {
				hedge()
			}
			if pending == 0 {
				return nil, firstErr
			}
		case <-timer.C:
			hedge()
		}
	}
}
