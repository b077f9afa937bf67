package snapshot_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/vexil-dev/vexil/snapshot"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/pebblestore"
)

// TestCreateFromCheckpoint: a Pebble snapshot reads a checkpoint taken
// after the cut, so persons written once it is taken (while the scan runs)
// are not in the snapshot, the checkpoint refuses writes, and it is gone
// once Create returns.
func TestCreateFromCheckpoint(t *testing.T) {
	ctx := context.Background()
	live := seeded(t, 200).(*pebblestore.Store)
	cpDir := filepath.Join(t.TempDir(), "checkpoint")
	var frozen *pebblestore.Store
	released := false
	o := snapshot.Options{Store: live, Dir: filepath.Join(t.TempDir(), "snap"), Team: 1,
		Checkpoint: func(_ context.Context, reuse string) (*snapshot.Frozen, error) {
			if reuse != "" {
				return nil, fmt.Errorf("asked to reuse %q in a first run", reuse)
			}
			cp, err := live.OpenCheckpoint(cpDir, nil)
			if err != nil {
				return nil, err
			}
			frozen = cp
			// Writes continuing after the checkpoint: 50 more persons of
			// team 1 in the live store.
			var b store.Batch
			for i := range 50 {
				b.PutPerson(store.NewPerson(1, fmt.Sprintf("late%d", i)))
			}
			if err := live.Apply(ctx, &b); err != nil {
				return nil, err
			}
			return &snapshot.Frozen{Store: cp, Path: cpDir, Release: func(remove bool) error {
				released = remove
				return errors.Join(cp.Close(), os.RemoveAll(cpDir))
			}}, nil
		}}
	var during error
	o.Progress = func(p snapshot.Progress) {
		if during == nil {
			var b store.Batch
			b.PutPerson(store.NewPerson(1, "into-the-checkpoint"))
			during = frozen.Apply(ctx, &b)
		}
	}
	m, err := snapshot.Create(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if during == nil {
		t.Error("a write into the read-only checkpoint succeeded")
	}
	if got := m.Table(snapshot.TablePersons).Rows; got != 100 {
		t.Errorf("persons %d, want the 100 of team 1 before the checkpoint (not the 50 written after)", got)
	}
	if !released {
		t.Error("the checkpoint was not released")
	}
	if _, err := os.Stat(cpDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("checkpoint directory after Create: %v, want removed", err)
	}
	n := 0
	if err := live.Dump(ctx, func(e store.Entity) error {
		if e.Person != nil && e.Person.Team == 1 {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 150 {
		t.Errorf("live store holds %d persons of team 1, want 150", n)
	}
}
