package snapshot_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/snapshot"
	"github.com/vexil-dev/vexil/store"
)

// TestWhatIfGroups: a flag aggregated by company, targeting companies on
// the pro plan, evaluated over a snapshot with a groups file: the persons
// of the pro company match, those of the free company and those the file
// gives no company do not; the group type comes from the snapshot.
func TestWhatIfGroups(t *testing.T) {
	ctx := context.Background()
	src := pebbleBackend().open(t)
	var b store.Batch
	for i := range 10 {
		p := store.NewPerson(1, fmt.Sprintf("p%d", i))
		p.Version = 1
		b.PutPerson(p)
		d := fmt.Sprintf("d%d", i)
		b.PutMapping(store.Mapping{Team: 1, DistinctID: d, PersonID: p.ID, Version: 1})
		b.PutRow(&store.Row{Team: 1, DistinctID: d, PersonID: p.ID, PersonVersion: 1, Properties: []byte(`{}`)})
	}
	for key, plan := range map[string]string{"acme": "pro", "initech": "free"} {
		g := store.NewGroup(1, 0, key)
		g.Version = 1
		g.Properties = []byte(`{"plan":"` + plan + `"}`)
		b.PutGroup(g)
	}
	b.PutGroupType(store.GroupType{Team: 1, Index: 0, Name: "company"})
	if err := src.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "snap")
	if _, err := snapshot.Create(ctx, snapshot.Options{Store: src, Dir: dir}); err != nil {
		t.Fatal(err)
	}
	d, err := snapshot.ParseFlagFile([]byte(`{"key":"pro-companies","active":true,"filters":{"aggregation_group_type_index":0,
		"groups":[{"properties":[{"key":"plan","type":"group","group_type_index":0,"operator":"exact","value":"pro"}],"rollout_percentage":100}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	var file strings.Builder
	for i := range 9 { // d9 has no company
		company := "acme"
		if i >= 5 {
			company = "initech"
		}
		if i == 8 {
			company = "globex" // not in the snapshot: no properties
		}
		fmt.Fprintf(&file, `{"distinct_id":"d%d","groups":{"company":%q}}`+"\n", i, company)
	}
	groups, err := snapshot.ParseGroupsFile(strings.NewReader(file.String()))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	n, err := snapshot.WhatIf(ctx, dir, snapshot.WhatIfOptions{Definitions: d, Team: 1, Groups: groups, Now: time.Unix(1_800_000_000, 0)}, &out)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := parquet.Read[snapshot.WhatIfRecord](bytes.NewReader(out.Bytes()), int64(out.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if n != 10 || len(recs) != 10 {
		t.Fatalf("%d results (%d read), want 10", n, len(recs))
	}
	for _, r := range recs {
		var i int
		fmt.Sscanf(r.DistinctID, "d%d", &i)
		if want := i < 5; r.Enabled != want {
			t.Errorf("%s: enabled %v (%s), want %v", r.DistinctID, r.Enabled, r.Reason, want)
		}
	}
	byID := map[string]snapshot.WhatIfRecord{}
	for _, r := range recs {
		byID[r.DistinctID] = r
	}
	if byID["d0"].Reason != "condition_match" || byID["d5"].Reason != "no_condition_match" || byID["d9"].Reason == byID["d5"].Reason {
		t.Errorf("reasons: d0 %s, d5 %s, d9 %s: want a match, no match, and no group", byID["d0"].Reason, byID["d5"].Reason, byID["d9"].Reason)
	}

	// Without the groups file no row has a company: nothing matches.
	out.Reset()
	if _, err := snapshot.WhatIf(ctx, dir, snapshot.WhatIfOptions{Definitions: d, Team: 1, Now: time.Unix(1_800_000_000, 0)}, &out); err != nil {
		t.Fatal(err)
	}
	recs, err = parquet.Read[snapshot.WhatIfRecord](bytes.NewReader(out.Bytes()), int64(out.Len()))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Enabled {
			t.Errorf("%s enabled without a groups file", r.DistinctID)
		}
	}

	// A group type the definitions do not know, and malformed lines, are
	// refused naming the field and the line.
	bad, err := snapshot.ParseGroupsFile(strings.NewReader(`{"distinct_id":"d0","groups":{"project":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.WhatIf(ctx, dir, snapshot.WhatIfOptions{Definitions: d, Team: 1, Groups: bad}, &out); !isField(err, "groups-file") || !strings.Contains(err.Error(), `"project"`) {
		t.Errorf("unknown group type: %v", err)
	}
	for _, in := range []string{`{"distinct_id":"d0","groups":{"company":""}}`, "{}\n", `{"distinct_id":"d0","grups":{}}`, "\n\nnot json"} {
		if _, err := snapshot.ParseGroupsFile(strings.NewReader(in)); !isField(err, "groups-file") {
			t.Errorf("%q: %v, want refused naming groups-file", in, err)
		}
	}
	if _, err := snapshot.ParseGroupsFile(strings.NewReader("\n\nnot json")); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("malformed line 3: %v", err)
	}
}

func isField(err error, field string) bool {
	e := errcode.From(err)
	return e != nil && e.Field == field
}
