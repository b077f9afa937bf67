package schema

import (
	"errors"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"plain", Config{Keyspace: "vexil"}, true},
		{"digits and underscore", Config{Keyspace: "vexil_test_01", ReplicationFactor: 3}, true},
		{"empty", Config{}, false},
		{"upper case", Config{Keyspace: "Vexil"}, false},
		{"leading digit", Config{Keyspace: "1vexil"}, false},
		{"injection", Config{Keyspace: "v; DROP KEYSPACE system"}, false},
		{"too long", Config{Keyspace: strings.Repeat("v", 49)}, false},
		{"negative rf", Config{Keyspace: "vexil", ReplicationFactor: -1}, false},
		{"tablets disabled", Config{Keyspace: "vexil", Tablets: TabletsDisabled}, true},
		{"unknown tablets policy", Config{Keyspace: "vexil", Tablets: 7}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.ok && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// TestMigrationsRender checks the embedded files: numbered from 1 without
// gaps, every statement rendered for the keyspace, idempotent (CREATE ... IF
// NOT EXISTS), and naming its table with the keyspace.
func TestMigrationsRender(t *testing.T) {
	migs, err := Migrations(Config{Keyspace: "ks_render"})
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) == 0 {
		t.Fatal("no migrations embedded")
	}
	seen := map[string]bool{}
	for i, m := range migs {
		if m.Version != i+1 {
			t.Errorf("%s: version %d, want %d", m.Name, m.Version, i+1)
		}
		if len(m.Checksum) != 64 {
			t.Errorf("%s: checksum %q is not hex SHA-256", m.Name, m.Checksum)
		}
		for _, s := range m.Statements {
			if strings.HasPrefix(s, "ALTER TABLE ks_render.") {
				if !alterAddRE.MatchString(s) {
					t.Errorf("%s: an ALTER may only ADD a column: %s", m.Name, s)
				}
				continue
			}
			if !strings.HasPrefix(s, "CREATE TABLE IF NOT EXISTS ks_render.") && !strings.HasPrefix(s, "CREATE TYPE IF NOT EXISTS ks_render.") {
				t.Errorf("%s: statement is not an idempotent CREATE in the keyspace: %s", m.Name, s)
			}
			if strings.Contains(s, "{{") || strings.Contains(s, "--") {
				t.Errorf("%s: unrendered placeholder or comment: %s", m.Name, s)
			}
			table := strings.Fields(s)[5]
			if seen[table] {
				t.Errorf("%s: %s created twice", m.Name, table)
			}
			seen[table] = true
		}
	}
	for _, table := range []string{"persons", "person_distinct_ids", "rows", "row_index", "groups", "group_index", "result_expiry", "group_types"} {
		if !seen["ks_render."+table] {
			t.Errorf("no migration creates table %s", table)
		}
	}
}

func TestRenderBootstrap(t *testing.T) {
	src, err := files.ReadFile("bootstrap.cql")
	if err != nil {
		t.Fatal(err)
	}
	stmts, err := render("bootstrap.cql", src, Config{Keyspace: "ks_b", ReplicationFactor: 3})
	if err != nil {
		t.Fatal(err)
	}
	want0 := "CREATE KEYSPACE IF NOT EXISTS ks_b WITH replication = {'class': 'NetworkTopologyStrategy', 'replication_factor': 3} AND durable_writes = true"
	if len(stmts) != 2 || stmts[0] != want0 || !strings.HasPrefix(stmts[1], "CREATE TABLE IF NOT EXISTS ks_b.schema_migrations (") {
		t.Fatalf("bootstrap statements:\n%s", strings.Join(stmts, "\n"))
	}
	stmts, err = render("bootstrap.cql", src, Config{Keyspace: "ks_b", ReplicationFactor: 3}, "AND tablets = {'enabled': false}")
	if err != nil {
		t.Fatal(err)
	}
	if want := want0 + " AND tablets = {'enabled': false}"; stmts[0] != want {
		t.Fatalf("bootstrap with options:\n%s\nwant\n%s", stmts[0], want)
	}
}

func TestRenderRejectsUnknownPlaceholder(t *testing.T) {
	_, err := render("x.cql", []byte("CREATE TABLE {{keyspace}}.t (a int PRIMARY KEY) WITH comment = '{{nope}}';"), Config{Keyspace: "k"})
	if !errors.Is(err, ErrBadMigration) {
		t.Fatalf("render = %v, want ErrBadMigration", err)
	}
}
