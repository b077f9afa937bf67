package main

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/vexil-dev/vexil/errcode"
)

// demoRetries bounds how often the demo's seeding retries one call the
// node refused as overloaded.
const demoRetries = 20

// retryOverloaded is the demo seeding's client interceptor: a call the
// node's admission refused as overloaded (RESOURCE_EXHAUSTED, errcode
// overloaded: a busy host's scheduler delays close the rate gate, and
// management calls are refused first) is sent again after a short pause,
// up to demoRetries times, as a client told to retry would, instead of
// ending the node's start. Other errors, a quota's included, are returned
// at once.
func retryOverloaded(pause time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		for attempt := 1; ; attempt++ {
			err := invoker(ctx, method, req, reply, cc, opts...)
			st, ok := status.FromError(err)
			if err == nil || !ok || attempt > demoRetries || errcode.FromStatus(st).Code != errcode.Overloaded {
				return err
			}
			select {
			case <-ctx.Done():
				return err
			case <-time.After(pause * time.Duration(min(attempt, 10))):
			}
		}
	}
}
