package tlsconf

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"

	"google.golang.org/grpc/test/bufconn"
)

// localBufferBytes is the buffer of an in-process connection each way.
const localBufferBytes = 256 << 10

// A Listener serves the connections accepted from the network, over TLS
// when it has a configuration, and the connections dialled from inside the
// process with DialContext. Those never leave the process, so they skip
// TLS: the management API's HTTP gateway reaches its own gRPC server that
// way, and a gRPC port that requires client certificates needs none for
// it (nor a certificate valid for the listen address).
type Listener struct {
	network net.Listener
	local   *bufconn.Listener
	conns   chan accepted
	done    chan struct{}
	once    sync.Once
}

type accepted struct {
	c   net.Conn
	err error
}

// NewListener serves ln, over TLS with cfg unless cfg is nil.
func NewListener(ln net.Listener, cfg *tls.Config) *Listener {
	l := &Listener{network: ln, local: bufconn.Listen(localBufferBytes), conns: make(chan accepted), done: make(chan struct{})}
	if cfg != nil {
		l.network = tls.NewListener(ln, cfg)
	}
	go l.pump(l.network)
	go l.pump(l.local)
	return l
}

// pump hands ln's connections to Accept until ln fails for good.
func (l *Listener) pump(ln net.Listener) {
	for {
		c, err := ln.Accept()
		select {
		case l.conns <- accepted{c, err}:
		case <-l.done:
			if c != nil {
				_ = c.Close()
			}
			return
		}
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return
			}
		}
	}
}

// Accept returns the next connection, from the network or the process.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case a := <-l.conns:
		return a.c, a.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops both; connections accepted before stay open.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = errors.Join(l.network.Close(), l.local.Close())
	})
	return err
}

// Addr is the network address.
func (l *Listener) Addr() net.Addr { return l.network.Addr() }

// DialContext connects to the listener from inside the process, without
// TLS; the address is ignored (grpc.WithContextDialer's signature).
func (l *Listener) DialContext(ctx context.Context, _ string) (net.Conn, error) {
	return l.local.DialContext(ctx)
}
