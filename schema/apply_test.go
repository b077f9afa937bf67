package schema_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/gocql/gocql"
	"github.com/vexil-dev/vexil/schema"
	"github.com/vexil-dev/vexil/schema/schematest"
)

// describe returns the keyspace's tables as the server's schema tables report
// them: table id and every column with its kind and type, sorted.
func describe(t *testing.T, ctx context.Context, s *gocql.Session, ks string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	iter := s.Query("SELECT table_name, id FROM system_schema.tables WHERE keyspace_name = ?", ks).WithContext(ctx).Iter()
	var (
		table string
		id    gocql.UUID
	)
	for iter.Scan(&table, &id) {
		out[table] = append(out[table], "id="+id.String())
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	iter = s.Query("SELECT table_name, column_name, kind, type FROM system_schema.columns WHERE keyspace_name = ?", ks).WithContext(ctx).Iter()
	var col, kind, typ string
	for iter.Scan(&table, &col, &kind, &typ) {
		out[table] = append(out[table], col+" "+kind+" "+typ)
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	for k := range out {
		slices.Sort(out[k])
	}
	return out
}

// TestApplyTwiceIsNoop applies the schema to a fresh keyspace, then again:
// the second run applies nothing and leaves the server's schema unchanged.
func TestApplyTwiceIsNoop(t *testing.T) {
	ctx := context.Background()
	s := schematest.Session(t)
	ks := schematest.Keyspace(t, s)
	cfg := schema.Config{Keyspace: ks}

	migs, err := schema.Migrations(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range migs {
		want = append(want, m.Name)
	}

	applied, err := schema.Apply(ctx, s, cfg)
	if err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	if !slices.Equal(applied, want) {
		t.Fatalf("first Apply applied %v, want %v", applied, want)
	}
	before := describe(t, ctx, s, ks)
	for _, table := range []string{"schema_migrations", "persons", "person_distinct_ids", "distinct_ids", "rows", "row_index", "groups", "group_index", "result_expiry", "group_types"} {
		if _, ok := before[table]; !ok {
			t.Errorf("table %s missing after Apply; have %v", table, before)
		}
	}

	applied, err = schema.Apply(ctx, s, cfg)
	if err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if len(applied) != 0 {
		t.Fatalf("second Apply applied %v, want nothing", applied)
	}
	after := describe(t, ctx, s, ks)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("schema changed by the second Apply:\nbefore %v\nafter  %v", before, after)
	}

	var recorded []string
	iter := s.Query(fmt.Sprintf("SELECT name FROM %s.schema_migrations", ks)).WithContext(ctx).Iter()
	var name string
	for iter.Scan(&name) {
		recorded = append(recorded, name)
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(recorded)
	if !slices.Equal(recorded, want) {
		t.Fatalf("schema_migrations records %v, want %v", recorded, want)
	}
}

// TestApplyDetectsEditedMigration records a wrong checksum for migration 1,
// as if the file had been edited after it was applied.
func TestApplyDetectsEditedMigration(t *testing.T) {
	ctx := context.Background()
	s := schematest.Session(t)
	ks := schematest.Keyspace(t, s)
	cfg := schema.Config{Keyspace: ks}
	if _, err := schema.Apply(ctx, s, cfg); err != nil {
		t.Fatal(err)
	}
	if err := s.Query(fmt.Sprintf("UPDATE %s.schema_migrations SET checksum = 'edited' WHERE version = 1", ks)).Exec(); err != nil {
		t.Fatal(err)
	}
	_, err := schema.Apply(ctx, s, cfg)
	if !errors.Is(err, schema.ErrChecksumMismatch) {
		t.Fatalf("Apply = %v, want ErrChecksumMismatch", err)
	}
}

// TestApplyReplication checks the keyspace's replication as created.
func TestApplyReplication(t *testing.T) {
	ctx := context.Background()
	s := schematest.Session(t)
	ks := schematest.Keyspace(t, s)
	if _, err := schema.Apply(ctx, s, schema.Config{Keyspace: ks}); err != nil {
		t.Fatal(err)
	}
	var repl map[string]string
	if err := s.Query("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?", ks).WithContext(ctx).Scan(&repl); err != nil {
		t.Fatal(err)
	}
	// Both expand 'replication_factor' into one entry per datacenter (the
	// test node's SimpleSnitch names its datacenter "datacenter1").
	if !strings.HasSuffix(repl["class"], "NetworkTopologyStrategy") || len(repl) != 2 {
		t.Fatalf("replication = %v, want NetworkTopologyStrategy with one datacenter", repl)
	}
	for k, v := range repl {
		if k != "class" && v != "1" {
			t.Fatalf("replication = %v, want factor 1 in %s", repl, k)
		}
	}
}

// TestCheck: a missing keyspace and a partly applied one fail with
// ErrNotApplied; after Apply, Check passes.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	s := schematest.Session(t)
	ks := schematest.Keyspace(t, s)
	cfg := schema.Config{Keyspace: ks}
	if err := schema.Check(ctx, s, cfg); !errors.Is(err, schema.ErrNotApplied) {
		t.Fatalf("Check before Apply = %v, want ErrNotApplied", err)
	}
	if _, err := schema.Apply(ctx, s, cfg); err != nil {
		t.Fatal(err)
	}
	if err := schema.Check(ctx, s, cfg); err != nil {
		t.Fatalf("Check after Apply = %v", err)
	}
	if err := s.Query(fmt.Sprintf("DELETE FROM %s.schema_migrations WHERE version = 1", ks)).Exec(); err != nil {
		t.Fatal(err)
	}
	if err := schema.Check(ctx, s, cfg); !errors.Is(err, schema.ErrNotApplied) {
		t.Fatalf("Check with migration 1 unrecorded = %v, want ErrNotApplied", err)
	}
}

// TestApplyRerunsAddColumn: a run that died after a migration's ALTER
// TABLE ... ADD and before recording it is completed by the next Apply,
// which skips the column that exists.
func TestApplyRerunsAddColumn(t *testing.T) {
	ctx := context.Background()
	s := schematest.Session(t)
	ks := schematest.Keyspace(t, s)
	cfg := schema.Config{Keyspace: ks}
	if _, err := schema.Apply(ctx, s, cfg); err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	before := describe(t, ctx, s, ks)
	if !slices.Contains(before["groups"], "counters regular blob") {
		t.Fatalf("groups.counters missing: %v", before["groups"])
	}
	if err := s.Query(fmt.Sprintf("DELETE FROM %s.schema_migrations WHERE version = 6", ks)).WithContext(ctx).Exec(); err != nil {
		t.Fatal(err)
	}
	applied, err := schema.Apply(ctx, s, cfg)
	if err != nil {
		t.Fatalf("Apply after a lost record: %v", err)
	}
	if !slices.Equal(applied, []string{"006_group_counters.cql"}) {
		t.Fatalf("Apply applied %v, want 006_group_counters.cql", applied)
	}
	if after := describe(t, ctx, s, ks); fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("schema changed:\nbefore %v\nafter  %v", before, after)
	}
}
