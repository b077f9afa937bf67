package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
)

// MinVersion is the oldest TLS version served and dialled: TLS 1.2, as
// every supported client speaks it.
const MinVersion = tls.VersionTLS12

// Server returns a server configuration serving kp's current pair. With
// clientCAs, a client must present a certificate signed by one of them
// (mTLS), checked against the pool now on disk. nextProtos are the ALPN
// protocols ("h2" for gRPC; "h2", "http/1.1" for HTTP).
func Server(kp *KeyPair, clientCAs *Pool, nextProtos ...string) *tls.Config {
	base := &tls.Config{
		MinVersion: MinVersion,
		NextProtos: nextProtos,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return kp.Certificate(), nil
		},
	}
	if clientCAs == nil {
		return base
	}
	outer := base.Clone()
	outer.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = clientCAs.CertPool()
		return c, nil
	}
	return outer
}

// ClientFiles name what a client trusts and presents.
type ClientFiles struct {
	// CAFile is a PEM bundle of the CAs the server's certificate must be
	// signed by; empty: the system's roots.
	CAFile string
	// CertFile and KeyFile are the client's certificate and key, for a
	// server requiring client certificates; both or neither.
	CertFile, KeyFile string
}

// Client returns a client configuration for f. The CA file is read once
// (a client is short-lived, or is restarted with its servers); the client
// pair is watched like a server's.
func Client(f ClientFiles, opts Options) (*tls.Config, error) {
	c := &tls.Config{MinVersion: MinVersion}
	if f.CAFile != "" {
		data, err := readBounded(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("tls: CA file %s: no PEM certificate in it", f.CAFile)
		}
		c.RootCAs = pool
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, fmt.Errorf("tls: a client certificate needs both its certificate file and its key file")
	}
	if f.CertFile != "" {
		kp, err := LoadKeyPair(f.CertFile, f.KeyFile, opts)
		if err != nil {
			return nil, err
		}
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return kp.Certificate(), nil
		}
	}
	return c, nil
}
