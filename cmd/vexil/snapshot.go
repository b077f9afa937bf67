package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/term"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/scyllacatalog"
	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/snapshot"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/pebblestore"
	"github.com/vexil-dev/vexil/store/scyllastore"
)

func init() {
	register(&command{
		name:    "snapshot",
		summary: "snapshots of the store: create, list, inspect, verify, restore (and replay)",
		run:     runSnapshot,
	})
	register(&command{
		name:    "whatif",
		summary: "evaluate a flag definition over a snapshot, per-person results as Parquet",
		run:     runWhatIf,
	})
}

const snapshotUsage = `Usage: vexil snapshot <create|list|inspect|verify|restore> [flags]

  create   --out DIR|s3://B/P (--data-dir D | --scylla-hosts H) [--nats-url URL] [--team N]
  list     --dir ROOT
  inspect  --snapshot DIR
  verify   --snapshot DIR
  restore  --snapshot DIR|s3://B/P (--data-dir D | --scylla-hosts H) [--replace-definitions] [--replay --nats-url URL [--to-seq N | --to-time T]]

A snapshot is one directory: a Parquet file set per table and manifest.json
(format version, stream sequences, row counts, SHA-256 of every file).
"vexil snapshot <sub> -h" lists a subcommand's flags.`

func runSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, snapshotUsage)
		if len(args) == 0 {
			return &usageError{msg: "a subcommand is required"}
		}
		return nil
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "create":
		return snapshotCreate(ctx, rest, stdout, stderr)
	case "list":
		return snapshotList(rest, stdout, stderr)
	case "inspect":
		return snapshotInspect(rest, stdout, stderr)
	case "verify":
		return snapshotVerify(ctx, rest, stdout, stderr)
	case "restore":
		return snapshotRestore(ctx, rest, stdout, stderr)
	}
	fmt.Fprintln(stderr, snapshotUsage)
	return &usageError{msg: fmt.Sprintf("unknown subcommand %q", sub)}
}

// storeFlags select the store a subcommand reads or writes.
type storeFlags struct {
	dataDir, hosts, keyspace string
}

func (s *storeFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&s.dataDir, "data-dir", "", "data directory of a stopped node: its Pebble store (DIR/store)")
	fs.StringVar(&s.hosts, "scylla-hosts", "", "ScyllaDB hosts, comma-separated (instead of --data-dir)")
	fs.StringVar(&s.keyspace, "scylla-keyspace", "vexil", "ScyllaDB keyspace")
}

func (s *storeFlags) open(ctx context.Context, applySchema bool, log *slog.Logger) (store.Store, string, bool, error) {
	switch {
	case s.dataDir != "" && s.hosts != "":
		return nil, "", false, &usageError{msg: "--data-dir and --scylla-hosts exclude each other"}
	case s.dataDir != "":
		st, err := pebblestore.Open(pebblestore.Config{Dir: storeDir(s.dataDir)})
		if err != nil {
			return nil, "", false, fmt.Errorf("open the store in %s (a running node holds it: stop it, or snapshot through its management API): %w", storeDir(s.dataDir), err)
		}
		return st, "pebble", true, nil
	case s.hosts != "":
		st, err := scyllastore.Open(ctx, scyllastore.Config{Hosts: strings.Split(s.hosts, ","), Keyspace: s.keyspace,
			ApplySchema: applySchema, Logger: log.With("role", "scyllastore")})
		if err != nil {
			return nil, "", false, err
		}
		return st, "scylla", false, nil
	}
	return nil, "", false, &usageError{msg: "--data-dir or --scylla-hosts is required"}
}

// s3Flags select an S3-compatible endpoint for s3://bucket/prefix
// snapshot locations (credentials from AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY).
type s3Flags struct {
	endpoint, region string
	insecure         bool
}

func (f *s3Flags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.endpoint, "s3-endpoint", "s3.amazonaws.com", "S3-compatible endpoint (host[:port]) for s3:// locations")
	fs.StringVar(&f.region, "s3-region", "", "S3 region, when the endpoint needs one")
	fs.BoolVar(&f.insecure, "s3-insecure", false, "plain http to the S3 endpoint")
}

func (f *s3Flags) target() snapshot.S3 {
	return snapshot.S3{Endpoint: f.endpoint, Region: f.region, Insecure: f.insecure}
}

func connectJetStream(url string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, nats.Name("vexil snapshot"))
	if err != nil {
		return nil, nil, fmt.Errorf("nats: connect %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// progressBar draws a one-line bar on a terminal; elsewhere it logs a
// structured line at most every 5 s.
type progressBar struct {
	w      io.Writer
	tty    bool
	log    *slog.Logger
	last   time.Time
	what   string
	drawn  bool
	target int64
	now    func() time.Time
}

func newProgressBar(stderr io.Writer, log *slog.Logger, what string) *progressBar {
	f, ok := stderr.(*os.File)
	return &progressBar{w: stderr, tty: ok && term.IsTerminal(int(f.Fd())), log: log, what: what, now: time.Now}
}

func (p *progressBar) update(label string, done, total int64) {
	now := p.now()
	if p.tty {
		if now.Sub(p.last) < 100*time.Millisecond && done != total {
			return
		}
		p.last = now
		const width = 30
		bar := strings.Repeat("?", width)
		pct := ""
		if total > 0 {
			n := int(min(done, total) * width / total)
			bar = strings.Repeat("#", n) + strings.Repeat(".", width-n)
			pct = fmt.Sprintf(" %3d%%", min(done, total)*100/total)
		}
		fmt.Fprintf(p.w, "\r%s [%s]%s %s %d rows   ", p.what, bar, pct, label, done)
		p.drawn = true
		return
	}
	if now.Sub(p.last) < 5*time.Second {
		return
	}
	p.last = now
	p.log.Info(p.what+" progress", "at", label, "rows", done, "total", total)
}

func (p *progressBar) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

func snapshotCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("snapshot create", stderr)
	var sf storeFlags
	sf.bind(fs)
	out := fs.String("out", "", "snapshot directory to write (an interrupted snapshot there is resumed)")
	team := fs.Int64("team", 0, "export one team (0: every team)")
	natsURL := fs.String("nats-url", "", "NATS of the ingest stream: the projector's applied sequence is recorded as the cut (empty: cut 0, replay from the stream's start)")
	nsFlag := fs.String("namespace", string(namespace.Default), "namespace of the environment on NATS")
	groupRows := fs.Int("row-group-rows", snapshot.DefaultRowGroupRows, "records per Parquet row group (bounds memory per table)")
	partRows := fs.Int("part-rows", snapshot.DefaultPartRows, "records per Parquet file")
	staging := fs.String("staging", "", "with --out s3://bucket/prefix: the local directory the snapshot is written to before the upload (resumable)")
	var s3f s3Flags
	s3f.bind(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return &usageError{msg: "--out is required"}
	}
	s3Out := strings.HasPrefix(*out, "s3://")
	var bucket, prefix string
	if s3Out {
		var err error
		if bucket, prefix, err = snapshot.ParseS3URL(*out); err != nil {
			return &usageError{msg: fmt.Sprintf("--out: %v", err)}
		}
		if *staging == "" {
			return &usageError{msg: "--out s3://... needs --staging DIR"}
		}
		*out, *staging = *staging, *out
	}
	ns, err := namespace.Parse(*nsFlag)
	if err != nil {
		return &usageError{msg: fmt.Sprintf("--namespace: %v", err)}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	st, backend, _, err := sf.open(ctx, false, log)
	if err != nil {
		return err
	}
	defer st.Close()
	o := snapshot.Options{Store: st, Backend: backend, Dir: *out, Team: *team, RowGroupRows: *groupRows, PartRows: *partRows, Logger: log}
	if ps, ok := st.(*pebblestore.Store); ok {
		o.Checkpoint = pebbleCheckpoint(ps, sf.dataDir, log)
	}
	switch ss := st.(type) {
	case *scyllastore.Store: // the catalog shares the store's keyspace
		cat, err := scyllacatalog.New(scyllacatalog.Config{Session: ss.Session(), Keyspace: sf.keyspace, Logger: log.With("role", "catalog")})
		if err != nil {
			return err
		}
		defer cat.Close()
		o.Catalog = cat
	default:
		if _, err := os.Stat(catalogDir(sf.dataDir)); err == nil {
			cat, err := openCatalog(sf.dataDir)
			if err != nil {
				return err
			}
			defer cat.Close()
			o.Catalog = cat
		}
	}
	if *natsURL != "" {
		nc, js, err := connectJetStream(*natsURL)
		if err != nil {
			return err
		}
		defer nc.Close()
		o.Cut, o.End = snapshot.StreamCut(js, ns), snapshot.StreamEnd(js, ns)
	}
	bar := newProgressBar(stderr, log, "snapshot")
	o.Progress = func(p snapshot.Progress) { bar.update(p.Table, p.Rows, 0) }
	m, err := snapshot.Create(ctx, o)
	bar.finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "snapshot %s: %d records, cut sequence %d, end sequence %d\n", *out, m.Rows(), m.CutSequence, m.EndSequence)
	if s3Out {
		if _, err := s3f.target().Upload(ctx, *out, bucket, prefix); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "uploaded to %s\n", *staging)
	}
	return nil
}

func snapshotList(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("snapshot list", stderr)
	root := fs.String("dir", ".", "directory holding snapshot directories")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	entries, err := os.ReadDir(*root)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	fmt.Fprintf(stdout, "%-24s %-9s %-20s %6s %12s %12s %12s\n", "NAME", "STATE", "CREATED", "TEAM", "RECORDS", "CUT", "END")
	for _, n := range names {
		dir := filepath.Join(*root, n)
		m, err := snapshot.ReadManifest(dir)
		switch {
		case err == nil:
			fmt.Fprintf(stdout, "%-24s %-9s %-20s %6d %12d %12d %12d\n", n, "complete", m.CreatedAt.Format(time.RFC3339), m.Team, m.Rows(), m.CutSequence, m.EndSequence)
		case strings.Contains(err.Error(), "incomplete"):
			fmt.Fprintf(stdout, "%-24s %-9s\n", n, "partial")
		}
	}
	return nil
}

func snapshotInspect(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("snapshot inspect", stderr)
	dir := fs.String("snapshot", "", "snapshot directory")
	asJSON := fs.Bool("json", false, "print the manifest as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return &usageError{msg: "--snapshot is required"}
	}
	m, err := snapshot.ReadManifest(*dir)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}
	fmt.Fprintf(stdout, "format %d, backend %s, created %s, team %d\nstream %s: cut sequence %d, end sequence %d\n",
		m.FormatVersion, m.Backend, m.CreatedAt.Format(time.RFC3339), m.Team, m.Stream, m.CutSequence, m.EndSequence)
	for _, t := range m.Tables {
		var bytes int64
		for _, p := range t.Parts {
			bytes += p.Bytes
		}
		fmt.Fprintf(stdout, "  %-20s %10d records %4d parts %12d bytes\n", t.Name, t.Rows, len(t.Parts), bytes)
	}
	return nil
}

func snapshotVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("snapshot verify", stderr)
	dir := fs.String("snapshot", "", "snapshot directory")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return &usageError{msg: "--snapshot is required"}
	}
	m, err := snapshot.Verify(ctx, *dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "snapshot %s is intact: %d records in %d tables, every checksum matches\n", *dir, m.Rows(), len(m.Tables))
	return nil
}

// restoreMarker is left in a data directory while a restore is under way
// or after one failed: the store there is not a complete restore.
const restoreMarker = "RESTORE-INCOMPLETE"

func snapshotRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("snapshot restore", stderr)
	var sf storeFlags
	sf.bind(fs)
	dir := fs.String("snapshot", "", "snapshot directory")
	replay := fs.Bool("replay", false, "after the restore, replay the ingest stream from the snapshot's cut (needs --nats-url)")
	natsURL := fs.String("nats-url", "", "NATS of the ingest stream to replay")
	nsFlag := fs.String("namespace", string(namespace.Default), "namespace of the environment on NATS")
	toSeq := fs.Uint64("to-seq", 0, "replay up to this stream sequence (0: the stream's last)")
	toTime := fs.String("to-time", "", "replay the messages stored up to this RFC 3339 time (as of)")
	replaceDefs := fs.Bool("replace-definitions", false, "load the snapshot's definitions into a catalog that already holds teams (records of the same ids are overwritten)")
	var s3f s3Flags
	s3f.bind(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return &usageError{msg: "--snapshot is required"}
	}
	if strings.HasPrefix(*dir, "s3://") {
		bucket, prefix, err := snapshot.ParseS3URL(*dir)
		if err != nil {
			return &usageError{msg: fmt.Sprintf("--snapshot: %v", err)}
		}
		tmp, err := os.MkdirTemp("", "vexil-snapshot-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if _, err := s3f.target().Download(ctx, bucket, prefix, tmp); err != nil {
			return err
		}
		*dir = tmp
	}
	var until time.Time
	if *toTime != "" {
		t, err := time.Parse(time.RFC3339, *toTime)
		if err != nil {
			return &usageError{msg: fmt.Sprintf("--to-time: %v", err)}
		}
		until = t
	}
	if *replay && *natsURL == "" {
		return &usageError{msg: "--replay needs --nats-url"}
	}
	ns, err := namespace.Parse(*nsFlag)
	if err != nil {
		return &usageError{msg: fmt.Sprintf("--namespace: %v", err)}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	// Refuse a corrupt snapshot before creating anything.
	if _, err := snapshot.Verify(ctx, *dir); err != nil {
		return err
	}
	if sf.dataDir != "" {
		if err := os.MkdirAll(sf.dataDir, 0o755); err != nil {
			return err
		}
	}
	st, _, atomic, err := sf.open(ctx, true, log)
	if err != nil {
		return err
	}
	defer st.Close()
	cat, closeCat, err := restoreCatalog(st, sf)
	if err != nil {
		return err
	}
	defer closeCat()
	// Refuse a catalog with teams before the store is written.
	if !*replaceDefs {
		if teams, err := cat.ListTeams(ctx); err != nil {
			return err
		} else if len(teams) > 0 {
			return fmt.Errorf("the target catalog holds %d teams: restore into a fresh one, or pass --replace-definitions", len(teams))
		}
	}
	if empty, err := snapshot.Empty(ctx, st); err != nil {
		return err
	} else if !empty {
		return errors.New("the target store is not empty: restore into a fresh data directory or keyspace")
	}
	// From here on the target is written: the marker says so until the
	// restore (and replay) succeeded. A refusal above leaves it as it was.
	marker := ""
	if sf.dataDir != "" {
		marker = filepath.Join(sf.dataDir, restoreMarker)
		if err := os.WriteFile(marker, []byte("a restore of "+*dir+" is under way or failed: this store is incomplete\n"), 0o644); err != nil {
			return err
		}
	}
	bar := newProgressBar(stderr, log, "restore")
	m, err := snapshot.Restore(ctx, *dir, st, snapshot.RestoreOptions{Logger: log,
		Progress: func(done, total int64) { bar.update("records", done, total) }})
	bar.finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %d records (cut sequence %d)\n", m.Rows(), m.CutSequence)
	if m.Table(snapshot.TableDefinitions) == nil {
		fmt.Fprintln(stdout, "warning: the snapshot holds no definitions (taken without a catalog): the catalog is left as it is")
	} else {
		n, err := snapshot.RestoreDefinitions(ctx, *dir, m, cat, *replaceDefs)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "restored the definitions of %d teams: %d flags, %d cohorts, %d early access features, %d project tokens, %d static cohort members\n",
			n.Teams, n.Flags, n.Cohorts, n.EarlyAccess, n.Tokens, n.CohortMembers)
	}
	if *replay {
		nc, js, err := connectJetStream(*natsURL)
		if err != nil {
			return err
		}
		defer nc.Close()
		rbar := newProgressBar(stderr, log, "replay")
		// Replay refuses the teams production's projector refuses: those
		// not in the catalog, here the restored one (the snapshot's).
		var teams projector.TeamSource
		if m.Table(snapshot.TableDefinitions) != nil {
			list, err := cat.ListTeams(ctx)
			if err != nil {
				return err
			}
			ids := make([]int64, len(list))
			for i, t := range list {
				ids[i] = t.ID
			}
			teams = projector.AllowTeams(ids...)
		} else {
			fmt.Fprintln(stdout, "warning: without the snapshot's definitions, replay applies the messages of every team")
		}
		res, err := snapshot.Replay(ctx, snapshot.ReplayOptions{JetStream: js, Namespace: ns, From: m.CutSequence, To: *toSeq,
			Until: until, Team: m.Team, Store: st, AtomicStore: atomic, Teams: teams, Logger: log,
			Progress: func(done, total uint64) { rbar.update("messages", int64(done), int64(total)) }})
		rbar.finish()
		if err != nil {
			return err
		}
		if res.LastSequence < m.EndSequence {
			fmt.Fprintf(stdout, "warning: replayed to sequence %d, below the snapshot's end sequence %d: the state is the snapshot's fuzzy cut, not production's at %d\n", res.LastSequence, m.EndSequence, res.LastSequence)
		}
		fmt.Fprintf(stdout, "replayed %d messages, up to sequence %d, in %s\n", res.Messages, res.LastSequence, res.Elapsed.Round(time.Millisecond))
		if n := res.DeadLettered(); n > 0 {
			reasons := make([]string, 0, len(res.DeadLetters))
			for r, c := range res.DeadLetters {
				reasons = append(reasons, fmt.Sprintf("%s %d", r, c))
			}
			sort.Strings(reasons)
			fmt.Fprintf(stdout, "dead-lettered %d messages, as production's projector does (%s)\n", n, strings.Join(reasons, ", "))
		}
	}
	if marker != "" {
		if err := os.Remove(marker); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// restoreCatalog opens the catalog restore writes definitions to: the
// data directory's Pebble catalog, or the ScyllaDB catalog in the store's
// keyspace.
func restoreCatalog(st store.Store, sf storeFlags) (snapshot.DefinitionsCatalog, func(), error) {
	var cat catalog.Catalog
	if ss, ok := st.(*scyllastore.Store); ok {
		c, err := scyllacatalog.New(scyllacatalog.Config{Session: ss.Session(), Keyspace: sf.keyspace})
		if err != nil {
			return nil, nil, err
		}
		cat = c
	} else {
		c, err := openCatalog(sf.dataDir)
		if err != nil {
			return nil, nil, err
		}
		cat = c
	}
	dc, ok := cat.(snapshot.DefinitionsCatalog)
	if !ok {
		cat.Close()
		return nil, nil, fmt.Errorf("the catalog %T cannot restore definitions", cat)
	}
	return dc, func() { cat.Close() }, nil
}

func runWhatIf(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("whatif", stderr)
	dir := fs.String("snapshot", "", "snapshot directory")
	flagFile := fs.String("flag-file", "", "a flag in PostHog's JSON, or a definitions document ({\"flags\": [...], \"cohorts\": {...}})")
	flagKey := fs.String("flag-key", "", "instead of --flag-file: the snapshot's own definition of this flag (with its team's cohorts; needs --team)")
	out := fs.String("out", "", "Parquet file of per-person results to write")
	team := fs.Int64("team", 0, "evaluate one team's rows (0: every row)")
	at := fs.String("now", "", "evaluation time, RFC 3339 (default: now)")
	groupsFile := fs.String("groups-file", "", `JSON lines {"distinct_id": "u1", "groups": {"company": "acme"}}: each person's groups, for group-aggregated conditions (evaluated against the snapshot's groups)`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" || *out == "" || (*flagFile == "") == (*flagKey == "") {
		return &usageError{msg: "--snapshot, --out and one of --flag-file and --flag-key are required"}
	}
	if *flagKey != "" && *team == 0 {
		return &usageError{msg: "--flag-key needs --team"}
	}
	o := snapshot.WhatIfOptions{Team: *team}
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return &usageError{msg: fmt.Sprintf("--now: %v", err)}
		}
		o.Now = t
	}
	if *flagKey != "" {
		m, err := snapshot.ReadManifest(*dir)
		if err != nil {
			return err
		}
		d, err := snapshot.Definitions(ctx, *dir, m, *team)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(d.Flags, func(f flags.Flag) bool { return f.Key == *flagKey }) {
			return fmt.Errorf("the snapshot holds no flag %q in team %d", *flagKey, *team)
		}
		o.Definitions, o.Keys = d, []string{*flagKey}
	} else {
		f, err := os.Open(*flagFile)
		if err != nil {
			return err
		}
		data, err := io.ReadAll(io.LimitReader(f, snapshot.MaxFlagFileBytes+1))
		f.Close()
		if err != nil {
			return err
		}
		if o.Definitions, err = snapshot.ParseFlagFile(data); err != nil {
			return err
		}
	}
	if *groupsFile != "" {
		f, err := os.Open(*groupsFile)
		if err != nil {
			return err
		}
		o.Groups, err = snapshot.ParseGroupsFile(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	n, err := snapshot.WhatIfFile(ctx, *dir, o, *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d results (%d flags)\n", *out, n, len(o.Definitions.Flags))
	return nil
}

// newSnapshotService is serve's /api/snapshots: snapshots of the node's
// store under DIR/snapshots, with the projector's applied sequence as the
// cut.
func newSnapshotService(c config.Config, n *node, log *slog.Logger) *snapshot.Service {
	backend := "pebble"
	if len(c.Scylla.Hosts) > 0 {
		backend = "scylla"
	}
	var cp func(context.Context, string) (*snapshot.Frozen, error)
	if n.pebble != nil {
		cp = pebbleCheckpoint(n.pebble, c.DataDir, log)
	}
	return snapshot.NewService(snapshot.ServiceConfig{Root: filepath.Join(c.DataDir, "snapshots"), Store: n.store, Catalog: n.catalog, Backend: backend,
		Checkpoint: cp, Cut: snapshot.StreamCut(n.js, n.ns), End: snapshot.StreamEnd(n.js, n.ns), Logger: log.With("role", "snapshots"),
		WriteError: admin.WriteHTTPError})
}

// checkpointPrefix names the checkpoints a snapshot of a Pebble store
// reads, in the data directory beside DIR/store (hard links need the same
// filesystem).
const checkpointPrefix = "snapshot-checkpoint-"

// pebbleCheckpoint is snapshot.Options.Checkpoint for st, whose data
// directory is dataDir. Other checkpoints a crash left behind are removed
// first (the store's lock makes this process the only one taking them);
// the one an interrupted snapshot names is opened again instead.
func pebbleCheckpoint(st *pebblestore.Store, dataDir string, log *slog.Logger) func(context.Context, string) (*snapshot.Frozen, error) {
	return func(_ context.Context, reuse string) (*snapshot.Frozen, error) {
		if reuse != "" && (filepath.Dir(filepath.Dir(reuse)) != filepath.Clean(dataDir) || !strings.HasPrefix(filepath.Base(filepath.Dir(reuse)), checkpointPrefix)) {
			reuse = "" // not one of ours: never opened
		}
		old, _ := filepath.Glob(filepath.Join(dataDir, checkpointPrefix+"*"))
		for _, d := range old {
			if reuse != "" && d == filepath.Dir(reuse) {
				continue
			}
			if err := os.RemoveAll(d); err != nil {
				return nil, err
			}
		}
		release := func(cp *pebblestore.Store, tmp string) func(bool) error {
			return func(remove bool) error {
				err := cp.Close()
				if remove {
					err = errors.Join(err, os.RemoveAll(tmp))
				}
				return err
			}
		}
		if reuse != "" {
			if _, err := os.Stat(reuse); err == nil {
				cp, err := pebblestore.Open(pebblestore.Config{Dir: reuse, ReadOnly: true, CacheSize: 8 << 20, Logger: log.With("role", "checkpoint")})
				if err == nil {
					return &snapshot.Frozen{Store: cp, Path: reuse, Reused: true, Release: release(cp, filepath.Dir(reuse))}, nil
				}
				log.Warn("snapshot: the interrupted run's checkpoint does not open; taking another", "path", reuse, "err", err)
				if err := os.RemoveAll(filepath.Dir(reuse)); err != nil {
					return nil, err
				}
			}
		}
		tmp, err := os.MkdirTemp(dataDir, checkpointPrefix)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(tmp, "db")
		cp, err := st.OpenCheckpoint(path, log.With("role", "checkpoint"))
		if err != nil {
			return nil, errors.Join(err, os.RemoveAll(tmp))
		}
		return &snapshot.Frozen{Store: cp, Path: path, Release: release(cp, tmp)}, nil
	}
}
