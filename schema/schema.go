package schema

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gocql/gocql"
)

//go:embed bootstrap.cql [0-9][0-9][0-9]_*.cql
var files embed.FS

// Sentinel errors; Apply and Migrations wrap them with %w.
var (
	// ErrInvalidConfig reports a Config that fails Validate.
	ErrInvalidConfig = errors.New("schema: invalid config")
	// ErrBadMigration reports an embedded file that does not follow the
	// naming or content rules (a programming error caught by the tests).
	ErrBadMigration = errors.New("schema: bad migration file")
	// ErrChecksumMismatch reports a migration that was applied with
	// different content than the embedded file has now: applied files must
	// never be edited; add a new numbered file instead.
	ErrChecksumMismatch = errors.New("schema: applied migration was edited")
	// ErrNotApplied reports (from Check) a keyspace missing migrations that
	// this binary embeds: run Apply (vexil with schema application on, or a
	// migration step) first.
	ErrNotApplied = errors.New("schema: migration not applied")
)

// Config says where and how to apply the schema.
type Config struct {
	// Keyspace is the keyspace that holds every Vexil table. Required:
	// lower case letters, digits and '_', starting with a letter, at most
	// 48 characters (the CQL limit).
	Keyspace string
	// ReplicationFactor is the 'replication_factor' of the
	// NetworkTopologyStrategy used when the keyspace is created; an existing
	// keyspace keeps its replication. Default 1 (0 means the default).
	ReplicationFactor int
	// Tablets decides the ScyllaDB tablets option of a keyspace created by
	// Apply. Default TabletsAuto. Cassandra has no tablets: the option is
	// never sent to it.
	Tablets Tablets
	// Logger receives one line per applied migration. Default: discard.
	Logger *slog.Logger
}

// Tablets is the policy for ScyllaDB's tablets keyspace option.
type Tablets int

const (
	// TabletsAuto disables tablets when the server supports them (ScyllaDB
	// lists TABLETS in system.local's supported_features): the catalog
	// tables use lightweight transactions, which tablets keyspaces restrict.
	TabletsAuto Tablets = iota
	// TabletsDisabled always sends "tablets = {'enabled': false}" (an error
	// on servers without tablets).
	TabletsDisabled
	// TabletsDefault sends no tablets option: the cluster default applies.
	TabletsDefault
)

var keyspaceRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)

// Validate checks the Config; errors wrap ErrInvalidConfig.
func (c Config) Validate() error {
	if !keyspaceRE.MatchString(c.Keyspace) {
		return fmt.Errorf("%w: keyspace %q must match %s", ErrInvalidConfig, c.Keyspace, keyspaceRE)
	}
	if c.Tablets < TabletsAuto || c.Tablets > TabletsDefault {
		return fmt.Errorf("%w: unknown tablets policy %d", ErrInvalidConfig, c.Tablets)
	}
	if c.ReplicationFactor < 0 || c.ReplicationFactor > 64 {
		return fmt.Errorf("%w: replication factor %d out of range 1..64", ErrInvalidConfig, c.ReplicationFactor)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = 1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Migration is one numbered .cql file, parsed and rendered for a keyspace.
type Migration struct {
	// Version is the number the file name starts with (1, 2, ...).
	Version int
	// Name is the file name, e.g. "001_store.cql".
	Name string
	// Checksum is the hex SHA-256 of the embedded file (before rendering).
	Checksum string
	// Statements are the CQL statements, rendered for the keyspace, in order.
	Statements []string
}

var fileRE = regexp.MustCompile(`^([0-9]{3})_[a-z0-9_]+\.cql$`)

// Migrations returns the numbered migrations in order, rendered for cfg.
// Versions must run 1, 2, 3 ... without gaps or duplicates.
func Migrations(cfg Config) ([]Migration, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	names, err := fs.Glob(files, "[0-9][0-9][0-9]_*.cql")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadMigration, err)
	}
	sort.Strings(names)
	var out []Migration
	for i, name := range names {
		m := fileRE.FindStringSubmatch(name)
		if m == nil {
			return nil, fmt.Errorf("%w: %s: name must match %s", ErrBadMigration, name, fileRE)
		}
		v, _ := strconv.Atoi(m[1])
		if v != i+1 {
			return nil, fmt.Errorf("%w: %s: expected version %d (no gaps, no duplicates)", ErrBadMigration, name, i+1)
		}
		src, err := files.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadMigration, name, err)
		}
		stmts, err := render(name, src, cfg)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(src)
		out = append(out, Migration{Version: v, Name: name, Checksum: hex.EncodeToString(sum[:]), Statements: stmts})
	}
	return out, nil
}

// render strips full-line "--" comments, splits on ';' and substitutes
// {{keyspace}}, {{replication_factor}} and {{keyspace_options}} (extra
// keyspace options, see keyspaceOptions). The files are ours: no statement
// carries a ';' or "--" inside a string literal.
func render(name string, src []byte, cfg Config, keyspaceOptions ...string) ([]string, error) {
	var b strings.Builder
	for line := range strings.Lines(string(src)) {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		b.WriteString(line)
	}
	r := strings.NewReplacer("{{keyspace}}", cfg.Keyspace, "{{replication_factor}}", strconv.Itoa(cfg.ReplicationFactor),
		"{{keyspace_options}}", strings.Join(keyspaceOptions, " "))
	var stmts []string
	for part := range strings.SplitSeq(b.String(), ";") {
		s := strings.Join(strings.Fields(r.Replace(part)), " ")
		if s == "" {
			continue
		}
		if strings.Contains(s, "{{") {
			return nil, fmt.Errorf("%w: %s: unknown placeholder in %q", ErrBadMigration, name, s)
		}
		stmts = append(stmts, s)
	}
	if len(stmts) == 0 {
		return nil, fmt.Errorf("%w: %s: no statements", ErrBadMigration, name)
	}
	return stmts, nil
}

// Apply brings the keyspace up to date: it creates the keyspace and the
// schema_migrations table when missing, then runs every numbered migration
// not yet recorded there, in order, recording each after all of its
// statements succeeded. It returns the names of the migrations it applied
// (none when the schema is current, which makes a second Apply a no-op).
//
// Every statement is idempotent (CREATE ... IF NOT EXISTS, or ALTER TABLE
// ... ADD of a column, skipped when the column exists), so a run that
// died half-way through a migration is completed by the next Apply. An
// applied migration whose embedded content changed fails with
// ErrChecksumMismatch. Run Apply from one process at a time: concurrent DDL
// on the same table from several clients can disagree on Cassandra.
//
// The session needs no keyspace: every statement names it.
func Apply(ctx context.Context, session *gocql.Session, cfg Config) ([]string, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	migs, err := Migrations(cfg)
	if err != nil {
		return nil, err
	}
	ok, err := bootstrapped(ctx, session, cfg.Keyspace)
	if err != nil {
		return nil, err
	}
	if !ok {
		src, err := files.ReadFile("bootstrap.cql")
		if err != nil {
			return nil, fmt.Errorf("%w: bootstrap.cql: %v", ErrBadMigration, err)
		}
		opts, err := keyspaceOptions(ctx, session, cfg.Tablets)
		if err != nil {
			return nil, err
		}
		stmts, err := render("bootstrap.cql", src, cfg, opts...)
		if err != nil {
			return nil, err
		}
		for _, s := range stmts {
			if err := execDDL(ctx, session, s, cfg.Logger); err != nil {
				return nil, fmt.Errorf("schema: bootstrap %s: %w", cfg.Keyspace, err)
			}
		}
		cfg.Logger.Info("created keyspace", "keyspace", cfg.Keyspace, "replication_factor", cfg.ReplicationFactor)
	}
	// On a cluster, the node that coordinates the next read may not know
	// the keyspace and schema_migrations yet: wait until every node agrees.
	if err := session.AwaitSchemaAgreement(ctx); err != nil {
		return nil, fmt.Errorf("schema: %s: waiting for schema agreement: %w", cfg.Keyspace, err)
	}

	done, err := appliedChecksumsAgreed(ctx, session, cfg.Keyspace)
	if err != nil {
		return nil, err
	}

	var applied []string
	for _, m := range migs {
		if sum, ok := done[m.Version]; ok {
			if sum != m.Checksum {
				return applied, fmt.Errorf("%w: %s (recorded %s, embedded %s)", ErrChecksumMismatch, m.Name, sum, m.Checksum)
			}
			continue
		}
		start := time.Now()
		for _, s := range m.Statements {
			if err := execDDL(ctx, session, s, cfg.Logger); err != nil {
				return applied, fmt.Errorf("schema: apply %s: %w", m.Name, err)
			}
		}
		err := session.Query(
			fmt.Sprintf("INSERT INTO %s.schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)", cfg.Keyspace),
			m.Version, m.Name, m.Checksum, time.Now().UTC(),
		).WithContext(ctx).Exec()
		if err != nil {
			return applied, fmt.Errorf("schema: record %s: %w", m.Name, err)
		}
		applied = append(applied, m.Name)
		cfg.Logger.Info("applied migration", "keyspace", cfg.Keyspace, "migration", m.Name, "took", time.Since(start))
	}
	if len(applied) > 0 {
		// The tables exist on every node before the store's first query.
		if err := session.AwaitSchemaAgreement(ctx); err != nil {
			return applied, fmt.Errorf("schema: %s: waiting for schema agreement: %w", cfg.Keyspace, err)
		}
	}
	return applied, nil
}

// ddlAttempts bounds how often execDDL sends a statement that timed out.
const ddlAttempts = 5

// execDDL runs one schema statement. A schema change that times out on
// the client may still be applied by the cluster (gocql says "potentially
// executed"); on a loaded cluster that is common. A statement that is
// idempotent (IF NOT EXISTS, or an ADD of a column, skipped once the
// column exists) is then sent again, up to ddlAttempts times; any other
// error, or a statement that is not idempotent, fails at once.
func execDDL(ctx context.Context, session *gocql.Session, stmt string, log *slog.Logger) error {
	var err error
	for attempt := 1; attempt <= ddlAttempts; attempt++ {
		skip, cerr := columnExists(ctx, session, stmt)
		if cerr != nil {
			return cerr
		}
		if skip {
			return nil
		}
		if err = session.Query(stmt).WithContext(ctx).Exec(); err == nil || !retriableDDL(stmt, err) || ctx.Err() != nil {
			return err
		}
		log.Warn("schema statement timed out; sending it again (it is idempotent)", "attempt", attempt, "err", err)
	}
	return err
}

// retriableDDL reports whether stmt may be sent again after err.
func retriableDDL(stmt string, err error) bool {
	if !strings.Contains(strings.ToUpper(stmt), "IF NOT EXISTS") && !alterAddRE.MatchString(stmt) {
		return false
	}
	var wt *gocql.RequestErrWriteTimeout
	return errors.Is(err, gocql.ErrTimeoutNoResponse) || errors.Is(err, gocql.ErrNoConnections) || errors.As(err, &wt)
}

// Reading schema_migrations right after it was created can still reach a
// coordinator that has not applied the table: schema agreement is judged
// from the control connection's view of its peers' schema versions, which
// can run ahead of a node's (a three-node cluster's CI run failed so, with
// "table schema_migrations does not exist"). The read is tried again for
// as long as the table is unknown to the node that answered, up to
// agreeAttempts times, waiting for agreement between tries.
const (
	agreeAttempts = 20
	agreeWait     = 250 * time.Millisecond
)

// appliedChecksumsAgreed is appliedChecksums, tried again while the
// coordinator does not know the table yet.
func appliedChecksumsAgreed(ctx context.Context, session *gocql.Session, keyspace string) (map[int]string, error) {
	for attempt := 1; ; attempt++ {
		done, err := appliedChecksums(ctx, session, keyspace)
		var re gocql.RequestError
		if err == nil || attempt == agreeAttempts || !errors.As(err, &re) || re.Code() != gocql.ErrCodeInvalid ||
			!strings.Contains(re.Message(), "does not exist") && !strings.Contains(re.Message(), "unconfigured table") {
			return done, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(agreeWait):
		}
		if err := session.AwaitSchemaAgreement(ctx); err != nil {
			return nil, fmt.Errorf("schema: %s: waiting for schema agreement: %w", keyspace, err)
		}
	}
}

// appliedChecksums reads schema_migrations: version → checksum.
func appliedChecksums(ctx context.Context, session *gocql.Session, keyspace string) (map[int]string, error) {
	done := map[int]string{}
	iter := session.Query(fmt.Sprintf("SELECT version, checksum FROM %s.schema_migrations", keyspace)).WithContext(ctx).Iter()
	var (
		v   int
		sum string
	)
	for iter.Scan(&v, &sum) {
		done[v] = sum
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("schema: read applied migrations: %w", err)
	}
	return done, nil
}

// Check verifies, without changing anything, that every embedded migration
// is applied to the keyspace with its current content. It returns an error
// wrapping ErrNotApplied (naming the first missing migration) or
// ErrChecksumMismatch. A process that does not apply the schema itself
// calls it on start, so that a binary newer than the schema fails at once
// rather than on its first query.
func Check(ctx context.Context, session *gocql.Session, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	migs, err := Migrations(cfg)
	if err != nil {
		return err
	}
	ok, err := bootstrapped(ctx, session, cfg.Keyspace)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: keyspace %s has no schema_migrations table", ErrNotApplied, cfg.Keyspace)
	}
	done, err := appliedChecksums(ctx, session, cfg.Keyspace)
	if err != nil {
		return err
	}
	for _, m := range migs {
		sum, ok := done[m.Version]
		switch {
		case !ok:
			return fmt.Errorf("%w: %s in keyspace %s", ErrNotApplied, m.Name, cfg.Keyspace)
		case sum != m.Checksum:
			return fmt.Errorf("%w: %s (recorded %s, embedded %s)", ErrChecksumMismatch, m.Name, sum, m.Checksum)
		}
	}
	return nil
}

// bootstrapped reports whether the keyspace and its schema_migrations table
// exist.
func bootstrapped(ctx context.Context, session *gocql.Session, keyspace string) (bool, error) {
	var name string
	err := session.Query(
		"SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = 'schema_migrations'", keyspace,
	).WithContext(ctx).Scan(&name)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("schema: look up keyspace %s: %w", keyspace, err)
	}
	return true, nil
}

// keyspaceOptions returns the extra CREATE KEYSPACE options for the server
// behind session under policy.
func keyspaceOptions(ctx context.Context, session *gocql.Session, policy Tablets) ([]string, error) {
	const disable = "AND tablets = {'enabled': false}"
	switch policy {
	case TabletsDefault:
		return nil, nil
	case TabletsDisabled:
		return []string{disable}, nil
	}
	// Only ScyllaDB has supported_features; Cassandra answers with an
	// Invalid request error ("Undefined column name"), which means: no
	// tablets. Any other error (a timeout) is returned: guessing wrong would
	// create a tablets keyspace where LWT is restricted.
	var features string
	err := session.Query("SELECT supported_features FROM system.local WHERE key = 'local'").WithContext(ctx).Scan(&features)
	var reqErr gocql.RequestError
	switch {
	case errors.As(err, &reqErr) && (reqErr.Code() == gocql.ErrCodeInvalid || reqErr.Code() == gocql.ErrCodeSyntax):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("schema: detect tablets: %w", err)
	}
	if slices.Contains(strings.Split(features, ","), "TABLETS") {
		return []string{disable}, nil
	}
	return nil, nil
}

// alterAddRE matches the one ALTER form migrations may use: adding a column
// (ALTER TABLE ks.table ADD column type).
var alterAddRE = regexp.MustCompile(`^ALTER TABLE ([a-z0-9_]+)\.([a-z0-9_]+) ADD ([a-z0-9_]+) `)

// columnExists reports whether stmt adds a column that exists already.
// Neither Cassandra nor ScyllaDB has ADD IF NOT EXISTS in every version,
// so a rerun of a migration that died after its ALTER checks the schema
// tables instead.
func columnExists(ctx context.Context, session *gocql.Session, stmt string) (bool, error) {
	m := alterAddRE.FindStringSubmatch(stmt)
	if m == nil {
		return false, nil
	}
	var name string
	err := session.Query("SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ? AND column_name = ?",
		m[1], m[2], m[3]).WithContext(ctx).Scan(&name)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read columns of %s.%s: %w", m[1], m[2], err)
	}
	return true, nil
}
