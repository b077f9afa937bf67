package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/memcatalog"
)

// Two nodes start at once on an empty cluster: one instance-wide key is
// created, printed by the node that created it and written to its data
// directory with mode 0600; later starts create none.
func TestFirstKeyOnce(t *testing.T) {
	cat := memcatalog.New(memcatalog.Config{})
	t.Cleanup(func() { _ = cat.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	const nodes = 2
	dirs := make([]string, nodes)
	outs := make([]bytes.Buffer, nodes)
	secrets := make([]string, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		dirs[i] = t.TempDir()
		wg.Go(func() {
			secrets[i], errs[i] = bootstrapFirstKey(t.Context(), cat, dirs[i], "http://127.0.0.1:8000", &outs[i], log)
		})
	}
	wg.Wait()
	creator := -1
	for i := range nodes {
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i, errs[i])
		}
		if secrets[i] != "" {
			if creator >= 0 {
				t.Fatalf("nodes %d and %d both created a first key", creator, i)
			}
			creator = i
		}
	}
	if creator < 0 {
		t.Fatal("no node created the first key")
	}
	secret := secrets[creator]
	keys, err := cat.ListKeys(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].Kind != catalog.KeyPersonal || len(keys[0].Scopes) != 1 || keys[0].Scopes[0] != admin.ScopeAll ||
		!bytes.Equal(keys[0].Hash, admin.HashSecret(secret)) {
		t.Fatalf("instance-wide keys %+v, want the one printed", keys)
	}
	if !strings.Contains(outs[creator].String(), secret) || outs[1-creator].Len() != 0 {
		t.Errorf("printed %q and %q; want the secret from the creator only", outs[creator].String(), outs[1-creator].String())
	}
	path := filepath.Join(dirs[creator], firstKeyFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(path); string(b) != secret+"\n" {
		t.Errorf("%s holds %q", path, b)
	}
	if _, err := os.Stat(filepath.Join(dirs[1-creator], firstKeyFile)); !os.IsNotExist(err) {
		t.Errorf("the other node wrote a key file too: %v", err)
	}

	// A later start, even after the key was revoked, creates none.
	if _, err := cat.RevokeKey(t.Context(), keys[0].ID, catalog.Change{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if s, err := bootstrapFirstKey(t.Context(), cat, t.TempDir(), "http://127.0.0.1:8000", &out, log); err != nil || s != "" || out.Len() != 0 {
		t.Fatalf("restart: %q %v, printed %q", s, err, out.String())
	}
}

// A cluster with a team or a key is not a first run, marker or not.
func TestFirstKeyNotOnAUsedCluster(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for name, fill := range map[string]func(catalog.Catalog) error{
		"team": func(c catalog.Catalog) error {
			_, err := c.CreateTeam(t.Context(), catalog.Team{Name: "t"}, catalog.Change{Actor: "test"})
			return err
		},
		"key": func(c catalog.Catalog) error {
			_, _, err := admin.CreatePersonalKey(t.Context(), c, nil, []string{admin.ScopeAll}, "ops", "cli")
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			cat := memcatalog.New(memcatalog.Config{})
			t.Cleanup(func() { _ = cat.Close() })
			if err := fill(cat); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			var out bytes.Buffer
			if s, err := bootstrapFirstKey(t.Context(), cat, dir, "http://127.0.0.1:8000", &out, log); err != nil || s != "" || out.Len() != 0 {
				t.Fatalf("%q %v, printed %q", s, err, out.String())
			}
			if _, err := os.Stat(filepath.Join(dir, firstKeyFile)); !os.IsNotExist(err) {
				t.Errorf("key file written: %v", err)
			}
		})
	}
}
