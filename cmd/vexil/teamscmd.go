package main

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/catalog"
)

func init() {
	register(&command{
		name:    "teams",
		summary: "list or create teams, through a running node's API or on a stopped data directory",
		run:     runTeams,
	})
}

func runTeams(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, "Usage: vexil teams list|create (--url http://HOST:PORT --key phx_... | --data-dir DIR) [flags]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "With --url, goes through a running node's management API with a personal key (--key defaults")
		fmt.Fprintln(stderr, "to $"+apiKeyEnv+"; create needs an instance-wide key with team:admin); without it, works on")
		fmt.Fprintln(stderr, "a stopped server's data directory.")
		fmt.Fprintln(stderr, "  list")
		fmt.Fprintln(stderr, "  create  --name N [--timezone TZ]: prints the project token, and the secure key once")
	}
	sub, args, err := subcommand(args, usage, "list or create")
	if sub == "" {
		return err
	}
	fs := newFlagSet("teams "+sub, stderr)
	data := fs.String("data-dir", ".data", "the server's data directory (without -url)")
	api := bindAPIFlags(fs)
	var name, tz *string
	switch sub {
	case "list":
	case "create":
		name = fs.String("name", "", "the team's name (required, at most 200 bytes)")
		tz = fs.String("timezone", "", "IANA time zone of dates written without an offset; empty is UTC")
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
	if sub == "create" && (*name == "" || len(*name) > 200) {
		return &usageError{msg: "--name is required, at most 200 bytes"}
	}
	client, err := api.client()
	if err != nil {
		return err
	}
	if client != nil {
		return teamsThroughAPI(ctx, client, sub, name, tz, stdout, stderr)
	}
	cat, err := openCatalog(*data)
	if err != nil {
		return err
	}
	defer cat.Close()
	switch sub {
	case "list":
		teams, err := cat.ListTeams(ctx)
		if err != nil {
			return err
		}
		for _, t := range teams {
			token, err := projectToken(ctx, cat, t.ID)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%d\t%s\t%s\n", t.ID, token, t.Name)
		}
	case "create":
		t, token, secure, err := admin.CreateTeam(ctx, cat, catalog.Team{Name: *name, Timezone: *tz}, "cli")
		if err != nil {
			return err
		}
		printCreatedTeam(stdout, stderr, t.ID, t.Name, token, secure)
	}
	return nil
}

// projectToken returns the team's current project token ("" if none).
func projectToken(ctx context.Context, keys catalog.Keys, team int64) (string, error) {
	ks, err := keys.ListKeys(ctx, team)
	if err != nil {
		return "", err
	}
	for _, k := range ks {
		if k.Kind == catalog.KeyProjectToken && !k.Revoked() {
			return k.Prefix, nil // a project token is public: Prefix is its whole text
		}
	}
	return "", nil
}

func printCreatedTeam(stdout, stderr io.Writer, id int64, name, token, secure string) {
	fmt.Fprintf(stderr, "created team %d (%s); its secure key (local evaluation) is shown once\n", id, name)
	fmt.Fprintf(stdout, "team_id\t%d\nproject_token\t%s\nsecure_key\t%s\n", id, token, secure)
}

// teamsThroughAPI runs a teams subcommand against a running node.
func teamsThroughAPI(ctx context.Context, c *apiClient, sub string, name, tz *string, stdout, stderr io.Writer) error {
	switch sub {
	case "list":
		var out struct {
			Teams []apiTeamJSON `json:"teams"`
		}
		if err := c.do(ctx, http.MethodGet, "/api/projects", nil, &out); err != nil {
			return err
		}
		for _, t := range out.Teams {
			fmt.Fprintf(stdout, "%d\t%s\t%s\n", t.ID, t.APIToken, t.Name)
		}
	case "create":
		var out struct {
			Team      apiTeamJSON `json:"team"`
			SecureKey string      `json:"secure_key"`
		}
		if err := c.do(ctx, http.MethodPost, "/api/projects", map[string]any{"name": *name, "timezone": *tz}, &out); err != nil {
			return err
		}
		printCreatedTeam(stdout, stderr, out.Team.ID, out.Team.Name, out.Team.APIToken, out.SecureKey)
	}
	return nil
}
