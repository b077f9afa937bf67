package snapshot_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/vexil-dev/vexil/snapshot"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/pebblestore"
)

// countingStore counts the entities a dump reads.
type countingStore struct {
	*pebblestore.Store
	reads int
}

func (c *countingStore) DumpFrom(ctx context.Context, after []byte, fn func(store.Entity, []byte) error) error {
	return c.Store.DumpFrom(ctx, after, func(e store.Entity, pos []byte) error {
		c.reads++
		return fn(e, pos)
	})
}

// progressFile is the part of progress.json this test reads.
type progressFile struct {
	Done    []snapshot.Table `json:"done"`
	Current *snapshot.Table  `json:"current"`
}

// TestCreateResumesAtPart kills a snapshot mid-table (the context is
// canceled once N parts are complete) and runs Create again: it keeps the
// parts recorded with their checksums (the same files, not rewritten),
// reads only the entities after the last one of the last complete part,
// and ends with the manifest, every part's SHA-256 included, of an
// uninterrupted run. On the live store it is killed in the rows table
// (derived: resumable once its sources are complete); reading a
// checkpoint, which the resumed run opens again (the same view), it is
// killed in the index, written before its sources. A kept part damaged in
// between is caught by its checksum and its table written again.
func TestCreateResumesAtPart(t *testing.T) {
	ctx := context.Background()
	live := seeded(t, 2000).(*pebblestore.Store)
	src := &countingStore{Store: live}
	ref, err := snapshot.Create(ctx, snapshot.Options{Store: src, Dir: filepath.Join(t.TempDir(), "ref"), RowGroupRows: 50, PartRows: 100})
	if err != nil {
		t.Fatal(err)
	}
	full := src.reads

	cpDir := filepath.Join(t.TempDir(), "checkpoint")
	var reused []bool
	checkpoint := func(_ context.Context, reuse string) (*snapshot.Frozen, error) {
		var cp *pebblestore.Store
		var err error
		if reuse != "" {
			cp, err = pebblestore.Open(pebblestore.Config{Dir: reuse, ReadOnly: true})
		} else {
			cp, err = live.OpenCheckpoint(cpDir, nil)
		}
		if err != nil {
			return nil, err
		}
		reused = append(reused, reuse != "")
		src.Store = cp
		return &snapshot.Frozen{Store: src, Path: cpDir, Reused: reuse != "", Release: func(remove bool) error {
			err := cp.Close()
			if remove {
				err = errors.Join(err, os.RemoveAll(cpDir))
			}
			return err
		}}, nil
	}
	for _, c := range []struct {
		name       string
		killAt     int // parts complete
		table      string
		checkpoint bool
		damage     bool
	}{
		// Key order: groups (1 part), index, mappings, persons, rows (20 each).
		{"live store, in rows", 1 + 20*3 + 7, snapshot.TableRows, false, false},
		{"checkpoint, in the index", 7, snapshot.TableIndex, true, false},
		{"checkpoint, damaged part", 7, snapshot.TableIndex, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "snap")
			opts := snapshot.Options{Store: src, Dir: dir, RowGroupRows: 50, PartRows: 100}
			if c.checkpoint {
				opts.Checkpoint = checkpoint
			}
			src.Store = live
			reused = nil
			cctx, cancel := context.WithCancel(ctx)
			killed := opts
			killed.Progress = func(p snapshot.Progress) {
				if p.Parts >= c.killAt {
					cancel()
				}
			}
			_, err := snapshot.Create(cctx, killed)
			cancel()
			if err == nil {
				t.Fatal("the interrupted create succeeded")
			}
			b, err := os.ReadFile(filepath.Join(dir, "progress.json"))
			if err != nil {
				t.Fatal(err)
			}
			var pf progressFile
			if err := json.Unmarshal(b, &pf); err != nil {
				t.Fatal(err)
			}
			if pf.Current == nil || pf.Current.Name != c.table || len(pf.Current.Parts) == 0 {
				t.Fatalf("progress.json after the kill: %s, want the %s table with its complete parts", b, c.table)
			}
			kept := pf.Current.Rows
			for _, tb := range pf.Done {
				kept += tb.Rows
			}
			first := filepath.Join(dir, filepath.FromSlash(pf.Current.Parts[0].File))
			before, err := os.Stat(first)
			if err != nil {
				t.Fatal(err)
			}
			if c.damage {
				b, err := os.ReadFile(first)
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)/2] ^= 0xff
				if err := os.WriteFile(first, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			src.Store = live
			src.reads = 0
			m, err := snapshot.Create(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.Tables, ref.Tables) {
				t.Errorf("resumed manifest tables\n%+v\nuninterrupted\n%+v", m.Tables, ref.Tables)
			}
			if c.checkpoint && !reflect.DeepEqual(reused, []bool{false, true}) {
				t.Errorf("checkpoints reused %v, want a new one, then the same one again", reused)
			}
			if _, err := os.Stat(cpDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("checkpoint after the complete run: %v, want removed", err)
			}
			if c.damage {
				if src.reads == full-int(kept) {
					t.Errorf("the damaged part's table was not read again (%d reads)", src.reads)
				}
			} else {
				if src.reads != full-int(kept) {
					t.Errorf("the resumed run read %d entities, want %d (all %d but the %d in the kept tables and parts)", src.reads, full-int(kept), full, kept)
				}
				after, err := os.Stat(first)
				if err != nil || !os.SameFile(before, after) {
					t.Errorf("the kept part %s was rewritten (%v)", pf.Current.Parts[0].File, err)
				}
			}
			dst := pebbleBackend().open(t)
			if _, err := snapshot.Restore(ctx, dir, dst, snapshot.RestoreOptions{}); err != nil {
				t.Fatal(err)
			}
			if got, want := digest(t, dst), digest(t, live); got != want {
				t.Fatalf("restored digest %s, source %s", got, want)
			}
		})
	}
}
