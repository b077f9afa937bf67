package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/parquet-go/parquet-go"
)

// readBatch is how many records a reader decodes at a time.
const readBatch = 1024

// Verify reads dir's manifest and checks every part against it: its size,
// its SHA-256 and its Parquet row count. It returns the manifest, or an
// error wrapping ErrCorrupt that names the table, the file and the check
// that failed.
func Verify(ctx context.Context, dir string) (*Manifest, error) {
	return VerifyProgress(ctx, dir, nil)
}

// VerifyProgress is Verify calling progress, when set, after each part
// checked with the parts checked and the manifest's part count.
func VerifyProgress(ctx context.Context, dir string, progress func(done, total int)) (*Manifest, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	total, done := 0, 0
	for _, t := range m.Tables {
		total += len(t.Parts)
	}
	for _, t := range m.Tables {
		for _, p := range t.Parts {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := verifyPart(dir, t.Name, p); err != nil {
				return nil, err
			}
			done++
			if progress != nil {
				progress(done, total)
			}
		}
	}
	return m, nil
}

func verifyPart(dir, table string, p Part) error {
	path := filepath.Join(dir, filepath.FromSlash(p.File))
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: table %s: %v", ErrCorrupt, table, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("%w: table %s: %s: %v", ErrCorrupt, table, p.File, err)
	}
	if n != p.Bytes {
		return fmt.Errorf("%w: table %s: %s is %d bytes, the manifest says %d (truncated or replaced)", ErrCorrupt, table, p.File, n, p.Bytes)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != p.SHA256 {
		return fmt.Errorf("%w: table %s: %s: SHA-256 %s, the manifest says %s", ErrCorrupt, table, p.File, sum, p.SHA256)
	}
	pf, err := parquet.OpenFile(f, n)
	if err != nil {
		return fmt.Errorf("%w: table %s: %s: %v", ErrCorrupt, table, p.File, err)
	}
	if pf.NumRows() != p.Rows {
		return fmt.Errorf("%w: table %s: %s holds %d rows, the manifest says %d", ErrCorrupt, table, p.File, pf.NumRows(), p.Rows)
	}
	return nil
}

// ForEach calls fn with the records of table in m, in batches of at most
// 1024, part after part, checking each part's SHA-256 before decoding it.
// T is the table's record type (PersonRecord for persons, ...). The slice
// is reused after fn returns.
func ForEach[T any](ctx context.Context, dir string, m *Manifest, table string, fn func([]T) error) error {
	t := m.Table(table)
	if t == nil {
		return fmt.Errorf("%w: no table %s", ErrCorrupt, table)
	}
	buf := make([]T, readBatch)
	for _, p := range t.Parts {
		if err := verifyPart(dir, table, p); err != nil {
			return err
		}
		if err := readPart(ctx, filepath.Join(dir, filepath.FromSlash(p.File)), buf, fn); err != nil {
			return fmt.Errorf("%w: table %s: %s: %v", ErrCorrupt, table, p.File, err)
		}
	}
	return nil
}

func readPart[T any](ctx context.Context, path string, buf []T, fn func([]T) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return err
	}
	r := parquet.NewGenericReader[T](pf)
	defer r.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := r.Read(buf)
		if n > 0 {
			if ferr := fn(buf[:n]); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
