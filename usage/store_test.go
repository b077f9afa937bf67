package usage_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/memstore"
	"github.com/vexil-dev/vexil/store/pebblestore"
	"github.com/vexil-dev/vexil/store/scyllastore/scyllastoretest"
)

// backends returns each store that keeps usage rows; ScyllaDB (Cassandra)
// with VEXIL_TEST_CASSANDRA (skipped without it, failed under CI=true).
func backends(t *testing.T) map[string]func(t *testing.T) store.UsageStore {
	return map[string]func(t *testing.T) store.UsageStore{
		"memstore": func(t *testing.T) store.UsageStore { return memstore.New() },
		"pebblestore": func(t *testing.T) store.UsageStore {
			s, err := pebblestore.Open(pebblestore.Config{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		"scyllastore": func(t *testing.T) store.UsageStore {
			if testing.Short() {
				t.Skip("Cassandra: skipped with -short")
			}
			return scyllastoretest.New(t)
		},
	}
}

// TestUsageStoreContract: puts replace per (team, flag, kind, bucket,
// node), scans return one partition's bucket range in (bucket, node)
// order, bounds are refused, sweeps delete expired rows.
func TestUsageStoreContract(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			ctx := context.Background()
			now := time.Now()
			far := now.Add(time.Hour).Unix()
			rows := []store.UsageRow{
				{Team: 1, Flag: "a", Kind: store.UsageMinute, Bucket: 120, Node: "n2", Value: []byte("2"), ExpiresAt: far},
				{Team: 1, Flag: "a", Kind: store.UsageMinute, Bucket: 60, Node: "n1", Value: []byte("1"), ExpiresAt: far},
				{Team: 1, Flag: "a", Kind: store.UsageMinute, Bucket: 120, Node: "n1", Value: []byte("old"), ExpiresAt: far},
				{Team: 1, Flag: "a", Kind: store.UsageHour, Bucket: 0, Node: "n1", Value: []byte("h")},
				{Team: 1, Flag: "ab", Kind: store.UsageMinute, Bucket: 60, Node: "n1", Value: []byte("other flag")},
				{Team: 2, Flag: "a", Kind: store.UsageMinute, Bucket: 60, Node: "n1", Value: []byte("other team")},
				{Team: 1, Flag: "a", Kind: store.UsageMinute, Bucket: 180, Node: "n1", Value: []byte("past to")},
			}
			if err := st.PutUsage(ctx, rows); err != nil {
				t.Fatal(err)
			}
			if err := st.PutUsage(ctx, []store.UsageRow{{Team: 1, Flag: "a", Kind: store.UsageMinute, Bucket: 120, Node: "n1", Value: []byte("new"), ExpiresAt: far}}); err != nil {
				t.Fatal(err)
			}
			var got []store.UsageRow
			if err := st.ScanUsage(ctx, 1, "a", store.UsageMinute, 60, 180, func(r store.UsageRow) error { got = append(got, r); return nil }); err != nil {
				t.Fatal(err)
			}
			want := []struct {
				bucket int64
				node   string
				value  string
			}{{60, "n1", "1"}, {120, "n1", "new"}, {120, "n2", "2"}}
			if len(got) != len(want) {
				t.Fatalf("scan = %+v, want %+v", got, want)
			}
			for i, w := range want {
				g := got[i]
				if g.Bucket != w.bucket || g.Node != w.node || !bytes.Equal(g.Value, []byte(w.value)) || g.Team != 1 || g.Flag != "a" || g.Kind != store.UsageMinute || g.ExpiresAt != far {
					t.Errorf("row %d = %+v, want %+v", i, g, w)
				}
			}
			stop := errors.New("stop")
			n := 0
			if err := st.ScanUsage(ctx, 1, "a", store.UsageMinute, 0, 1000, func(store.UsageRow) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
				t.Errorf("scan stopped by fn: err %v after %d rows, want stop after 1", err, n)
			}
			for _, bad := range []store.UsageRow{
				{Team: 1, Flag: "a", Kind: 'z'},
				{Team: 1, Flag: string(make([]byte, store.MaxUsageFlagBytes+1)), Kind: store.UsageDay},
				{Team: 1, Flag: "a", Kind: store.UsageDay, Value: make([]byte, store.MaxUsageValueBytes+1)},
				{Team: 1, Flag: "a", Kind: store.UsageDay, Bucket: -1},
			} {
				if err := st.PutUsage(ctx, []store.UsageRow{bad}); !errors.Is(err, store.ErrInvalid) {
					t.Errorf("PutUsage(%c, %d-byte flag) = %v, want ErrInvalid", bad.Kind, len(bad.Flag), err)
				}
			}
			// Sweep: rows expired by then go (ScyllaDB's TTL does it on
			// its own clock: nothing to sweep there).
			swept, err := st.SweepUsage(ctx, now.Add(2*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if name == "scyllastore" {
				return
			}
			if swept != 3 {
				t.Errorf("swept %d rows, want the 3 with an expiry", swept)
			}
			got = nil
			_ = st.ScanUsage(ctx, 1, "a", store.UsageMinute, 0, 1000, func(r store.UsageRow) error { got = append(got, r); return nil })
			if len(got) != 1 || got[0].Bucket != 180 {
				t.Errorf("after sweep: %+v, want only the row without expiry", got)
			}
		})
	}
}
