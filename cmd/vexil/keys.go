package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/pebblecatalog"
)

func init() {
	register(&command{
		name:    "keys",
		summary: "create, list or revoke personal API keys on a data directory (bootstrap)",
		run:     runKeys,
	})
}

// catalogDir and storeDir are where a data directory keeps the catalog
// and the persons store.
func catalogDir(data string) string { return filepath.Join(data, "catalog") }

func storeDir(data string) string { return filepath.Join(data, "store") }

func openCatalog(data string) (catalog.Catalog, error) {
	if data == "" {
		return nil, &usageError{msg: "--data-dir is required"}
	}
	c, err := pebblecatalog.Open(pebblecatalog.Config{Dir: catalogDir(data)})
	if err != nil {
		return nil, fmt.Errorf("open the catalog in %s: %w", catalogDir(data), err)
	}
	return c, nil
}

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, "Usage: vexil keys create|list|revoke --data-dir DIR [flags]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Works on a stopped server's data directory (the catalog is locked while one runs).")
		fmt.Fprintln(stderr, "  create  --scopes S1,S2 (or '*') [--teams 1,2] [--label L]: prints the new secret, shown once")
		fmt.Fprintln(stderr, "  list    [--team N]: keys reaching team N (0: instance-wide keys)")
		fmt.Fprintln(stderr, "  revoke  --id key_...")
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		usage()
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return nil
		}
		return &usageError{msg: "a subcommand is required: create, list or revoke"}
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("keys "+sub, stderr)
	data := fs.String("data-dir", ".data", "the server's data directory")
	var scopes, teams, label, id *string
	var team *int64
	switch sub {
	case "create":
		scopes = fs.String("scopes", admin.ScopeAll, "comma-separated scopes ("+strings.Join(admin.Scopes, ", ")+"), or '*'")
		teams = fs.String("teams", "", "comma-separated team ids the key reaches; empty: every team (instance-wide)")
		label = fs.String("label", "bootstrap", "a label to recognise the key")
	case "list":
		team = fs.Int64("team", 0, "team id (0: the instance-wide keys)")
	case "revoke":
		id = fs.String("id", "", "the key id (key_...)")
	default:
		usage()
		return &usageError{msg: fmt.Sprintf("unknown subcommand %q", sub)}
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	cat, err := openCatalog(*data)
	if err != nil {
		return err
	}
	defer cat.Close()
	switch sub {
	case "create":
		var teamIDs []int64
		for t := range strings.SplitSeq(*teams, ",") {
			if t = strings.TrimSpace(t); t == "" {
				continue
			}
			n, err := strconv.ParseInt(t, 10, 64)
			if err != nil || n <= 0 {
				return &usageError{msg: fmt.Sprintf("--teams: %q is not a team id", t)}
			}
			if _, err := cat.GetTeam(ctx, n); err != nil {
				return fmt.Errorf("team %d: %w", n, err)
			}
			teamIDs = append(teamIDs, n)
		}
		var sc []string
		for s := range strings.SplitSeq(*scopes, ",") {
			if s = strings.TrimSpace(s); s != "" {
				if !admin.ValidScope(s) {
					return &usageError{msg: fmt.Sprintf("--scopes: unknown scope %q", s)}
				}
				sc = append(sc, s)
			}
		}
		k, secret, err := admin.CreatePersonalKey(ctx, cat, teamIDs, sc, *label, "cli")
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "created key %s (%s), scopes %s; the secret below is shown once\n", k.ID, k.Prefix, strings.Join(k.Scopes, ","))
		fmt.Fprintln(stdout, secret)
	case "list":
		keys, err := cat.ListKeys(ctx, *team)
		if err != nil {
			return err
		}
		for _, k := range keys {
			state := "active"
			if k.Revoked() {
				state = "revoked"
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Kind, k.Prefix, strings.Join(k.Scopes, ","), state, k.Label)
		}
	case "revoke":
		if *id == "" {
			return &usageError{msg: "--id is required"}
		}
		if _, err := cat.RevokeKey(ctx, *id, catalog.Change{Actor: "cli"}); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "revoked %s\n", *id)
	}
	return nil
}
