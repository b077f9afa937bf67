package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
)

func writeConfig(t *testing.T, doc string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vexil.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func parseServe(args ...string) (config.Config, error) {
	fs := flag.NewFlagSet("vexil serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return parseConfig(fs, args, config.Default(), bindServeFlags)
}

// TestConfigPrecedence: defaults, then the file, then the flags given.
func TestConfigPrecedence(t *testing.T) {
	path := writeConfig(t, `
http-addr: 127.0.0.1:9000
grpc-addr: 127.0.0.1:9001
scylla:
  hosts: [file-a, file-b]
  keyspace: fromfile
eval:
  store-timeout: 2s
precompute:
  enabled: false
demo:
  persons: 5
`)
	c, err := parseServe("--config", path, "--grpc-addr", "127.0.0.1:7001", "--scylla-hosts", "flag-a", "--precompute=true", "--store-timeout", "3s")
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	want.HTTPAddr = "127.0.0.1:9000"         // file
	want.GRPCAddr = "127.0.0.1:7001"         // flag over file
	want.Scylla.Hosts = []string{"flag-a"}   // flag over file
	want.Scylla.Keyspace = "fromfile"        // file
	want.Eval.StoreTimeout = 3 * time.Second // flag over file
	want.Precompute.Enabled = true           // flag over file
	want.Demo.Persons = 5                    // file
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got\n%+v\nwant\n%+v", c, want)
	}

	// The order of --config among the flags does not matter.
	c2, err := parseServe("--grpc-addr", "127.0.0.1:7001", "--scylla-hosts", "flag-a", "--precompute=true", "--store-timeout", "3s", "--config", path)
	if err != nil || !reflect.DeepEqual(c2, want) {
		t.Errorf("--config last: %+v, %v", c2, err)
	}

	// Without a file, flags over defaults.
	c3, err := parseServe("--demo-flags", "7")
	if err != nil || c3.Demo.Flags != 7 || c3.HTTPAddr != "127.0.0.1:8000" {
		t.Errorf("flags only: %+v, %v", c3, err)
	}
}

func TestConfigErrors(t *testing.T) {
	good := writeConfig(t, "log-level: warn\n")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown key", []string{"--config", writeConfig(t, "nats:\n  urll: nats://x\n")}, `line 2: unknown key "nats.urll"`},
		{"missing file", []string{"--config", filepath.Join(t.TempDir(), "none.yaml")}, "no such file"},
		{"bad value in the file names key and flag", []string{"--config", writeConfig(t, "eval:\n  store-timeout: -1s\n")},
			"config: eval.store-timeout (-store-timeout): -1s out of range"},
		{"bad flag names key and flag", []string{"--config", good, "--scylla-replication", "0"},
			"config: scylla.replication (-scylla-replication): 0 out of range"},
		{"bad key without a flag of this command", []string{"--config", writeConfig(t, "precompute:\n  concurrency: 5000\n")},
			"config: precompute.concurrency: 5000 out of range"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseServe(tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if _, ok := err.(*usageError); !ok {
				t.Errorf("error %T, want a *usageError (exit status 2)", err)
			}
		})
	}
}

// TestConfigCommands runs the commands with a configuration that fails,
// through run: exit status 2 and the key on stderr.
func TestConfigCommands(t *testing.T) {
	bad := writeConfig(t, "demo:\n  flags: -1\nnats:\n  listen: nowhere\n")
	for _, cmd := range []string{"serve", "precompute", "admin"} {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{cmd, "--config", bad}, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), "demo.flags") || !strings.Contains(errb.String(), "nats.listen") {
			t.Errorf("%s: exit %d, stderr %q; want 2 naming demo.flags and nats.listen", cmd, code, errb.String())
		}
	}
	// precompute takes its cluster from the file.
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"precompute", "--config", writeConfig(t, "scylla:\n  hosts: [a]\n")}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "-nats-url and -scylla-hosts are required") {
		t.Errorf("precompute without nats.url: exit %d, stderr %q", code, errb.String())
	}
}

// TestServeHelpListsFlags: -h lists every flag with its default, and
// --config.
func TestServeHelpListsFlags(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"serve", "-h"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"-config", "-data-dir", `(default ".data")`, "-http-addr", "-nats-url", "-scylla-hosts",
		"-store-timeout", "(default 50ms)", "-precompute", "-demo-persons", "(default 10000)", "-gc-percent"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("serve -h does not mention %q:\n%s", want, errb.String())
		}
	}
}

// TestFlagKeysExist: every flag of every command names a key the file
// knows, so errors and the documentation point at real keys.
func TestFlagKeysExist(t *testing.T) {
	for name, bind := range map[string]func(configFlags, *config.Config){
		"serve": bindServeFlags, "precompute": bindPrecomputeFlags, "admin": bindAdminFlags,
	} {
		keys := map[string]string{}
		c := config.Default()
		bind(configFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError), keys: keys}, &c)
		for key, fl := range keys {
			doc := key + ": null\n"
			if k, sub, nested := strings.Cut(key, "."); nested {
				doc = k + ":\n  " + sub + ": null\n"
			}
			c := config.Default()
			if err := config.Decode(strings.NewReader(doc), &c); err != nil {
				t.Errorf("%s -%s: key %q: %v", name, fl, key, err)
			}
		}
	}
}

// TestApplyMemoryLimit: memory-limit-mb sets the Go memory limit unless
// GOMEMLIMIT is set, which wins; 0 sets none.
func TestApplyMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	c, err := parseServe("--memory-limit-mb", "512")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOMEMLIMIT", "")
	applyMemoryLimit(c)
	if got := debug.SetMemoryLimit(-1); got != 512<<20 {
		t.Errorf("limit %d, want %d", got, 512<<20)
	}
	debug.SetMemoryLimit(old)
	t.Setenv("GOMEMLIMIT", "1GiB")
	applyMemoryLimit(c)
	if got := debug.SetMemoryLimit(-1); got != old {
		t.Errorf("with GOMEMLIMIT set: limit %d, want it unchanged (%d)", got, old)
	}
	t.Setenv("GOMEMLIMIT", "")
	c.MemoryLimitMB = 0
	applyMemoryLimit(c)
	if got := debug.SetMemoryLimit(-1); got != old {
		t.Errorf("memory-limit-mb 0: limit %d, want it unchanged (%d)", got, old)
	}
}
