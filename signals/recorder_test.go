package signals_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/signals"
)

// TestObserveTransitions walks one row through observations: the first is
// a baseline, each change of membership is one signal with the cause
// named by what changed, a repeated observation is none, and concurrent
// observers of the same change publish one signal between them.
func TestObserveTransitions(t *testing.T) {
	ctx := context.Background()
	ns := natstest.Start(t)
	kv, err := signals.Ensure(ctx, ns.JetStream, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r := signals.NewRecorder("", ns.JetStream, kv)
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	obs := func(props, ctrs uint64, at time.Time, ms ...signals.Membership) signals.Observation {
		return signals.Observation{Team: 3, DistinctID: "d/1 é", PersonID: "p", Properties: props, Counters: ctrs, Now: at, Members: ms}
	}
	in := func(c int64, until time.Time) signals.Membership {
		return signals.Membership{Cohort: c, Member: true, ValidUntil: until}
	}
	out := func(c int64) signals.Membership { return signals.Membership{Cohort: c} }

	steps := []struct {
		name string
		o    signals.Observation
		want []signals.Signal // ID, Type, Team, DistinctID, PersonID filled below
	}{
		{"baseline", obs(1, 0, t0, out(5), in(6, time.Time{})), nil},
		{"the same again", obs(1, 0, t0, out(5), in(6, time.Time{})), nil},
		{"an event enters 5", obs(1, 9, t0.Add(time.Second), in(5, t0.Add(time.Minute)), in(6, time.Time{})),
			[]signals.Signal{{Cohort: 5, Direction: signals.Entered, Cause: signals.CauseEvent, Time: t0.Add(time.Second), Ordinal: 1}}},
		{"time leaves 5, at its valid_until", obs(1, 9, t0.Add(90*time.Second), out(5), in(6, time.Time{})),
			[]signals.Signal{{Cohort: 5, Direction: signals.Left, Cause: signals.CauseTime, Time: t0.Add(time.Minute), Ordinal: 2}}},
		{"properties leave 6, a new cohort 7 gets its baseline", obs(2, 9, t0.Add(100*time.Second), out(5), out(6), in(7, time.Time{})),
			[]signals.Signal{{Cohort: 6, Direction: signals.Left, Cause: signals.CauseProperties, Time: t0.Add(100 * time.Second), Ordinal: 1}}},
		{"nothing changed but the definition of 5", obs(2, 9, t0.Add(110*time.Second), in(5, time.Time{}), out(6), in(7, time.Time{})),
			[]signals.Signal{{Cohort: 5, Direction: signals.Entered, Cause: signals.CauseDefinition, Time: t0.Add(110 * time.Second), Ordinal: 3}}},
	}
	var all []signals.Signal
	for _, s := range steps {
		got, err := r.Observe(ctx, s.o)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if len(got) != len(s.want) {
			t.Fatalf("%s: got %+v, want %+v", s.name, got, s.want)
		}
		for i, w := range s.want {
			w.Team, w.DistinctID, w.PersonID, w.Type = 3, "d/1 é", "p", signals.TypeOf(w.Direction)
			w.ID = signals.SignalID(3, "d/1 é", w.Cohort, w.Direction, w.Ordinal)
			g := got[i]
			if timeOK := g.Time.Equal(w.Time); timeOK {
				g.Time = w.Time
			}
			if g != w {
				t.Errorf("%s: got %+v, want %+v", s.name, got[i], w)
			}
		}
		all = append(all, got...)
	}

	// Two observers of the same change, racing: one signal in the stream.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := r.Observe(ctx, obs(2, 10, t0.Add(2*time.Minute), in(5, time.Time{}), in(6, time.Time{}), in(7, time.Time{}))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	st, err := ns.JetStream.Stream(ctx, signals.NamesOf("").Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(len(all)+1) {
		t.Fatalf("%d signals in the stream, want %d", info.State.Msgs, len(all)+1)
	}
	m, err := st.GetMsg(ctx, info.State.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	var last signals.Signal
	if err := json.Unmarshal(m.Data, &last); err != nil {
		t.Fatal(err)
	}
	if last.Cohort != 6 || last.Direction != signals.Entered || last.Ordinal != 2 || last.Cause != signals.CauseEvent || m.Subject != "vexil.signals.3.cohort" {
		t.Fatalf("the raced signal: %+v on %s", last, m.Subject)
	}
}

func TestSubjects(t *testing.T) {
	if got := signals.CohortSubject("", 42); got != "vexil.signals.42.cohort" {
		t.Fatalf("subject %q", got)
	}
	if got := signals.CohortSubject("staging", 42); got != "staging.signals.42.cohort" {
		t.Fatalf("subject %q", got)
	}
	for _, c := range []struct {
		subject string
		team    int64
		ok      bool
	}{
		{"vexil.signals.42.cohort", 42, true},
		{"vexil.signals.x.cohort", 0, false},
		{"vexil.signals.42.rollout", 0, false},
		{"staging.signals.42.cohort", 0, false},
	} {
		team, ok := signals.TeamOf("", c.subject)
		if team != c.team || ok != c.ok {
			t.Errorf("TeamOf(%q) = %d, %v", c.subject, team, ok)
		}
	}
	if a, b := signals.SignalID(1, "a", 2, signals.Entered, 1), signals.SignalID(1, "a", 2, signals.Left, 1); a == b || len(a) != 32 {
		t.Fatalf("ids %q %q", a, b)
	}
}

// TestObserveGroups: a group's row has its own record, apart from a
// person's with the same key and from another type's group: each is a
// baseline first, then one signal per transition, naming the group (type
// name and key) in place of a person.
func TestObserveGroups(t *testing.T) {
	ctx := context.Background()
	ns := natstest.Start(t)
	kv, err := signals.Ensure(ctx, ns.JetStream, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r := signals.NewRecorder("", ns.JetStream, kv)
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	group := func(gt int, name string, member bool, at time.Time) signals.Observation {
		return signals.Observation{Team: 3, GroupTypeIndex: gt, GroupType: name, GroupKey: "acme", Counters: uint64(at.Unix()), Now: at,
			Members: []signals.Membership{{Cohort: 5, Member: member}}}
	}
	person := signals.Observation{Team: 3, DistinctID: "acme", PersonID: "p", Counters: 1, Now: t0,
		Members: []signals.Membership{{Cohort: 5, Member: true}}}
	for i, o := range []signals.Observation{group(0, "company", false, t0), group(1, "project", true, t0), person} {
		if got, err := r.Observe(ctx, o); err != nil || len(got) != 0 {
			t.Fatalf("baseline %d: %+v %v", i, got, err)
		}
	}
	got, err := r.Observe(ctx, group(0, "company", true, t0.Add(time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	want := signals.Signal{ID: signals.GroupSignalID(3, 0, "acme", 5, signals.Entered, 1), Type: "cohort.entered", Team: 3, Cohort: 5,
		GroupType: "company", GroupKey: "acme", Direction: signals.Entered, Cause: signals.CauseEvent, Time: t0.Add(time.Second), Ordinal: 1}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("company acme entered: %+v, want %+v", got, want)
	}
	if want.ID == signals.GroupSignalID(3, 1, "acme", 5, signals.Entered, 1) || want.ID == signals.SignalID(3, "acme", 5, signals.Entered, 1) {
		t.Fatal("a group's signal id equals another type's or a person's")
	}
	// The project acme and the person acme kept their own records.
	if got, err := r.Observe(ctx, group(1, "project", true, t0)); err != nil || len(got) != 0 {
		t.Fatalf("project acme unchanged: %+v %v", got, err)
	}
	if got, err := r.Observe(ctx, person); err != nil || len(got) != 0 {
		t.Fatalf("person acme unchanged: %+v %v", got, err)
	}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["distinct_id"]; ok || m["group_type"] != "company" || m["group_key"] != "acme" {
		t.Fatalf("a group's signal in JSON: %s", b)
	}
}
