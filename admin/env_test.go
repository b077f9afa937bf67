package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/memcatalog"
	"github.com/vexil-dev/vexil/natstest"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/memstore"
)

// env is a running management API on a memory catalog and store, with an
// in-process NATS server whose notices it records.
type env struct {
	t      *testing.T
	cat    catalog.Catalog
	store  *memstore.Store
	svc    *Service
	srv    *Server
	client adminv1.AdminServiceClient
	base   string
	root   string // an instance-wide key with every scope
	nc     *nats.Conn

	ch   chan *nats.Msg
	mu   sync.Mutex
	msgs []*nats.Msg
}

type envOption func(*Config)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, store: memstore.New()}
	e.cat = memcatalog.New(memcatalog.Config{})
	t.Cleanup(func() { _ = e.cat.Close() })
	e.nc = natstest.Start(t).Conn
	// A channel subscription: the client's read loop puts each message in
	// the channel before it reads the PONG of a later Flush.
	e.ch = make(chan *nats.Msg, 1<<16)
	sub, err := e.nc.ChanSubscribe("vexil.>", e.ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Catalog: e.cat, Persons: e.store, Publisher: NATSPublisher{Conn: e.nc}}
	for _, o := range opts {
		o(&cfg)
	}
	e.svc, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.srv, err = NewServer(ServerConfig{Service: e.svc, GRPCListener: gl, HTTPListener: hl})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server Run: %v", err)
		}
	})
	conn, err := grpc.NewClient(e.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	e.client = adminv1.NewAdminServiceClient(conn)
	e.base = "http://" + e.srv.HTTPAddr()
	_, e.root, err = CreatePersonalKey(context.Background(), e.cat, nil, []string{ScopeAll}, "root", "test")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// ctx returns a context carrying the key.
func (e *env) ctx(key string) context.Context {
	if key == "" {
		return context.Background()
	}
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+key)
}

// createTeam makes a team with the root key.
func (e *env) createTeam(name string) *adminv1.Team {
	e.t.Helper()
	resp, err := e.client.CreateTeam(e.ctx(e.root), &adminv1.CreateTeamRequest{Name: name})
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.GetTeam()
}

// key makes a personal key for teams with scopes.
func (e *env) key(teams []int64, scopes ...string) string {
	e.t.Helper()
	_, secret, err := CreatePersonalKey(context.Background(), e.cat, teams, scopes, "test", "test")
	if err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// do sends an HTTP request and decodes a JSON answer into out (if not nil).
func (e *env) do(method, path, key string, body any, out any, hdr ...string) int {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: decoding %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

// notices returns the messages received on a subject so far, after a
// round trip that makes sure every published one has arrived.
func (e *env) notices(subject string) [][]byte {
	e.t.Helper()
	if err := e.nc.Flush(); err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for drained := false; !drained; {
		select {
		case m := <-e.ch:
			e.msgs = append(e.msgs, m)
		default:
			drained = true
		}
	}
	var out [][]byte
	for _, m := range e.msgs {
		if m.Subject == subject {
			out = append(out, m.Data)
		}
	}
	return out
}

// putRows stores rows of persons with the given properties (JSON objects).
func (e *env) putRows(team int64, rows map[string]string) {
	e.t.Helper()
	var b store.Batch
	for did, props := range rows {
		b.PutRow(&store.Row{Team: team, DistinctID: did, PersonID: "p-" + did, PersonVersion: 1, Properties: []byte(props)})
	}
	if err := e.store.Apply(context.Background(), &b); err != nil {
		e.t.Fatal(err)
	}
}

// withRawAuth sets the authorization metadata to v as is.
func withRawAuth(ctx context.Context, v string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", v)
}

// js, jl and jv read JSON text into a Struct, a ListValue and a Value (the
// test's own literals: a mistake panics).
func js(text string) *structpb.Struct {
	if text == "" {
		return nil
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal([]byte(text), s); err != nil {
		panic(fmt.Sprintf("js(%s): %v", text, err))
	}
	return s
}

func jl(text string) *structpb.ListValue {
	l := &structpb.ListValue{}
	if err := protojson.Unmarshal([]byte(text), l); err != nil {
		panic(fmt.Sprintf("jl(%s): %v", text, err))
	}
	return l
}

func jv(text string) *structpb.Value {
	v := &structpb.Value{}
	if err := protojson.Unmarshal([]byte(text), v); err != nil {
		panic(fmt.Sprintf("jv(%s): %v", text, err))
	}
	return v
}

// jtext writes a Struct, ListValue or Value as compact JSON text.
func jtext(m proto.Message) string {
	text, err := messageJSON(m)
	if err != nil {
		return "error: " + err.Error()
	}
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(text)); err != nil {
		return text
	}
	return b.String()
}
