package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vexil-dev/vexil/errcode"
)

// FormatVersion is the manifest's format version. A reader refuses a
// manifest of a newer version.
const FormatVersion = 1

// File names in a snapshot directory.
const (
	// ManifestFile is written last, when every part is complete: a
	// directory without it is not a snapshot (at most one being written, or
	// a crashed one that Create resumes).
	ManifestFile = "manifest.json"
	// progressFile records a snapshot being written: its cut and the
	// tables already complete, so that Create resumes after a crash.
	progressFile = "progress.json"
	// maxManifestBytes bounds the manifest a reader accepts.
	maxManifestBytes = 16 << 20
)

// ErrCorrupt reports a snapshot whose files do not match the manifest (a
// checksum, a size, a row count) or do not decode. Test with errors.Is.
var ErrCorrupt = errors.New("snapshot: corrupt")

// Manifest describes a complete snapshot. Its checksums cover every data
// file; Verify and Restore check them before they trust a byte.
type Manifest struct {
	FormatVersion int `json:"format_version"`
	// Team is the team exported, 0 for every team.
	Team int64 `json:"team"`
	// Backend names the store the snapshot was taken from (pebble,
	// scylla, memory).
	Backend   string    `json:"backend"`
	CreatedAt time.Time `json:"created_at"`
	// Stream is the JetStream ingest stream the sequences refer to.
	Stream string `json:"stream,omitempty"`
	// CutSequence is the projector's applied sequence read before the scan:
	// every message at or below it is in the snapshot. Replay starts after
	// it.
	CutSequence uint64 `json:"cut_sequence"`
	// EndSequence is the stream's last sequence read after the scan: the
	// snapshot holds nothing applied from a later message, so replaying
	// (CutSequence, S] for any S >= EndSequence gives exactly the state
	// production had at S (package documentation).
	EndSequence uint64 `json:"end_sequence"`
	// Tables in restore order, each with its parts.
	Tables []Table `json:"tables"`
}

// Table is one table's file set.
type Table struct {
	Name  string `json:"name"`
	Rows  int64  `json:"rows"`
	Parts []Part `json:"parts"`
}

// Part is one Parquet file of a table.
type Part struct {
	// File is relative to the snapshot directory.
	File   string `json:"file"`
	Rows   int64  `json:"rows"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Rows is the manifest's total row count.
func (m *Manifest) Rows() int64 {
	var n int64
	for _, t := range m.Tables {
		n += t.Rows
	}
	return n
}

// Table returns the named table, or nil.
func (m *Manifest) Table(name string) *Table {
	for i := range m.Tables {
		if m.Tables[i].Name == name {
			return &m.Tables[i]
		}
	}
	return nil
}

// ReadManifest reads and checks dir's manifest: present, bounded, of a
// known format version, with parts that stay inside dir.
func ReadManifest(dir string) (*Manifest, error) {
	m := new(Manifest)
	if err := readJSON(filepath.Join(dir, ManifestFile), m); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, perr := os.Stat(filepath.Join(dir, progressFile)); perr == nil {
				return nil, errcode.New(errcode.FailedPrecondition, "snapshot %s is incomplete (being written, or interrupted: run create again to resume)", dir)
			}
			return nil, errcode.New(errcode.NotFound, "no snapshot in %s (no %s)", dir, ManifestFile)
		}
		return nil, err
	}
	if m.FormatVersion < 1 || m.FormatVersion > FormatVersion {
		return nil, errcode.New(errcode.FailedPrecondition, "snapshot %s: format_version %d not supported (this build reads 1..%d)", dir, m.FormatVersion, FormatVersion)
	}
	for _, t := range m.Tables {
		if !knownTable(t.Name) {
			return nil, fmt.Errorf("%w: %s: unknown table %q", ErrCorrupt, dir, t.Name)
		}
		var n int64
		for _, p := range t.Parts {
			if !filepath.IsLocal(p.File) {
				return nil, fmt.Errorf("%w: %s: part file %q is outside the snapshot", ErrCorrupt, dir, p.File)
			}
			n += p.Rows
		}
		if n != t.Rows {
			return nil, fmt.Errorf("%w: %s: table %s: parts hold %d rows, table says %d", ErrCorrupt, dir, t.Name, n, t.Rows)
		}
	}
	return m, nil
}

func knownTable(name string) bool {
	if name == TableDefinitions || name == TableCohortMembers {
		return true
	}
	for _, t := range Tables {
		if t == name {
			return true
		}
	}
	return false
}

func readJSON(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() > maxManifestBytes {
		return fmt.Errorf("%w: %s is %d bytes, over the %d limit", ErrCorrupt, path, st.Size(), maxManifestBytes)
	}
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	return nil
}

// writeJSON writes v to path atomically (temporary file, fsync, rename).
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
