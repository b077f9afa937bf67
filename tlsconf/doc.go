// Package tlsconf serves and dials TLS from PEM files that an operator (or
// cert-manager, or an ACME client) replaces on disk: a server picks up a
// rotated certificate, key or client CA at its next handshake, without a
// restart, and keeps serving the old one while the files on disk do not
// form a valid pair (a rotation half written).
//
// Its Listener also accepts connections dialled from inside the process,
// which never leave it and need no TLS: a server that calls its own gRPC
// port (an HTTP gateway) needs no client certificate of its own.
package tlsconf
