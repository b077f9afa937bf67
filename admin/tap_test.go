package admin

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/errcode"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// countingCodec is gRPC's proto codec, counting the messages the server
// decodes.
type countingCodec struct {
	encoding.CodecV2
	decoded *atomic.Int64
}

func (c countingCodec) Unmarshal(data mem.BufferSlice, v any) error {
	c.decoded.Add(1)
	return c.CodecV2.Unmarshal(data, v)
}

// TestTapRefusesBeforeDecoding: with no room for its class, a gRPC call
// is refused RESOURCE_EXHAUSTED overloaded with the retry delay, and the
// server never decodes its request message; once there is room the call
// is decoded and answered, and its ticket is ended when the call ends
// (the node's in-flight count is back to what it was).
func TestTapRefusesBeforeDecoding(t *testing.T) {
	ac, err := admission.New(admission.Config{InitialLimit: 4, MinLimit: 4, MaxLimit: 4})
	if err != nil {
		t.Fatal(err)
	}
	var decoded atomic.Int64
	srv := grpc.NewServer(append(admitOptions(ac, nil),
		grpc.ForceServerCodecV2(countingCodec{encoding.GetCodecV2("proto"), &decoded}))...)
	adminv1.RegisterAdminServiceServer(srv, adminv1.UnimplementedAdminServiceServer{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := adminv1.NewAdminServiceClient(conn)
	var held []admission.Ticket
	for {
		tk, err := ac.Acquire(admission.Management)
		if err != nil {
			break
		}
		held = append(held, tk)
	}
	// A large message: refusing it must not cost reading or decoding it.
	req := &adminv1.CreateTeamRequest{Name: string(make([]byte, 1<<20))}
	_, err = client.CreateTeam(context.Background(), req)
	st := status.Convert(err)
	if fe := errcode.FromStatus(st); st.Code() != codes.ResourceExhausted || fe.Code != errcode.Overloaded || fe.Meta[errcode.MetaRetryAfter] != "1" {
		t.Errorf("a call with no room: %v (%+v), want RESOURCE_EXHAUSTED overloaded, retry after 1", st, fe)
	}
	if n := decoded.Load(); n != 0 {
		t.Errorf("the refused call's message was decoded %d times, want never", n)
	}
	for _, tk := range held {
		tk.Done()
	}
	_, err = client.CreateTeam(context.Background(), req)
	if st := status.Convert(err); st.Code() != codes.Unimplemented {
		t.Errorf("a call with room: %v, want it through admission (Unimplemented by the test server)", st)
	}
	if n := decoded.Load(); n != 1 {
		t.Errorf("the admitted call's message was decoded %d times, want once", n)
	}
	// The stats handler sees the call end just after its status is sent.
	for i := 0; ac.Inflight() != 0 && i < 5000; i++ {
		time.Sleep(time.Millisecond)
	}
	if n := ac.Inflight(); n != 0 {
		t.Errorf("%d admitted calls still in flight after the call ended, want 0 (the tap's ticket ended)", n)
	}
}
