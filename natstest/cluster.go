package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StartCluster starts n NATS servers (n >= 3: JetStream's meta group needs
// a majority) clustered with JetStream on, each on free loopback ports and
// its own directory under tb.TempDir(), and waits until JetStream answers
// through every one of them. It returns the servers' client URLs; their
// cleanup shuts them down.
func StartCluster(tb testing.TB, n int) []string {
	tb.Helper()
	if n < 3 {
		tb.Fatalf("natstest: a JetStream cluster needs at least 3 servers, not %d", n)
	}
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(tb)
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	urls := make([]string, n)
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   tb.TempDir(),
			NoLog:      true,
			NoSigs:     true,
			Cluster:    server.ClusterOpts{Name: "vexil-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:     routes,
		}
		s, err := server.NewServer(opts)
		if err != nil {
			tb.Fatalf("natstest: cluster server %d: %v", i, err)
		}
		s.Start()
		tb.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		if !s.ReadyForConnections(readyTimeout) {
			tb.Fatalf("natstest: cluster server %d not ready within %v", i, readyTimeout)
		}
		urls[i] = s.ClientURL()
	}
	// JetStream answers once the meta group has elected a leader.
	deadline := time.Now().Add(time.Minute)
	for _, u := range urls {
		for {
			err := jetStreamReady(u)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("natstest: JetStream cluster not ready through %s: %v", u, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return urls
}

func jetStreamReady(u string) error {
	nc, err := nats.Connect(u)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := contextTimeout(2 * time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("natstest: free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func contextTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
