package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/vexil-dev/vexil/store/pebblestore"
)

// TestPebbleCheckpoint: a checkpoint is taken beside the store, kept when
// released without removal (an interrupted snapshot) and opened again when
// named; abandoned ones are removed when the next is taken; a named path
// that is not one of this data directory's checkpoints is never opened.
func TestPebbleCheckpoint(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	st, err := pebblestore.Open(pebblestore.Config{Dir: storeDir(data)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	take := pebbleCheckpoint(st, data, slog.New(slog.NewTextHandler(io.Discard, nil)))

	first, err := take(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if first.Reused || filepath.Dir(filepath.Dir(first.Path)) != data {
		t.Fatalf("first checkpoint %+v, want a new one in %s", first, data)
	}
	if err := first.Release(false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(first.Path); err != nil {
		t.Fatalf("a checkpoint released for a resume was removed: %v", err)
	}
	abandoned := filepath.Join(data, checkpointPrefix+"abandoned")
	if err := os.MkdirAll(abandoned, 0o755); err != nil {
		t.Fatal(err)
	}

	again, err := take(ctx, first.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Reused || again.Path != first.Path {
		t.Errorf("resumed checkpoint %+v, want %s reopened", again, first.Path)
	}
	if _, err := os.Stat(abandoned); !os.IsNotExist(err) {
		t.Errorf("abandoned checkpoint: %v, want removed", err)
	}
	if err := again.Release(true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(first.Path)); !os.IsNotExist(err) {
		t.Errorf("checkpoint after a complete snapshot: %v, want removed", err)
	}

	// progress.json naming a directory elsewhere: a new checkpoint.
	elsewhere := filepath.Join(t.TempDir(), checkpointPrefix+"x", "db")
	other, err := take(ctx, elsewhere)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Release(true)
	if other.Reused || other.Path == elsewhere {
		t.Errorf("checkpoint for a foreign path %+v, want a new one in %s", other, data)
	}
}
