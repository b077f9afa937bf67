// Package h1fast serves the plain HTTP/1.1 requests of a few hot routes
// (vexil serve's POST /flags and /decide) below net/http, and hands every
// other connection to net/http as it came.
//
// Why: on a node with one P (GOMAXPROCS=1 under a CPU quota, or a
// server pinned to a core), the garbage collector's background work (the
// mark worker, the sweeper, the scavenger) runs on the same P as the
// requests, in slices of one to six milliseconds during which requests
// wait in the netpoller; under a closed loop that saturates the P they
// set the p99. Their share of the time follows the bytes allocated per
// request, and net/http's own per-request allocations (the request and
// its header map, the MIME reader, the response's header clone, the
// request context, the background read) were about 2 KB of the 5 KB a
// /flags request allocated. Here a connection keeps one http.Request,
// one header map and one response buffer for all its requests, and the
// handler is the server's own: both paths answer alike, and a test
// compares them byte for byte.
//
// What is served here is deliberately narrow, and everything else goes to
// net/http with the bytes already read replayed first:
//   - plaintext connections only (a TLS connection is handed over at
//     accept);
//   - "POST <path>[?query] HTTP/1.1" where path is one of Config.Paths,
//     exactly (no escapes, no dot segments);
//   - a head under HeadBytes, with CRLF line ends, valid header names and
//     values, one Host, at most one Content-Length and no
//     Transfer-Encoding, Expect or Upgrade; Connection only "close" or
//     "keep-alive".
//
// Once a connection is handed over it stays with net/http. A request
// that is refused here is refused by net/http, with its usual 400s.
//
// Differences from net/http, all deliberate:
//   - the request's context is the connection's (cancelled when the
//     connection closes), not one per request: the handlers served here
//     leave no goroutine behind a request;
//   - no background read detects a client that closes while its request
//     is evaluated; the answer's write fails instead (an evaluation is
//     bounded by its deadline and the store timeout);
//   - the response is buffered whole and written with its
//     Content-Length in one system call; the ResponseWriter implements
//     neither http.Flusher nor http.Hijacker; 1xx statuses are not sent;
//   - the request's context holds neither http.ServerContextKey nor
//     http.LocalAddrContextKey.
package h1fast
