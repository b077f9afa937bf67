package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/pebblecatalog"
)

func init() {
	register(&command{
		name:    "keys",
		summary: "create, list or revoke personal API keys, through a running node's API or on a stopped data directory",
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
	// Another process holds the lock (fcntl: EAGAIN, or EACCES on some
	// systems): a server runs on the directory.
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) {
		return nil, fmt.Errorf("the catalog in %s is locked: a server is running on it; go through its management API with -url http://HOST:PORT -key phx_... (%w)", catalogDir(data), err)
	}
	if err != nil {
		return nil, fmt.Errorf("open the catalog in %s: %w", catalogDir(data), err)
	}
	return c, nil
}

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, "Usage: vexil keys create|list|revoke (--url http://HOST:PORT --key phx_... | --data-dir DIR) [flags]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "With --url, goes through a running node's management API with a personal key (team:admin;")
		fmt.Fprintln(stderr, "--key defaults to $"+apiKeyEnv+"); without it, works on a stopped server's data directory.")
		fmt.Fprintln(stderr, "  create  --scopes S1,S2 (or '*') [--teams 1,2] [--label L]: prints the new secret, shown once")
		fmt.Fprintln(stderr, "  list    [--team N]: keys reaching team N (0: instance-wide keys)")
		fmt.Fprintln(stderr, "  revoke  --id key_...")
		fmt.Fprintln(stderr, "  login-link (with --url): prints a single-use link that signs the web UI in with --key, valid a few minutes")
	}
	sub, args, err := subcommand(args, usage, "create, list, revoke or login-link")
	if sub == "" {
		return err
	}
	fs := newFlagSet("keys "+sub, stderr)
	data := fs.String("data-dir", ".data", "the server's data directory (without -url)")
	api := bindAPIFlags(fs)
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
	case "login-link":
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
	var teamIDs []int64
	var sc []string
	switch sub {
	case "create":
		for t := range strings.SplitSeq(*teams, ",") {
			if t = strings.TrimSpace(t); t == "" {
				continue
			}
			n, err := strconv.ParseInt(t, 10, 64)
			if err != nil || n <= 0 {
				return &usageError{msg: fmt.Sprintf("--teams: %q is not a team id", t)}
			}
			teamIDs = append(teamIDs, n)
		}
		for s := range strings.SplitSeq(*scopes, ",") {
			if s = strings.TrimSpace(s); s != "" {
				if !admin.ValidScope(s) {
					return &usageError{msg: fmt.Sprintf("--scopes: unknown scope %q", s)}
				}
				sc = append(sc, s)
			}
		}
	case "list":
		if *team < 0 {
			return &usageError{msg: fmt.Sprintf("--team: %d is not a team id", *team)}
		}
	case "revoke":
		if *id == "" {
			return &usageError{msg: "--id is required"}
		}
	}
	client, err := api.client()
	if err != nil {
		return err
	}
	if sub == "login-link" {
		if client == nil {
			return &usageError{msg: "login-link needs --url: the link is held by the running node"}
		}
		return loginLinkThroughAPI(ctx, client, stdout)
	}
	if client != nil {
		return keysThroughAPI(ctx, client, sub, teamIDs, sc, label, team, id, stdout, stderr)
	}
	cat, err := openCatalog(*data)
	if err != nil {
		return err
	}
	defer cat.Close()
	switch sub {
	case "create":
		for _, n := range teamIDs {
			if _, err := cat.GetTeam(ctx, n); err != nil {
				return fmt.Errorf("team %d: %w", n, err)
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
			printKey(stdout, k.ID, string(k.Kind), k.Prefix, k.Scopes, k.Revoked(), k.Label)
		}
	case "revoke":
		if _, err := cat.RevokeKey(ctx, *id, catalog.Change{Actor: "cli"}); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "revoked %s\n", *id)
	}
	return nil
}

// printKey writes one line of "vexil keys list".
func printKey(w io.Writer, id, kind, prefix string, scopes []string, revoked bool, label string) {
	state := "active"
	if revoked {
		state = "revoked"
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", id, kind, prefix, strings.Join(scopes, ","), state, label)
}

// keysThroughAPI runs a keys subcommand against a running node.
func keysThroughAPI(ctx context.Context, c *apiClient, sub string, teams []int64, scopes []string, label *string, team *int64, id *string,
	stdout, stderr io.Writer) error {
	switch sub {
	case "create":
		var out struct {
			Key    apiKeyJSON `json:"key"`
			Secret string     `json:"secret"`
		}
		body := map[string]any{"scopes": scopes, "teams": teams, "label": *label}
		if err := c.do(ctx, http.MethodPost, "/api/personal_api_keys", body, &out); err != nil {
			return err
		}
		if out.Secret == "" {
			return errors.New("management API: the answer carries no secret")
		}
		fmt.Fprintf(stderr, "created key %s (%s), scopes %s; the secret below is shown once\n", out.Key.ID, out.Key.Prefix, strings.Join(out.Key.Scopes, ","))
		fmt.Fprintln(stdout, out.Secret)
	case "list":
		var out struct {
			Keys []apiKeyJSON `json:"keys"`
		}
		if err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/projects/%d/api_keys", *team), nil, &out); err != nil {
			return err
		}
		for _, k := range out.Keys {
			printKey(stdout, k.ID, k.Kind, k.Prefix, k.Scopes, k.Revoked, k.Label)
		}
	case "revoke":
		if err := c.do(ctx, http.MethodDelete, "/api/personal_api_keys/"+url.PathEscape(*id), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "revoked %s\n", *id)
	}
	return nil
}

// subcommand splits args into a subcommand and its arguments. Without one
// it prints usage and returns an empty sub with a usage error, or with nil
// when help was asked for.
func subcommand(args []string, usage func(), want string) (sub string, rest []string, err error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		usage()
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return "", nil, nil
		}
		return "", nil, &usageError{msg: "a subcommand is required: " + want}
	}
	return args[0], args[1:], nil
}
