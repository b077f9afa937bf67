package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/polltest"
)

// startServe runs "vexil serve" on dir with free ports and returns its
// HTTP address, its stdout and a stop function.
func startServe(t *testing.T, dir string, args ...string) (string, *syncBuffer, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, logs syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
			"--nats-listen", "127.0.0.1:-1", "--precompute=false"}, args...), &out, &logs)
	}()
	re := regexp.MustCompile(`msg="vexil is serving" http=(127\.0\.0\.1:\d+)`)
	var addr string
	polltest.Eventually(t, time.Minute, func() error {
		select {
		case code := <-done:
			cancel()
			t.Fatalf("serve exited %d: %s", code, logs.String())
		default:
		}
		m := re.FindStringSubmatch(logs.String())
		if m == nil {
			return fmt.Errorf("serve logged no HTTP address: %q", logs.String())
		}
		addr = m[1]
		return nil
	})
	stopped := false
	return addr, &out, func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exit %d: %s", code, logs.String())
		}
	}
}

// The first run of serve on an empty data directory prints an
// instance-wide key and writes it to a 0600 file; with it, vexil teams and
// vexil keys work against the running node through the management API,
// while the data directory itself is locked (and says to use -url).
func TestServeFirstRun(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	t.Setenv(apiKeyEnv, "")
	dir := t.TempDir()
	addr, out, stop := startServe(t, dir)
	defer stop()
	keyRE := regexp.MustCompile(`phx_[0-9a-f]{64}`)
	var first string
	polltest.Eventually(t, time.Minute, func() error {
		if first = keyRE.FindString(out.String()); first == "" {
			return fmt.Errorf("no key printed yet: %q", out.String())
		}
		return nil
	})
	b, err := os.ReadFile(filepath.Join(dir, firstKeyFile))
	if err != nil || strings.TrimSpace(string(b)) != first {
		t.Fatalf("key file: %q %v, want the printed key", b, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, firstKeyFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}

	url := "http://" + addr
	code, stdout, stderr := runCmd(t, "teams", "create", "--url", url, "--key", first, "--name", "Acme")
	m := regexp.MustCompile(`team_id\t(\d+)\nproject_token\t(phc_[0-9a-f]{64})\nsecure_key\t(phs_[0-9a-f]{64})\n`).FindStringSubmatch(stdout)
	if code != 0 || m == nil {
		t.Fatalf("teams create: %d %q %q", code, stdout, stderr)
	}
	team, token := m[1], m[2]
	code, stdout, stderr = runCmd(t, "teams", "list", "--url", url, "--key", first)
	if code != 0 || stdout != team+"\t"+token+"\tAcme\n" {
		t.Fatalf("teams list: %d %q %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "keys", "create", "--url", url, "--key", first, "--scopes", "flag:read", "--teams", team, "--label", "reader")
	reader := keyRE.FindString(stdout)
	readerID := regexp.MustCompile(`key_[0-9a-f]+`).FindString(stderr)
	if code != 0 || reader == "" || readerID == "" {
		t.Fatalf("keys create: %d %q %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "keys", "list", "--url", url, "--key", first, "--team", team)
	if code != 0 || !strings.Contains(stdout, readerID+"\tpersonal\t"+reader[:12]+"\tflag:read\tactive\treader\n") {
		t.Fatalf("keys list: %d %q %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "keys", "list", "--url", url, "--key", first, "--team", "0")
	if code != 0 || !strings.Contains(stdout, "\tpersonal\t"+first[:12]+"\t*\tactive\tfirst run\n") {
		t.Fatalf("keys list of the instance-wide keys: %d %q %q", code, stdout, stderr)
	}
	// The reader may not create keys: the API's refusal is shown with its code.
	code, _, stderr = runCmd(t, "keys", "create", "--url", url, "--key", reader, "--scopes", "flag:read")
	if code != 1 || !strings.Contains(stderr, "403") || !strings.Contains(stderr, "permission_denied") {
		t.Errorf("keys create with a reader: %d %q", code, stderr)
	}
	if code, _, stderr = runCmd(t, "keys", "revoke", "--url", url, "--key", first, "--id", readerID); code != 0 {
		t.Fatalf("keys revoke: %d %q", code, stderr)
	}
	code, stdout, _ = runCmd(t, "keys", "list", "--url", url, "--key", first, "--team", team)
	if code != 0 || !strings.Contains(stdout, readerID+"\tpersonal\t"+reader[:12]+"\tflag:read\trevoked\treader\n") {
		t.Errorf("keys list after revoke: %d %q", code, stdout)
	}
	// The data directory is the running node's: another process is told
	// to go through the API.
	code, _, stderr = runSubprocess(t, "keys", "create", "--data-dir", dir)
	if code != 1 || !strings.Contains(stderr, "locked") || !strings.Contains(stderr, "-url") {
		t.Errorf("keys create on a running node's data dir: %d %q", code, stderr)
	}
	for _, args := range [][]string{
		{"keys", "list", "--url", url},                       // no key
		{"keys", "list", "--url", "ftp://x", "--key", first}, // not http
		{"teams", "create", "--url", url, "--key", first},    // no name
		{"teams", "frobnicate"},
	} {
		if code, _, _ := runCmd(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	stop()

	// A restart prints no new key; offline, teams and keys see the API's work.
	addr, out, stop2 := startServe(t, dir)
	_ = addr
	stop2()
	if s := out.String(); keyRE.MatchString(s) {
		t.Errorf("a restart printed a key: %q", s)
	}
	code, stdout, _ = runCmd(t, "teams", "list", "--data-dir", dir)
	if code != 0 || stdout != team+"\t"+token+"\tAcme\n" {
		t.Errorf("teams list offline: %d %q", code, stdout)
	}
	code, stdout, stderr = runCmd(t, "teams", "create", "--data-dir", dir, "--name", "Offline")
	if code != 0 || !regexp.MustCompile(`^team_id\t\d+\nproject_token\tphc_[0-9a-f]{64}\nsecure_key\tphs_[0-9a-f]{64}\n$`).MatchString(stdout) {
		t.Errorf("teams create offline: %d %q %q", code, stdout, stderr)
	}
	if code, _, stderr := runCmd(t, "teams", "create", "--data-dir", dir, "--name", "Bad", "--timezone", "Mars/Olympus"); code != 1 || !strings.Contains(stderr, "timezone") {
		t.Errorf("teams create with a bad time zone: %d %q", code, stderr)
	}
}

// A port another process holds fails start-up with the flag to change.
func TestListenErrorsNameTheFlag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"serve", "--data-dir", t.TempDir(), "--http-addr", taken, "--grpc-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1"}, "-http-addr"},
		{[]string{"serve", "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--grpc-addr", taken, "--nats-listen", "127.0.0.1:-1"}, "-grpc-addr"},
		{[]string{"serve", "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--nats-listen", taken}, "-nats-listen"},
		{[]string{"admin", "--data-dir", t.TempDir(), "--http-addr", taken, "--grpc-addr", "127.0.0.1:0"}, "-http-addr"},
		{[]string{"admin", "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--grpc-addr", taken}, "-grpc-addr"},
		{[]string{"precompute", "--nats-url", "nats://127.0.0.1:1", "--scylla-hosts", "127.0.0.1:1", "--metrics-addr", taken}, "-metrics-addr"},
	} {
		code, _, stderr := runCmd(t, c.args...)
		if code != 1 || !strings.Contains(stderr, "in use") || !strings.Contains(stderr, "choose another with "+c.flag+" ") {
			t.Errorf("%v: exit %d, %q; want the flag %s named", c.args, code, stderr, c.flag)
		}
	}
}

// subprocessArgs is the environment variable that makes the test binary
// run vexil with these arguments (JSON) in TestVexilSubprocess.
const subprocessArgs = "VEXIL_TEST_SUBPROCESS_ARGS"

// runSubprocess runs vexil with args in another process (the test binary),
// as a user's shell would beside a running server.
func runSubprocess(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	enc, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestVexilSubprocess$")
	cmd.Env = append(os.Environ(), subprocessArgs+"="+string(enc))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// TestVexilSubprocess is vexil's main in runSubprocess's child process.
func TestVexilSubprocess(t *testing.T) {
	enc := os.Getenv(subprocessArgs)
	if enc == "" {
		t.Skip("runs only as runSubprocess's child")
	}
	var args []string
	if err := json.Unmarshal([]byte(enc), &args); err != nil {
		t.Fatal(err)
	}
	os.Exit(run(context.Background(), args, os.Stdout, os.Stderr))
}

// serve --demo prints the demo's keys (and no first key); a restart prints
// the same ones without seeding again.
func TestServeDemoRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	dir := t.TempDir()
	keysRE := regexp.MustCompile(`project token \(SDKs, /flags\):\s+(phc_[0-9a-f]{64})\s+personal API key \(management API\): (phx_[0-9a-f]{64})`)
	var printed []string
	for range 2 {
		_, out, stop := startServe(t, dir, "--demo", "--demo-persons", "20")
		polltest.Eventually(t, 5*time.Minute, func() error {
			if !keysRE.MatchString(out.String()) {
				return fmt.Errorf("the demo printed no keys yet: %q", out.String())
			}
			return nil
		})
		stop()
		if strings.Contains(out.String(), "First start") {
			t.Errorf("serve --demo created a first key too: %q", out.String())
		}
		printed = append(printed, strings.Join(keysRE.FindStringSubmatch(out.String())[1:], " "))
	}
	if printed[0] != printed[1] {
		t.Errorf("a restart printed %q, the first start %q", printed[1], printed[0])
	}
	code, stdout, _ := runCmd(t, "teams", "list", "--data-dir", dir)
	if code != 0 || strings.Count(stdout, "\n") != 1 || !strings.HasSuffix(stdout, "\tDemo\n") {
		t.Errorf("teams after two demo starts: %d %q", code, stdout)
	}
}
