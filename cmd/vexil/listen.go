package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
	"github.com/vexil-dev/vexil/tlsconf"
)

// listenFlag opens a TCP listener on the address a flag gave. A failure
// names the flag (and the configuration key) to change, so that two
// processes on one host with the same default port know what to do.
func listenFlag(addr, flagName, key string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("listen on %s: the address is in use by another process: choose another with -%s (%s in the --config file): %w",
			addr, flagName, key, err)
	}
	return nil, fmt.Errorf("listen on %s (-%s, %s in the --config file): %w", addr, flagName, key, err)
}

// checkListenFlag reports, as listenFlag does, whether the address a flag
// gave can be listened on, for a server that opens its own listener (the
// in-process NATS server). A port of -1 or 0 is always free.
func checkListenFlag(addr, flagName, key string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "-1" || port == "0" {
		return nil
	}
	ln, err := listenFlag(addr, flagName, key)
	if err != nil {
		return err
	}
	return ln.Close()
}

// listeners opens a command's HTTP and gRPC listeners under one rule: an
// address other hosts can reach serves TLS (c.TLS's certificate, read
// again when it changes), unless a TLS-terminating proxy is said to be in
// front; loopback may stay plaintext. With a client CA, gRPC requires
// client certificates.
type listeners struct {
	tls       config.TLS
	keyPair   *tlsconf.KeyPair // nil: plaintext
	clientCAs *tlsconf.Pool    // nil: no client certificates
}

// newListeners loads c's certificate and client CA; an error names the
// flag and the file.
func newListeners(c config.TLS, log *slog.Logger) (*listeners, error) {
	l := &listeners{tls: c}
	if c.CertFile == "" {
		return l, nil
	}
	opts := tlsconf.Options{Logger: log.With("role", "tls")}
	var err error
	if l.keyPair, err = tlsconf.LoadKeyPair(c.CertFile, c.KeyFile, opts); err != nil {
		return nil, &usageError{msg: fmt.Sprintf("-tls-cert, -tls-key (tls.cert-file, tls.key-file): %v", err)}
	}
	if c.ClientCAFile != "" {
		if l.clientCAs, err = tlsconf.LoadPool(c.ClientCAFile, opts); err != nil {
			return nil, &usageError{msg: fmt.Sprintf("-tls-client-ca (tls.client-ca-file): %v", err)}
		}
	}
	return l, nil
}

// checkPlaintext refuses a non-loopback address served in plaintext with
// no TLS-terminating proxy said to be in front. Commands call it before
// they start anything.
func (l *listeners) checkPlaintext(addr, flagName, key string) error {
	if l.keyPair != nil || l.tls.BehindProxy || isLoopback(addr) {
		return nil
	}
	return &usageError{msg: fmt.Sprintf("-%s %s (%s): a non-loopback address would serve plaintext: give -tls-cert and -tls-key "+
		"(tls.cert-file, tls.key-file in the --config file), or -behind-tls-proxy (tls.behind-proxy) when a TLS-terminating proxy is in front",
		flagName, addr, key)}
}

// listenHTTP opens an HTTP listener (h2 and HTTP/1.1 over TLS).
// Its connections are stamped with the kernel's receive times underneath
// TLS, so admission sees each request's age (admission.StampListener).
func (l *listeners) listenHTTP(addr, flagName, key string) (*tlsconf.Listener, error) {
	return l.listen(addr, flagName, key, admission.StampListener, nil, "h2", "http/1.1")
}

// listenGRPC opens a gRPC listener, requiring client certificates with a
// client CA. Its DialContext reaches it from inside the process without
// TLS (the HTTP gateways).
func (l *listeners) listenGRPC(addr, flagName, key string) (*tlsconf.Listener, error) {
	return l.listen(addr, flagName, key, nil, l.clientCAs, "h2")
}

func (l *listeners) listen(addr, flagName, key string, wrap func(net.Listener) net.Listener, clientCAs *tlsconf.Pool, protos ...string) (*tlsconf.Listener, error) {
	if err := l.checkPlaintext(addr, flagName, key); err != nil {
		return nil, err
	}
	ln, err := listenFlag(addr, flagName, key)
	if err != nil {
		return nil, err
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	if l.keyPair == nil {
		return tlsconf.NewListener(ln, nil), nil
	}
	return tlsconf.NewListener(ln, tlsconf.Server(l.keyPair, clientCAs, protos...)), nil
}

// scheme is the scheme of the HTTP listeners' URLs.
func (l *listeners) scheme() string {
	if l.keyPair != nil {
		return "https"
	}
	return "http"
}

// bindTLSFlags binds the TLS flags of the commands serving HTTP or gRPC.
func bindTLSFlags(b configFlags, c *config.Config) {
	b.str(&c.TLS.CertFile, "tls-cert", "tls.cert-file", "PEM certificate chain every HTTP and gRPC listener serves, read again when it changes (no restart); empty: plaintext, on loopback only unless -behind-tls-proxy")
	b.str(&c.TLS.KeyFile, "tls-key", "tls.key-file", "PEM private key of -tls-cert")
	b.str(&c.TLS.ClientCAFile, "tls-client-ca", "tls.client-ca-file", "PEM CA bundle: gRPC then requires client certificates signed by these CAs (mTLS for internal callers)")
	b.bool(&c.TLS.BehindProxy, "behind-tls-proxy", "tls.behind-proxy", "a TLS-terminating proxy is in front: serve plaintext on non-loopback addresses")
}

// openListeners loads c's TLS files and checks the plaintext rule on c's
// HTTP and gRPC addresses (serve's and admin's).
func openListeners(c config.Config, log *slog.Logger) (*listeners, error) {
	l, err := newListeners(c.TLS, log)
	if err != nil {
		return nil, err
	}
	if err := l.checkPlaintext(c.HTTPAddr, "http-addr", "http-addr"); err != nil {
		return nil, err
	}
	if err := l.checkPlaintext(c.GRPCAddr, "grpc-addr", "grpc-addr"); err != nil {
		return nil, err
	}
	return l, nil
}
