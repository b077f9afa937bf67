package changes

import (
	"errors"
	"strings"
	"testing"

	"github.com/vexil-dev/vexil/namespace"
)

func TestSubjectAndTeamOf(t *testing.T) {
	if s := Subject("", 42); s != "vexil.changes.42" {
		t.Errorf("Subject(42) = %q", s)
	}
	if s := (Notice{Team: 7}).Subject(""); s != "vexil.changes.7" {
		t.Errorf("Notice.Subject = %q", s)
	}
	cases := []struct {
		subject string
		team    int64
		ok      bool
	}{
		{"vexil.changes.1", 1, true},
		{"vexil.changes.9223372036854775807", 9223372036854775807, true},
		{"vexil.changes.9223372036854775808", 0, false},
		{"vexil.changes.0", 0, false},
		{"vexil.changes.01", 0, false},
		{"vexil.changes.-1", 0, false},
		{"vexil.changes.+1", 0, false},
		{"vexil.changes.1.x", 0, false},
		{"vexil.changes.", 0, false},
		{"vexil.changes", 0, false},
		{"vexil.persons.1", 0, false},
		{"vexil.signals.1.rollout", 0, false},
	}
	for _, c := range cases {
		team, ok := TeamOf("", c.subject)
		if team != c.team || ok != c.ok {
			t.Errorf("TeamOf(%q) = %d, %v; want %d, %v", c.subject, team, ok, c.team, c.ok)
		}
	}
}

// The payload is the wire contract evaluation nodes and precompute workers
// of other versions read: its JSON must not change.
func TestEncodeWire(t *testing.T) {
	cases := []struct {
		name string
		n    Notice
		want string
	}{
		{"flag", Notice{Team: 3, Kind: KindFlag, ID: "12", Key: "beta", Version: 4, Op: "updated"},
			`{"team_id":3,"kind":"flag","id":"12","key":"beta","version":4,"op":"updated"}`},
		{"key omitted", Notice{Team: 3, Kind: KindKey, ID: "k1", Version: 1, Op: "rotated"},
			`{"team_id":3,"kind":"key","id":"k1","version":1,"op":"rotated"}`},
		{"reconcile", Notice{Team: 9, Kind: KindPrecompute, Op: "reconcile"},
			`{"team_id":9,"kind":"precompute","id":"","version":0,"op":"reconcile"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data, err := c.n.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if string(data) != c.want {
				t.Errorf("Encode\n got %s\nwant %s", data, c.want)
			}
			back, err := Parse("", c.n.Subject(""), data)
			if err != nil || back != c.n {
				t.Errorf("Parse(Encode) = %+v, %v; want %+v", back, err, c.n)
			}
		})
	}
}

func TestEncodeRefuses(t *testing.T) {
	for _, n := range []Notice{
		{Team: 0, Kind: KindFlag},
		{Team: -1, Kind: KindFlag},
		{Team: 1},
		{Team: 1, Kind: KindFlag, Key: strings.Repeat("k", MaxSize)},
		{Team: 1, Kind: KindKeyRevoked, ID: "key_1"},
		{Team: 0, Kind: KindKeyRevoked},
	} {
		if data, err := n.Encode(); !errors.Is(err, ErrNotice) {
			t.Errorf("Encode(%+.40v) = %.40s, %v; want ErrNotice", n, data, err)
		}
	}
}

func TestNamespaces(t *testing.T) {
	staging := namespace.Name("staging")
	if s := Subject(staging, 42); s != "staging.changes.42" {
		t.Errorf("Subject(staging, 42) = %q", s)
	}
	if w := Wildcard(staging); w != "staging.changes.>" {
		t.Errorf("Wildcard(staging) = %q", w)
	}
	if w := Wildcard(""); w != "vexil.changes.>" {
		t.Errorf("Wildcard(default) = %q", w)
	}
	// A notice of one namespace is not one of another.
	if _, ok := TeamOf("", Subject(staging, 42)); ok {
		t.Error("the default namespace reads staging's subject")
	}
	if _, ok := TeamOf(staging, Subject("", 42)); ok {
		t.Error("staging reads the default namespace's subject")
	}
	if _, err := Parse(staging, Subject("", 42), []byte(`{"kind":"flag"}`)); !errors.Is(err, ErrSubject) {
		t.Errorf("Parse of another namespace's notice: %v, want ErrSubject", err)
	}
	if n, err := Parse(staging, Subject(staging, 42), []byte(`{"kind":"flag"}`)); err != nil || n.Team != 42 || n.Kind != KindFlag {
		t.Errorf("Parse in staging = %+v, %v", n, err)
	}
}

func TestParse(t *testing.T) {
	cases := []struct {
		name    string
		subject string
		data    string
		want    Notice
		err     error
	}{
		{"full", "vexil.changes.1", `{"team_id":1,"kind":"cohort","id":"5","version":2,"op":"deleted"}`,
			Notice{Team: 1, Kind: KindCohort, ID: "5", Version: 2, Op: "deleted"}, nil},
		{"team from the subject", "vexil.changes.4", `{"kind":"team"}`, Notice{Team: 4, Kind: KindTeam}, nil},
		{"unknown members and kinds", "vexil.changes.4", `{"team":4,"kind":"segment","extra":[1]}`,
			Notice{Team: 4, Kind: "segment"}, nil},
		{"another team", "vexil.changes.4", `{"team_id":5,"kind":"flag"}`, Notice{Team: 4}, ErrNotice},
		{"not json", "vexil.changes.4", `{not json`, Notice{Team: 4}, ErrNotice},
		{"empty", "vexil.changes.4", ``, Notice{Team: 4}, ErrNotice},
		{"null", "vexil.changes.4", `null`, Notice{Team: 4}, ErrNotice},
		{"array", "vexil.changes.4", `[1]`, Notice{Team: 4}, ErrNotice},
		{"wrong type", "vexil.changes.4", `{"team_id":"4","kind":"flag"}`, Notice{Team: 4}, ErrNotice},
		{"too large", "vexil.changes.4", `{"kind":"flag","op":"` + strings.Repeat("x", MaxSize) + `"}`, Notice{Team: 4}, ErrNotice},
		{"bad subject", "vexil.changes.x", `{"team_id":1,"kind":"flag"}`, Notice{}, ErrSubject},
		{"other subject", "vexil.persons.1", `{"team_id":1,"kind":"flag"}`, Notice{}, ErrSubject},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Parse("", c.subject, []byte(c.data))
			if got != c.want {
				t.Errorf("notice %+v, want %+v", got, c.want)
			}
			if c.err == nil && err != nil || c.err != nil && !errors.Is(err, c.err) {
				t.Errorf("err %v, want %v", err, c.err)
			}
		})
	}
}

func TestInstanceNotice(t *testing.T) {
	n := Notice{Kind: KindKeyRevoked, ID: "key_0a", Version: 2, Op: "revoked"}
	for _, ns := range []namespace.Name{namespace.Default, "staging"} {
		inst := InstanceSubject(ns)
		if got := n.Subject(ns); got != inst {
			t.Fatalf("Subject(%q) = %q, want %q", ns, got, inst)
		}
		if _, ok := TeamOf(ns, inst); ok || strings.HasPrefix(inst, Prefix(ns)) {
			t.Fatalf("%q must lie outside the team subjects (%s)", inst, Wildcard(ns))
		}
	}
	if got := InstanceSubject(namespace.Default); got != "vexil.instance.changes" {
		t.Fatalf("InstanceSubject(default) = %q: the default namespace keeps the names it had", got)
	}
	data, err := n.Encode()
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"team_id":0,"kind":"key_revoked","id":"key_0a","version":2,"op":"revoked"}`
	if string(data) != want {
		t.Fatalf("Encode\n got %s\nwant %s", data, want)
	}
	back, err := ParseInstance(data)
	if err != nil || back != n {
		t.Fatalf("ParseInstance(Encode) = %+v, %v; want %+v", back, err, n)
	}
	for _, bad := range []string{``, `null`, `{not json`, `{"kind":"flag","id":"x"}`,
		`{"team_id":3,"kind":"key_revoked","id":"x"}`, `{"kind":"key_revoked","op":"` + strings.Repeat("x", MaxSize) + `"}`} {
		if got, err := ParseInstance([]byte(bad)); !errors.Is(err, ErrNotice) || got != (Notice{}) {
			t.Errorf("ParseInstance(%.40q) = %+v, %v; want ErrNotice and a zero notice", bad, got, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("vexil.changes.1", `{"team_id":1,"kind":"flag","id":"1","key":"k","version":1,"op":"created"}`)
	f.Add("vexil.changes.2", `{"kind":"key"}`)
	f.Add("vexil.changes.01", `{}`)
	f.Fuzz(func(t *testing.T, subject, data string) {
		n, err := Parse("", subject, []byte(data))
		team, ok := TeamOf("", subject)
		if !ok {
			if !errors.Is(err, ErrSubject) || n != (Notice{}) {
				t.Fatalf("bad subject %q: %+v, %v", subject, n, err)
			}
			return
		}
		if n.Team != team {
			t.Fatalf("team %d, subject says %d", n.Team, team)
		}
		if err != nil {
			if !errors.Is(err, ErrNotice) || n != (Notice{Team: team}) {
				t.Fatalf("bad payload: %+v, %v", n, err)
			}
			return
		}
		if n.Kind == "" {
			return // Encode needs a kind
		}
		data2, err := n.Encode()
		if err != nil {
			if len(data) > MaxSize/2 {
				return // escaping may grow a payload past MaxSize
			}
			t.Fatalf("re-encode %+v: %v", n, err)
		}
		if back, err := Parse("", subject, data2); err != nil || back != n {
			t.Fatalf("round trip %+v -> %+v, %v", n, back, err)
		}
	})
}
