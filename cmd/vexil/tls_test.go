package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
	"github.com/vexil-dev/vexil/polltest"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
	evalv1 "github.com/vexil-dev/vexil/proto/vexil/eval/v1"
	"github.com/vexil-dev/vexil/tlsconf"
	"github.com/vexil-dev/vexil/tlsconf/tlstest"
)

// TestPlaintextRule: a non-loopback address is refused in plaintext, with
// an error naming the listener's flag and the ways out, unless TLS is
// configured or a TLS-terminating proxy is said to be in front.
func TestPlaintextRule(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "vexil test CA")
	certFile, keyFile := ca.Issue(t, tlstest.Spec{CommonName: "server"}).Write(t, dir, "server")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		http, grpc string
		tls        config.TLS
		refused    string // the flag named, or "" when allowed
	}{
		{"127.0.0.1:8000", "127.0.0.1:8001", config.TLS{}, ""},
		{"localhost:8000", "[::1]:8001", config.TLS{}, ""},
		{"0.0.0.0:8000", "127.0.0.1:8001", config.TLS{}, "-http-addr"},
		{"127.0.0.1:8000", ":8001", config.TLS{}, "-grpc-addr"},
		{"10.1.2.3:8000", "127.0.0.1:8001", config.TLS{}, "-http-addr"},
		{"0.0.0.0:8000", ":8001", config.TLS{BehindProxy: true}, ""},
		{"0.0.0.0:8000", ":8001", config.TLS{CertFile: certFile, KeyFile: keyFile}, ""},
	} {
		c := config.Default()
		c.HTTPAddr, c.GRPCAddr, c.TLS = tc.http, tc.grpc, tc.tls
		_, err := openListeners(c, log)
		if tc.refused == "" {
			if err != nil {
				t.Errorf("%s %s %+v: %v", tc.http, tc.grpc, tc.tls, err)
			}
			continue
		}
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.refused+" ") ||
			!strings.Contains(err.Error(), "-behind-tls-proxy") || !strings.Contains(err.Error(), "-tls-cert") {
			t.Errorf("%s %s: %v, want a usage error naming %s, -tls-cert and -behind-tls-proxy", tc.http, tc.grpc, err, tc.refused)
		}
	}
}

// TestPlaintextRuleCommands: serve and admin refuse a non-loopback
// plaintext address before they start anything (exit status 2); admin
// starts with -behind-tls-proxy. The context is cancelled: a command that
// starts stops at once.
func TestPlaintextRuleCommands(t *testing.T) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	runDone := func(args ...string) (int, string) {
		var out, errb strings.Builder
		code := run(done, args, &out, &errb)
		return code, errb.String()
	}
	for _, args := range [][]string{
		{"serve", "--data-dir", t.TempDir(), "--http-addr", "0.0.0.0:0"},
		{"serve", "--data-dir", t.TempDir(), "--grpc-addr", "0.0.0.0:0"},
		{"admin", "--data-dir", t.TempDir(), "--http-addr", "0.0.0.0:0"},
		{"admin", "--data-dir", t.TempDir(), "--grpc-addr", "0.0.0.0:0", "--http-addr", "127.0.0.1:0"},
	} {
		code, stderr := runDone(args...)
		flag := "-" + strings.TrimPrefix(args[3], "--")
		if code != 2 || !strings.Contains(stderr, flag+" 0.0.0.0:0") || !strings.Contains(stderr, "-behind-tls-proxy") {
			t.Errorf("%v: %d %s", args, code, stderr)
		}
	}
	// vexil precompute's /metrics, before it connects to anything.
	if code, stderr := runDone("precompute", "--nats-url", "nats://127.0.0.1:1", "--scylla-hosts", "127.0.0.1", "--metrics-addr", "0.0.0.0:0"); code != 2 ||
		!strings.Contains(stderr, "-metrics-addr 0.0.0.0:0 (precompute.metrics-addr)") {
		t.Errorf("precompute: %d %s", code, stderr)
	}
	if code, stderr := runDone("admin", "--data-dir", t.TempDir(), "--http-addr", "0.0.0.0:0", "--grpc-addr", "127.0.0.1:0", "--behind-tls-proxy"); code != 0 {
		t.Errorf("admin behind a TLS proxy: %d %s", code, stderr)
	}
	if code, stderr := runDone("admin", "--data-dir", t.TempDir(), "--tls-cert", "/nonexistent/server.crt", "--tls-key", "/nonexistent/server.key"); code != 2 || !strings.Contains(stderr, "-tls-cert") || !strings.Contains(stderr, "/nonexistent/server.crt") {
		t.Errorf("a missing certificate file: %d %s", code, stderr)
	}
	if code, stderr := runDone("admin", "--data-dir", t.TempDir(), "--tls-cert", "server.crt"); code != 2 || !strings.Contains(stderr, "tls.key-file (-tls-key): required with tls.cert-file") {
		t.Errorf("a certificate without its key: %d %s", code, stderr)
	}
}

// TestServeTLS: vexil serve with a certificate and a client CA serves
// /flags, the management API (through the vexil keys client) and the
// evaluation gateway over HTTPS, and gRPC to a client with a certificate;
// it refuses a gRPC client without one, and an HTTPS client trusting
// another CA; a certificate rotated on disk is served without a restart.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := tlstest.NewCA(t, "vexil test CA"), tlstest.NewCA(t, "another CA")
	caFile, otherFile := ca.WriteCA(t, dir, "ca"), other.WriteCA(t, dir, "other")
	certFile, keyFile := ca.Issue(t, tlstest.Spec{CommonName: "first"}).Write(t, dir, "server")
	clientCert, clientKey := ca.Issue(t, tlstest.Spec{CommonName: "caller", Client: true}).Write(t, dir, "client")
	c := config.Default()
	c.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile}
	n := testNodeWith(t, c)
	if !strings.HasPrefix(n.httpURL, "https://127.0.0.1:") {
		t.Fatalf("httpURL %q, want https", n.httpURL)
	}

	grpcConn := func(f tlsconf.ClientFiles) *grpc.ClientConn {
		cfg, err := tlsconf.Client(f, tlsconf.Options{})
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(n.adminSrv.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, personal, err := admin.CreatePersonalKey(ctx, n.catalog, nil, []string{admin.ScopeAll}, "tls", "test")
	if err != nil {
		t.Fatal(err)
	}
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+personal)
	api := adminv1.NewAdminServiceClient(grpcConn(tlsconf.ClientFiles{CAFile: caFile, CertFile: clientCert, KeyFile: clientKey}))
	created, err := api.CreateTeam(actx, &adminv1.CreateTeamRequest{Name: "tls"})
	if err != nil {
		t.Fatalf("gRPC with a client certificate: %v", err)
	}
	team := created.GetTeam()
	filters, err := structOf(`{"groups":[{"properties":[],"rollout_percentage":100}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.CreateFlag(actx, &adminv1.CreateFlagRequest{TeamId: team.GetId(), Flag: &adminv1.FlagInput{Key: "over-tls", Name: "over TLS", Active: true, Filters: filters}}); err != nil {
		t.Fatal(err)
	}

	_, err = adminv1.NewAdminServiceClient(grpcConn(tlsconf.ClientFiles{CAFile: caFile})).ListTeams(actx, &adminv1.ListTeamsRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("gRPC without a client certificate: %v, want Unavailable (the handshake refused)", err)
	}

	httpsClient := func(caFile string) *http.Client {
		cfg, err := tlsconf.Client(tlsconf.ClientFiles{CAFile: caFile}, tlsconf.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	}
	post := func(client *http.Client, path, auth, body string) (*http.Response, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.httpURL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		res, err := client.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res, string(b), err
	}
	good := httpsClient(caFile)
	// The flag reaches evaluation through the change notices: poll.
	polltest.Eventually(t, time.Minute, func() error {
		res, body, err := post(good, "/flags/?v=2", "", `{"token":"`+team.GetApiToken()+`","distinct_id":"u1"}`)
		if err != nil {
			return err
		}
		if res.StatusCode != 200 || !strings.Contains(body, `"key":"over-tls","enabled":true`) {
			return errors.New("/flags: " + res.Status + " " + body)
		}
		return nil
	})
	res, body, err := post(good, "/api/evaluate", team.GetApiToken(), `{"distinct_id":"u1"}`)
	if err != nil || res.StatusCode != 200 || !strings.Contains(body, `"over-tls"`) {
		t.Fatalf("/api/evaluate over HTTPS (the gateway dials gRPC in process): %v %v %s", res, err, body)
	}
	ectx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+team.GetApiToken())
	ev, err := evalv1.NewEvalServiceClient(grpcConn(tlsconf.ClientFiles{CAFile: caFile, CertFile: clientCert, KeyFile: clientKey})).
		Evaluate(ectx, &evalv1.EvaluateRequest{Token: team.GetApiToken(), DistinctId: ptr("u1")})
	if err != nil || len(ev.GetFlags()) != 1 || !ev.GetFlags()[0].GetEnabled() {
		t.Fatalf("gRPC Evaluate with a client certificate: %v %v", ev, err)
	}
	if code, out, stderr := runCmd(t, "keys", "list", "--url", n.httpURL, "--key", personal, "--ca-file", caFile); code != 0 || !strings.Contains(out, "personal") {
		t.Fatalf("vexil keys list --url https:// --ca-file: %d %q %s", code, out, stderr)
	}
	if code, _, stderr := runCmd(t, "keys", "list", "--url", n.httpURL, "--key", personal); code == 0 || !strings.Contains(stderr, "certificate") {
		t.Fatalf("vexil keys list --url https:// without the CA: %d %s", code, stderr)
	}

	importArgs := []string{"import", "--grpc-addr", n.adminSrv.GRPCAddr(), "--file", "../../admin/testdata/posthog_local_eval.json",
		"--team", fmt.Sprint(team.GetId()), "--key", personal, "--dry-run", "--ca-file", caFile}
	if code, _, stderr := runCmd(t, append(importArgs, "--client-cert", clientCert, "--client-key", clientKey)...); code != 0 {
		t.Fatalf("vexil import over gRPC with a client certificate: %d %s", code, stderr)
	}
	if code, _, _ := runCmd(t, importArgs...); code == 0 {
		t.Fatal("vexil import without a client certificate was served")
	}

	_, _, err = post(httpsClient(otherFile), "/flags/?v=2", "", `{}`)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("HTTPS trusting another CA: %v, want x509.UnknownAuthorityError", err)
	}
	plain, err := http.Post(strings.Replace(n.httpURL, "https", "http", 1)+"/flags/?v=2", "application/json", strings.NewReader(`{}`))
	if err == nil {
		plain.Body.Close()
		if plain.StatusCode == 200 {
			t.Fatal("plaintext HTTP was served on the TLS port")
		}
	}

	// Rotation: the new pair is served within the check interval (a
	// second), to new connections, without a restart.
	ca.Issue(t, tlstest.Spec{CommonName: "second"}).Write(t, dir, "server")
	polltest.Eventually(t, time.Minute, func() error {
		conn, err := tls.Dial("tcp", strings.TrimPrefix(n.httpURL, "https://"), &tls.Config{RootCAs: poolOf(t, ca), ServerName: "127.0.0.1"})
		if err != nil {
			return err
		}
		defer conn.Close()
		if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "second" {
			return errors.New("served " + cn + ", want second")
		}
		return nil
	})
}

func poolOf(t *testing.T, ca *tlstest.CA) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

func ptr[T any](v T) *T { return &v }
