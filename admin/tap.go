package admin

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/tap"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/errcode"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// admitOptions are the gRPC server's admission: a tap handle that admits
// or refuses every call of a known method as soon as its headers arrive,
// before its request message is read or decoded (an interceptor runs
// after decoding: refusing there, an overloaded node still paid for the
// body of every call it refused), and a stats handler that ends the
// call's ticket when the call ends, whether or not a handler ran.
// classOf gives the class of the registered services' methods
// (ServerConfig.Classes); the management API's are Management. Calls of
// other methods pass through unadmitted (the server answers them
// Unimplemented). A refusal is RESOURCE_EXHAUSTED with errcode's
// ErrorInfo, reason "overloaded", and the retry delay.
func admitOptions(c *admission.Controller, classOf func(fullMethod string) (admission.Class, bool)) []grpc.ServerOption {
	prefix := "/" + adminv1.AdminService_ServiceDesc.ServiceName + "/"
	class := func(m string) (admission.Class, bool) {
		if strings.HasPrefix(m, prefix) {
			return admission.Management, true
		}
		if classOf != nil {
			return classOf(m)
		}
		return 0, false
	}
	in := func(ctx context.Context, info *tap.Info) (context.Context, error) {
		cl, ok := class(info.FullMethodName)
		if !ok {
			return ctx, nil
		}
		t, err := c.Acquire(cl)
		if err != nil {
			return ctx, errcode.GRPCStatus(err).Err()
		}
		return admission.WithTicket(ctx, t.Shared()), nil
	}
	return []grpc.ServerOption{grpc.InTapHandle(in), grpc.StatsHandler(ticketEnder{})}
}

// ticketEnder ends a call's ticket (admission.TicketFrom) when the call
// ends; a handler that ended it sooner (a watch frees its slot once the
// first payload is out) makes this a no-op.
type ticketEnder struct{}

func (ticketEnder) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (ticketEnder) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.End); ok {
		if t, ok := admission.TicketFrom(ctx); ok {
			t.Done()
		}
	}
}
func (ticketEnder) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (ticketEnder) HandleConn(context.Context, stats.ConnStats)                       {}
