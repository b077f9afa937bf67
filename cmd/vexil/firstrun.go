package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/catalog"
)

// firstKeyFile is where the node that creates the first key writes it,
// in its data directory, readable by its owner only.
const firstKeyFile = "first-key"

// firstKeyStale is how long creating the first key may take before
// another node takes the job over (it takes a few catalog writes).
const firstKeyStale = time.Minute

// firstKeyInfo is the result of the first-key marker: which key was
// created (never its secret, which only the creating node shows).
type firstKeyInfo struct {
	ID     string `json:"id"`
	Prefix string `json:"prefix"`
}

// bootstrapFirstKey makes a first run usable: on an empty cluster (no
// team, no instance-wide key) it creates, once for the whole cluster,
// an instance-wide personal API key with every scope, prints it on stdout
// and writes it to <data-dir>/first-key (mode 0600). Of several nodes
// starting at once, one creates it (the catalog's first-key marker); the
// others log which key it was. It returns the secret when this node
// created the key.
func bootstrapFirstKey(ctx context.Context, cat catalog.Catalog, dataDir, httpURL string, stdout io.Writer, log *slog.Logger) (string, error) {
	if _, err := cat.GetMarker(ctx, markerFirstKey); err == nil {
		return "", nil // created before, or being created
	} else if !errors.Is(err, catalog.ErrNotFound) {
		return "", err
	}
	teams, err := cat.ListTeams(ctx)
	if err != nil {
		return "", err
	}
	keys, err := cat.ListKeys(ctx, 0)
	if err != nil {
		return "", err
	}
	if len(teams) > 0 || len(keys) > 0 {
		return "", nil // not a first run: someone has keys already
	}
	var secret string
	raw, ran, err := newClusterOnce(cat, markerFirstKey, firstKeyStale).do(ctx, func(ctx context.Context) (json.RawMessage, error) {
		k, s, err := admin.CreatePersonalKey(ctx, cat, nil, []string{admin.ScopeAll}, "first run", "vexil serve")
		if err != nil {
			return nil, err
		}
		secret = s
		return json.Marshal(firstKeyInfo{ID: k.ID, Prefix: k.Prefix})
	})
	if err != nil {
		return "", fmt.Errorf("first key: %w", err)
	}
	var info firstKeyInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return "", fmt.Errorf("first key: the marker: %w", err)
	}
	if !ran {
		log.Info("another node created the first key; it printed it and wrote it to its data directory", "key", info.ID, "prefix", info.Prefix)
		return "", nil
	}
	path := filepath.Join(dataDir, firstKeyFile)
	werr := writeSecretFile(path, secret)
	printFirstKey(stdout, secret, info.ID, path, werr == nil, httpURL)
	if werr != nil {
		log.Warn("the first key is printed but could not be written to a file", "path", path, "err", werr)
	}
	return secret, nil
}

// writeSecretFile writes secret to a new file of mode 0600 (an existing
// file is replaced by a new one, so no wider mode survives).
func writeSecretFile(path, secret string) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(secret + "\n"); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func printFirstKey(w io.Writer, secret, id, path string, written bool, httpURL string) {
	kept := "It is shown this once and kept in " + path + " (mode 0600); delete that file once you have stored it."
	if !written {
		kept = "It is shown this once (it could not be written to " + path + ")."
	}
	fmt.Fprintf(w, `
First start of an empty Vexil: created the instance-wide personal API key %s
(every scope). %s

  %s

Create a team (it prints the project token for the SDKs) and more keys with it:

  export %s=%s
  vexil teams create --url %s --name "My project"
  vexil keys create --url %s --scopes flag:read,flag:write --teams 1

`, id, kept, secret, apiKeyEnv, secret, httpURL, httpURL)
}
