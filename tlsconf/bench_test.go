package tlsconf

import (
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/vexil-dev/vexil/tlsconf/tlstest"
)

// BenchmarkHandshake is a full TLS 1.3 handshake (ECDSA P-256) on
// loopback through a Listener, as a new connection to /flags pays it,
// with the default check interval.
func BenchmarkHandshake(b *testing.B) {
	dir := b.TempDir()
	ca := tlstest.NewCA(b, "bench CA")
	certFile, keyFile := ca.Issue(b, tlstest.Spec{CommonName: "server"}).Write(b, dir, "server")
	kp, err := LoadKeyPair(certFile, keyFile, Options{})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	l := NewListener(ln, Server(kp, nil, "http/1.1"))
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				_, _ = io.Copy(io.Discard, c)
				_ = c.Close()
			}()
		}
	}()
	cfg, err := Client(ClientFiles{CAFile: ca.WriteCA(b, dir, "ca")}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
	}
}

// BenchmarkCertificate is what a handshake adds to pick the current pair
// between two reads of the files.
func BenchmarkCertificate(b *testing.B) {
	dir := b.TempDir()
	ca := tlstest.NewCA(b, "bench CA")
	certFile, keyFile := ca.Issue(b, tlstest.Spec{CommonName: "server"}).Write(b, dir, "server")
	kp, err := LoadKeyPair(certFile, keyFile, Options{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		_ = kp.Certificate()
	}
}
