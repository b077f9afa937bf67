package main

import (
	"crypto/tls"
	"flag"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vexil-dev/vexil/tlsconf"
)

// clientTLSFlags are the flags of a command calling a node that serves
// TLS: the CA to trust and, for a gRPC port requiring them, a client
// certificate.
type clientTLSFlags struct {
	ca, cert, key *string
	grpcTLS       *bool // nil: the command has no gRPC client
}

// bindClientTLSFlags binds -ca-file; withGRPC adds -tls (a gRPC address
// has no scheme to say it) and the client certificate.
func bindClientTLSFlags(fs *flag.FlagSet, withGRPC bool) clientTLSFlags {
	f := clientTLSFlags{ca: fs.String("ca-file", "", "PEM CA bundle trusted for the node's TLS certificate (https:// URLs, and gRPC with -tls); empty: the system's roots")}
	if withGRPC {
		f.grpcTLS = fs.Bool("tls", false, "call gRPC over TLS (implied by -ca-file and -client-cert)")
		f.cert = fs.String("client-cert", "", "PEM client certificate, for a gRPC port requiring them (vexil serve -tls-client-ca)")
		f.key = fs.String("client-key", "", "PEM private key of -client-cert")
	}
	return f
}

// config returns the TLS client configuration of the flags.
func (f clientTLSFlags) config() (*tls.Config, error) {
	files := tlsconf.ClientFiles{CAFile: *f.ca}
	if f.cert != nil {
		files.CertFile, files.KeyFile = *f.cert, *f.key
	}
	c, err := tlsconf.Client(files, tlsconf.Options{})
	if err != nil {
		return nil, &usageError{msg: fmt.Sprintf("-ca-file, -client-cert, -client-key: %v", err)}
	}
	return c, nil
}

// grpcCredentials returns the transport credentials of a gRPC client:
// TLS when asked for, plaintext otherwise.
func (f clientTLSFlags) grpcCredentials() (grpc.DialOption, error) {
	if f.grpcTLS == nil || !*f.grpcTLS && *f.ca == "" && *f.cert == "" {
		return grpc.WithTransportCredentials(insecure.NewCredentials()), nil
	}
	c, err := f.config()
	if err != nil {
		return nil, err
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(c)), nil
}
