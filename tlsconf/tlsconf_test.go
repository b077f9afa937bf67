package tlsconf

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/vexil-dev/vexil/tlsconf/tlstest"
)

// every looks at the files at every handshake.
var every = Options{CheckInterval: -1}

// serveHTTP serves "ok" over TLS with kp on a loopback port.
func serveHTTP(t *testing.T, kp *KeyPair) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, Server(kp, nil, "h2", "http/1.1"))
	srv := &http.Server{ErrorLog: log.New(io.Discard, "", 0), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok "+r.Proto)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "https://" + ln.Addr().String() + "/"
}

func httpClient(t *testing.T, f ClientFiles) *http.Client {
	t.Helper()
	cfg, err := Client(f, every)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true, DisableKeepAlives: true}}
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// peerName returns the common name of the certificate url serves.
func peerName(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.TLS.PeerCertificates[0].Subject.CommonName
}

func TestHTTPGoodExpiredWrongCA(t *testing.T) {
	dir := t.TempDir()
	ca, other := tlstest.NewCA(t, "vexil test CA"), tlstest.NewCA(t, "another CA")
	caFile, otherFile := ca.WriteCA(t, dir, "ca"), other.WriteCA(t, dir, "other")

	good, err := LoadKeyPair(writePair(t, dir, "good", ca.Issue(t, tlstest.Spec{CommonName: "good"})))
	if err != nil {
		t.Fatal(err)
	}
	url := serveHTTP(t, good)
	body, err := get(httpClient(t, ClientFiles{CAFile: caFile}), url)
	if err != nil || body != "ok HTTP/2.0" {
		t.Fatalf("good certificate: %q, %v; want ok over HTTP/2", body, err)
	}
	_, err = get(httpClient(t, ClientFiles{CAFile: otherFile}), url)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("wrong CA: %v, want x509.UnknownAuthorityError", err)
	}

	expired, err := LoadKeyPair(writePair(t, dir, "expired", ca.Issue(t, tlstest.Spec{CommonName: "expired", Expired: true})))
	if err != nil {
		t.Fatal(err)
	}
	_, err = get(httpClient(t, ClientFiles{CAFile: caFile}), serveHTTP(t, expired))
	var invalid x509.CertificateInvalidError
	if !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Fatalf("expired certificate: %v, want x509.CertificateInvalidError Expired", err)
	}
}

func writePair(t *testing.T, dir, name string, p tlstest.Pair) (string, string, Options) {
	cert, key := p.Write(t, dir, name)
	return cert, key, every
}

// TestRotation: a certificate replaced on disk is served at the next
// handshake, without a restart; a half-written rotation (a key that does
// not match) keeps the previous pair; the check interval spaces the looks.
func TestRotation(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "vexil test CA")
	caFile := ca.WriteCA(t, dir, "ca")
	first := ca.Issue(t, tlstest.Spec{CommonName: "first"})
	kp, err := LoadKeyPair(writePair(t, dir, "server", first))
	if err != nil {
		t.Fatal(err)
	}
	url := serveHTTP(t, kp)
	c := httpClient(t, ClientFiles{CAFile: caFile})
	if got := peerName(t, c, url); got != "first" {
		t.Fatalf("served %q, want first", got)
	}

	second := ca.Issue(t, tlstest.Spec{CommonName: "second"})
	second.Write(t, dir, "server")
	if got := peerName(t, c, url); got != "second" {
		t.Fatalf("after the rotation served %q, want second", got)
	}

	// Half a rotation: the new certificate is there, its key not yet.
	third := ca.Issue(t, tlstest.Spec{CommonName: "third"})
	if err := os.WriteFile(dir+"/server.crt", third.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := peerName(t, c, url); got != "second" {
		t.Fatalf("with a mismatched key served %q, want the previous pair (second)", got)
	}
	if err := os.WriteFile(dir+"/server.key", third.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := peerName(t, c, url); got != "third" {
		t.Fatalf("with the key written served %q, want third", got)
	}
}

func TestCheckInterval(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "vexil test CA")
	now := time.Unix(1_800_000_000, 0)
	certFile, keyFile := ca.Issue(t, tlstest.Spec{CommonName: "first"}).Write(t, dir, "server")
	kp, err := LoadKeyPair(certFile, keyFile, Options{CheckInterval: time.Minute, now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ca.Issue(t, tlstest.Spec{CommonName: "second"}).Write(t, dir, "server")
	name := func() string {
		leaf, err := kp.Leaf()
		if err != nil {
			t.Fatal(err)
		}
		return leaf.Subject.CommonName
	}
	now = now.Add(59 * time.Second)
	if got := name(); got != "first" {
		t.Fatalf("within the interval: %q, want first", got)
	}
	now = now.Add(time.Second)
	if got := name(); got != "second" {
		t.Fatalf("after the interval: %q, want second", got)
	}
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadKeyPair(dir+"/missing.crt", dir+"/missing.key", Options{}); err == nil || !strings.Contains(err.Error(), "missing.crt") {
		t.Fatalf("missing file: %v", err)
	}
	if err := os.WriteFile(dir+"/empty.pem", []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPool(dir+"/empty.pem", Options{}); err == nil || !strings.Contains(err.Error(), "empty.pem") {
		t.Fatalf("CA file without certificates: %v", err)
	}
	if _, err := Client(ClientFiles{CertFile: dir + "/x.crt"}, Options{}); err == nil {
		t.Fatal("a client certificate without its key was accepted")
	}
	big := make([]byte, maxFileBytes+1)
	if err := os.WriteFile(dir+"/big.pem", big, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPool(dir+"/big.pem", Options{}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized CA file: %v", err)
	}
}

// TestGRPCMutualTLS: a gRPC server requiring client certificates serves a
// client with one, refuses a client without one and a client whose
// certificate another CA signed, and serves the in-process dialer without
// TLS.
func TestGRPCMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := tlstest.NewCA(t, "vexil test CA"), tlstest.NewCA(t, "another CA")
	caFile := ca.WriteCA(t, dir, "ca")
	kp, err := LoadKeyPair(writePair(t, dir, "server", ca.Issue(t, tlstest.Spec{CommonName: "server"})))
	if err != nil {
		t.Fatal(err)
	}
	clients, err := LoadPool(caFile, every)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, Server(kp, clients, "h2"))
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)

	check := func(opts ...grpc.DialOption) error {
		conn, err := grpc.NewClient(ln.Addr().String(), opts...)
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	withFiles := func(f ClientFiles) grpc.DialOption {
		cfg, err := Client(f, every)
		if err != nil {
			t.Fatal(err)
		}
		return grpc.WithTransportCredentials(credentials.NewTLS(cfg))
	}
	certFile, keyFile := ca.Issue(t, tlstest.Spec{CommonName: "caller", Client: true}).Write(t, dir, "client")
	if err := check(withFiles(ClientFiles{CAFile: caFile, CertFile: certFile, KeyFile: keyFile})); err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
	if err := check(withFiles(ClientFiles{CAFile: caFile})); status.Code(err) != codes.Unavailable {
		t.Fatalf("a client without a certificate: %v, want Unavailable (the handshake refused)", err)
	}
	strangerCert, strangerKey := other.Issue(t, tlstest.Spec{CommonName: "stranger", Client: true}).Write(t, dir, "stranger")
	if err := check(withFiles(ClientFiles{CAFile: caFile, CertFile: strangerCert, KeyFile: strangerKey})); status.Code(err) != codes.Unavailable {
		t.Fatalf("a client certificate of another CA: %v, want Unavailable (the handshake refused)", err)
	}
	if err := check(grpc.WithTransportCredentials(insecure.NewCredentials())); err == nil {
		t.Fatal("a plaintext client was served on the TLS port")
	}
	if err := check(grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(l.DialContext)); err != nil {
		t.Fatalf("in-process client: %v", err)
	}
}

// TestListenerClose: Accept returns net.ErrClosed after Close, which a
// second Close does not fail.
func TestListenerClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, nil)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("accept after close: %v", err)
	}
}

// TestGRPCServerCertificate: a gRPC client refuses a server whose
// certificate has expired, or was signed by a CA it does not trust, and
// calls one with a good certificate.
func TestGRPCServerCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, other := tlstest.NewCA(t, "vexil test CA"), tlstest.NewCA(t, "another CA")
	caFile := ca.WriteCA(t, dir, "ca")
	for _, tc := range []struct {
		name string
		pair tlstest.Pair
		want string // in the client's error; "" when served
	}{
		{"good", ca.Issue(t, tlstest.Spec{CommonName: "good"}), ""},
		{"expired", ca.Issue(t, tlstest.Spec{CommonName: "expired", Expired: true}), "certificate has expired"},
		{"wrong-ca", other.Issue(t, tlstest.Spec{CommonName: "wrong-ca"}), "certificate signed by unknown authority"},
	} {
		kp, err := LoadKeyPair(writePair(t, dir, tc.name, tc.pair))
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		healthpb.RegisterHealthServer(srv, health.NewServer())
		go func() { _ = srv.Serve(NewListener(ln, Server(kp, nil, "h2"))) }()
		cfg, err := Client(ClientFiles{CAFile: caFile}, every)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		_ = conn.Close()
		srv.Stop()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want Unavailable: %s", tc.name, err, tc.want)
		}
	}
}
