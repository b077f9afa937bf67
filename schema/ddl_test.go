package schema

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gocql/gocql"
)

// TestEveryStatementIdempotent: execDDL sends a statement that timed out
// again, which is safe only because every statement of every migration
// creates only what does not exist yet (IF NOT EXISTS), or adds a column
// that execDDL first checks for. Any other statement fails here, so that
// its author decides how it recovers.
func TestEveryStatementIdempotent(t *testing.T) {
	migs, err := Migrations(Config{Keyspace: "vexil"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range migs {
		for _, s := range m.Statements {
			n++
			if !strings.Contains(strings.ToUpper(s), "IF NOT EXISTS") && !alterAddRE.MatchString(s) {
				t.Errorf("%s: statement is not idempotent (no IF NOT EXISTS): %.80s", m.Name, s)
			}
		}
	}
	if n < len(migs) {
		t.Fatalf("%d statements in %d migrations", n, len(migs))
	}
}

func TestRetriableDDL(t *testing.T) {
	const create = "CREATE TABLE IF NOT EXISTS vexil.x (k int PRIMARY KEY)"
	for _, tc := range []struct {
		name string
		stmt string
		err  error
		want bool
	}{
		{"client timeout", create, gocql.ErrTimeoutNoResponse, true},
		{"wrapped client timeout", create, fmt.Errorf("exec: %w", gocql.ErrTimeoutNoResponse), true},
		{"no connections", create, gocql.ErrNoConnections, true},
		{"server write timeout", create, &gocql.RequestErrWriteTimeout{}, true},
		{"add column (checked first)", "ALTER TABLE vexil.x ADD v int", gocql.ErrTimeoutNoResponse, true},
		{"not idempotent", "ALTER TABLE vexil.x DROP v", gocql.ErrTimeoutNoResponse, false},
		{"syntax error", create, errors.New("line 1:0 no viable alternative"), false},
	} {
		if got := retriableDDL(tc.stmt, tc.err); got != tc.want {
			t.Errorf("%s: retriable = %v, want %v", tc.name, got, tc.want)
		}
	}
}
