package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRunDispatch(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"no args prints help", nil, 0, "Commands:", ""},
		{"help lists version", []string{"help"}, 0, "version", ""},
		{"version", []string{"version"}, 0, "vexil dev", ""},
		{"unknown command", []string{"nope"}, 2, "", `unknown command "nope"`},
		{"bad flag", []string{"version", "-bogus"}, 2, "", "flag provided but not defined"},
		{"precompute needs a cluster", []string{"precompute"}, 2, "", "-nats-url and -scylla-hosts are required"},
		{"help lists precompute", []string{"help"}, 0, "precompute", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), c.args, &out, &errb)
			if code != c.wantCode {
				t.Fatalf("exit code %d, want %d (stderr %q)", code, c.wantCode, errb.String())
			}
			if !strings.Contains(out.String(), c.wantOut) {
				t.Errorf("stdout %q does not contain %q", out.String(), c.wantOut)
			}
			if !strings.Contains(errb.String(), c.wantErr) {
				t.Errorf("stderr %q does not contain %q", errb.String(), c.wantErr)
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8000": true, "localhost:0": true, "[::1]:80": true, "127.3.4.5:1": true,
		"0.0.0.0:8000": false, ":8000": false, "10.0.0.1:80": false, "example.com:80": false, "nonsense": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
