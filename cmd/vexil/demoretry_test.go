package main

import (
	"context"
	"testing"

	"google.golang.org/grpc"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/errcode"
)

// TestRetryOverloaded: the demo's seeding retries a call refused as
// overloaded (as the node answers when a busy host closes its rate gate)
// until it passes, and returns any other error, a quota's included, at
// once; it gives up after demoRetries.
func TestRetryOverloaded(t *testing.T) {
	overloaded := errcode.GRPCStatus(errcode.FromRejected(&admission.RejectedError{Err: admission.ErrOverloaded, Class: admission.Management})).Err()
	quota := errcode.GRPCStatus(errcode.FromRejected(&admission.RejectedError{Err: admission.ErrQuotaExceeded, Class: admission.Management})).Err()
	call := func(errs ...error) (int, error) {
		n := 0
		invoker := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			n++
			if n <= len(errs) {
				return errs[n-1]
			}
			return nil
		}
		err := retryOverloaded(0)(context.Background(), "/m", nil, nil, nil, invoker)
		return n, err
	}
	if n, err := call(overloaded, overloaded); err != nil || n != 3 {
		t.Errorf("two refusals then success: %d calls, %v; want 3 and nil", n, err)
	}
	if n, err := call(quota); err == nil || n != 1 {
		t.Errorf("a quota refusal: %d calls, %v; want 1 and the error", n, err)
	}
	many := make([]error, demoRetries+5)
	for i := range many {
		many[i] = overloaded
	}
	if n, err := call(many...); err == nil || n != demoRetries+1 {
		t.Errorf("refused every time: %d calls, %v; want %d and the error", n, err, demoRetries+1)
	}
}
