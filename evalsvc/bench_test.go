package evalsvc

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/pebblestore"
)

// BenchmarkServeFlags50 is one /flags request end to end in process (no
// network): body decode, token lookup (cached), one Pebble row read, 50
// flags (the peers' workload), the v2 response written.
func BenchmarkServeFlags50(b *testing.B) {
	st, err := pebblestore.Open(pebblestore.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const persons = 10000
	countries := []string{"US", "DE", "FR"}
	var batch store.Batch
	for i := range persons {
		batch.PutRow(&store.Row{Team: 1, DistinctID: fmt.Sprintf("user-%d", i), PersonID: fmt.Sprintf("p%d", i), PersonVersion: 1,
			Properties: []byte(fmt.Sprintf(`{"country":%q,"email":"user-%d@example.com","plan":"pro"}`, countries[i%3], i))})
	}
	if err := st.Apply(context.Background(), &batch); err != nil {
		b.Fatal(err)
	}
	var defs flags.Definitions
	for i := range 50 {
		f := flags.Flag{ID: int64(i + 1), Key: fmt.Sprintf("flag-%02d", i), Active: true, Version: 1}
		r := 50.0
		if i%2 == 0 {
			f.Filters.Groups = []flags.Condition{{RolloutPercentage: &r}}
		} else {
			hundred := 100.0
			f.Filters.Groups = []flags.Condition{{Properties: []flags.PropertyFilter{{Key: "country", Type: "person", Value: json.RawMessage(`"US"`)}}, RolloutPercentage: &hundred}}
			f.Filters.Multivariate = &flags.Multivariate{Variants: []flags.Variant{{Key: "a", RolloutPercentage: 34}, {Key: "b", RolloutPercentage: 33}, {Key: "c", RolloutPercentage: 33}}}
		}
		defs.Flags = append(defs.Flags, f)
	}
	cat := &fakeCatalog{snaps: map[int64]catalog.TeamSnapshot{1: {Team: catalog.Team{ID: 1}, Definitions: defs}}, keys: map[string]catalog.APIKey{}, members: map[string]bool{}}
	cat.addKey("phc_bench", catalog.KeyProjectToken, []int64{1})
	s, err := New(Config{Store: st, Catalog: cat})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	bodies := make([]string, 1000)
	for i := range bodies {
		bodies[i] = fmt.Sprintf(`{"token":"phc_bench","distinct_id":"user-%d"}`, (i*7919)%persons)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/flags/?v=2", strings.NewReader(bodies[i%len(bodies)]))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		i++
	}
}
