package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/store"
)

// Defaults of Options.
const (
	DefaultRowGroupRows = 8192
	DefaultPartRows     = 1 << 20
	// MaxRowGroupRows bounds a row group (and so the records held in
	// memory per table being written).
	MaxRowGroupRows = 1 << 20
)

// Cut is where the ingest stream stood when a scan started.
type Cut struct {
	// Stream is the ingest stream's name.
	Stream string
	// Sequence is the projector's applied sequence: every message at or
	// below it has been durably applied (the durable consumer's ack floor,
	// since the projector acknowledges a message only after its write).
	Sequence uint64
}

// Options configures Create.
type Options struct {
	// Store is read through Store.Dump. Required.
	Store store.Store
	// Backend names the store in the manifest (pebble, scylla, memory).
	Backend string
	// Dir is the snapshot directory: created if missing; an interrupted
	// snapshot in it is resumed; a complete one is refused.
	Dir string
	// Team restricts the snapshot to one team; 0 exports every team.
	Team int64
	// Cut returns the stream's cut; called once, before the scan. Nil
	// records sequence 0 (a store no stream feeds).
	Cut func(ctx context.Context) (Cut, error)
	// End returns the stream's last sequence; called after the scan. Nil
	// records the cut's sequence.
	End func(ctx context.Context) (uint64, error)
	// Catalog, when set, gives the definitions (flags, cohorts, early
	// access features, team settings, with their versions) written to the
	// definitions table.
	Catalog Catalog
	// RowGroupRows is the number of records per Parquet row group, the
	// unit a reader streams. Default DefaultRowGroupRows.
	RowGroupRows int
	// PartRows is the number of records per Parquet file. Default
	// DefaultPartRows.
	PartRows int
	// Checkpoint, when set, freezes the store after the cut is read:
	// Create scans the store it returns (a Pebble checkpoint opened
	// read-only) instead of Store. reuse is the Path of the checkpoint an
	// interrupted Create of the same snapshot left, to be opened again if
	// it still exists (the same view: every table and part already written
	// is kept). Nil scans Store itself.
	Checkpoint func(ctx context.Context, reuse string) (*Frozen, error)
	// Progress, when set, is called as records are written (every
	// RowGroupRows records of a table, and when a table is complete).
	Progress func(Progress)
	// Logger receives structured progress. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Frozen is a frozen copy of a store (a checkpoint) that Create reads.
type Frozen struct {
	Store store.Store
	// Path names it in progress.json, for a resumed Create.
	Path string
	// Reused is set when it is the interrupted run's checkpoint.
	Reused bool
	// Release closes it, and removes it when remove is set: Create keeps
	// it when it fails, for the resumed run to read the same view.
	Release func(remove bool) error
}

// Progress reports how far Create is.
type Progress struct {
	Table string
	// TableRows is what this table has written so far, Rows the whole
	// snapshot's.
	TableRows int64
	Rows      int64
	// Parts is the number of parts complete on disk (synced and renamed),
	// of every table, kept ones included.
	Parts int
	// Done is set on the last report of a table.
	Done    bool
	Elapsed time.Duration
}

// progressState is progress.json: what a resumed Create keeps.
type progressState struct {
	Team        int64     `json:"team"`
	Backend     string    `json:"backend"`
	CreatedAt   time.Time `json:"created_at"`
	Stream      string    `json:"stream"`
	CutSequence uint64    `json:"cut_sequence"`
	Done        []Table   `json:"done"`
	// Current is the table being written, with its parts complete on disk
	// (each with its size, row count and SHA-256), and Position the store
	// position of its last record: a resumed scan of a positioned store
	// starts after it and keeps those parts.
	Current  *Table `json:"current,omitempty"`
	Position []byte `json:"position,omitempty"`
	// Checkpoint is Frozen.Path of the checkpoint being read.
	Checkpoint string `json:"checkpoint,omitempty"`
}

// positioned is a store whose dump resumes after a position it reported
// (pebblestore.Store.DumpFrom). Create resumes a table at its last
// complete part on such a store, and rewrites the table otherwise.
type positioned interface {
	DumpFrom(ctx context.Context, after []byte, fn func(e store.Entity, pos []byte) error) error
}

func (o Options) withDefaults() Options {
	if o.RowGroupRows <= 0 {
		o.RowGroupRows = DefaultRowGroupRows
	}
	if o.PartRows <= 0 {
		o.PartRows = DefaultPartRows
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

func (o Options) validate() error {
	switch {
	case o.Store == nil:
		return errcode.New(errcode.InvalidArgument, "snapshot: store is required")
	case o.Dir == "":
		return errcode.New(errcode.InvalidArgument, "snapshot: dir is required")
	case o.Team < 0:
		return errcode.New(errcode.InvalidArgument, "snapshot: team %d is negative", o.Team)
	case o.RowGroupRows > MaxRowGroupRows:
		return errcode.New(errcode.InvalidArgument, "snapshot: row-group-rows %d over the %d limit", o.RowGroupRows, MaxRowGroupRows)
	case o.PartRows < o.RowGroupRows:
		return errcode.New(errcode.InvalidArgument, "snapshot: part-rows %d below row-group-rows %d", o.PartRows, o.RowGroupRows)
	}
	return nil
}

// Create writes a snapshot of o.Store into o.Dir and returns its manifest.
// It streams Store.Dump into one Parquet file set per table, at most
// RowGroupRows records per table in memory, each part written to a
// temporary name, synced and renamed. A table complete on disk is recorded
// in progress.json, so a Create interrupted by a crash resumes: it keeps
// the complete tables (not the derived ones when a source must be scanned
// again) and the first run's cut. The manifest is written last.
func Create(ctx context.Context, o Options) (*Manifest, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(o.Dir, ManifestFile)); err == nil {
		return nil, errcode.New(errcode.AlreadyExists, "snapshot: %s already holds a complete snapshot", o.Dir)
	}
	st, err := o.begin(ctx)
	if err != nil {
		return nil, err
	}
	start := o.Now()
	src, sameView := o.Store, false
	var frozen *Frozen
	if o.Checkpoint != nil {
		if frozen, err = o.Checkpoint(ctx, st.Checkpoint); err != nil {
			return nil, fmt.Errorf("snapshot: checkpoint: %w", err)
		}
		src, sameView, st.Checkpoint = frozen.Store, frozen.Reused, frozen.Path
		o.Logger.Info("snapshot reads a checkpoint", "path", frozen.Path, "reused", frozen.Reused, "took", o.Now().Sub(start).Round(time.Millisecond))
	}
	m, err := o.create(ctx, st, src, sameView, start)
	if frozen != nil {
		// Kept on failure: the resumed run reads the same view.
		if rerr := frozen.Release(err == nil); err == nil && rerr != nil {
			return nil, fmt.Errorf("snapshot: checkpoint: release: %w", rerr)
		}
	}
	return m, err
}

func (o Options) create(ctx context.Context, st *progressState, src store.Store, sameView bool, start time.Time) (*Manifest, error) {
	_, positionedSrc := src.(positioned)
	if err := o.prune(st, sameView, positionedSrc); err != nil {
		return nil, err
	}
	c := &creator{ctx: ctx, o: o, st: st, start: start, kept: map[string]bool{}, closed: map[string]bool{}}
	for _, t := range st.Done {
		c.kept[t.Name] = true
		c.total += t.Rows
	}
	if cur := st.Current; cur != nil {
		c.cur = &tableWriter{name: cur.Name, dir: o.Dir, groupRows: o.RowGroupRows, partRows: o.PartRows, rows: cur.Rows, parts: slices.Clone(cur.Parts)}
		c.total += cur.Rows
	}
	if len(st.Done) > 0 || st.Current != nil {
		args := []any{"dir", o.Dir, "tables_kept", len(st.Done), "cut_sequence", st.CutSequence}
		if st.Current != nil {
			args = append(args, "table", st.Current.Name, "parts_kept", len(st.Current.Parts))
		}
		o.Logger.Info("snapshot resumed", args...)
	}
	err := c.scan(src)
	if err == nil {
		err = c.finishTable()
	}
	if err != nil {
		c.abort()
		return nil, fmt.Errorf("snapshot: create %s: %w", o.Dir, err)
	}
	if o.Catalog != nil && !c.kept[TableDefinitions] {
		t, err := writeDefinitions(ctx, o.Catalog, o.Dir, st.Team, o.RowGroupRows)
		if err != nil {
			return nil, fmt.Errorf("snapshot: create %s: %w", o.Dir, err)
		}
		c.st.Done = append(c.st.Done, t)
		if err := writeJSON(filepath.Join(o.Dir, progressFile), c.st); err != nil {
			return nil, err
		}
	}
	if o.Catalog != nil && !c.kept[TableCohortMembers] {
		t, err := writeCohortMembers(ctx, o.Catalog, o.Dir, st.Team, o.RowGroupRows, o.PartRows)
		if err != nil {
			return nil, fmt.Errorf("snapshot: create %s: %w", o.Dir, err)
		}
		c.st.Done = append(c.st.Done, t)
		if err := writeJSON(filepath.Join(o.Dir, progressFile), c.st); err != nil {
			return nil, err
		}
	}
	end := st.CutSequence
	if o.End != nil {
		if end, err = o.End(ctx); err != nil {
			return nil, fmt.Errorf("snapshot: end sequence: %w", err)
		}
	}
	m := &Manifest{FormatVersion: FormatVersion, Team: st.Team, Backend: st.Backend, CreatedAt: st.CreatedAt,
		Stream: st.Stream, CutSequence: st.CutSequence, EndSequence: max(end, st.CutSequence)}
	for _, name := range Tables {
		i := slices.IndexFunc(c.st.Done, func(t Table) bool { return t.Name == name })
		if i < 0 {
			m.Tables = append(m.Tables, Table{Name: name, Parts: []Part{}})
			continue
		}
		m.Tables = append(m.Tables, c.st.Done[i])
	}
	for _, name := range []string{TableDefinitions, TableCohortMembers} {
		if i := slices.IndexFunc(c.st.Done, func(t Table) bool { return t.Name == name }); i >= 0 {
			m.Tables = append(m.Tables, c.st.Done[i])
		}
	}
	if err := writeJSON(filepath.Join(o.Dir, ManifestFile), m); err != nil {
		return nil, fmt.Errorf("snapshot: manifest: %w", err)
	}
	if err := os.Remove(filepath.Join(o.Dir, progressFile)); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	o.Logger.Info("snapshot complete", "dir", o.Dir, "rows", m.Rows(), "cut_sequence", m.CutSequence,
		"end_sequence", m.EndSequence, "elapsed", o.Now().Sub(start).Round(time.Millisecond))
	return m, nil
}

// begin starts a new snapshot (the cut, progress.json) or loads the state
// of an interrupted one, dropping the tables that must be scanned again.
func (o Options) begin(ctx context.Context) (*progressState, error) {
	pf := filepath.Join(o.Dir, progressFile)
	st := new(progressState)
	switch err := readJSON(pf, st); {
	case err == nil:
		if st.Team != o.Team {
			return nil, errcode.New(errcode.FailedPrecondition, "snapshot: %s holds an interrupted snapshot of team %d, not %d", o.Dir, st.Team, o.Team)
		}
		return st, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	if entries, err := os.ReadDir(o.Dir); err == nil && len(entries) > 0 {
		return nil, errcode.New(errcode.FailedPrecondition, "snapshot: %s is not empty and holds no snapshot", o.Dir)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	st = &progressState{Team: o.Team, Backend: o.Backend, CreatedAt: o.Now().UTC()}
	if o.Cut != nil {
		cut, err := o.Cut(ctx)
		if err != nil {
			return nil, fmt.Errorf("snapshot: cut: %w", err)
		}
		st.Stream, st.CutSequence = cut.Stream, cut.Sequence
	}
	return st, writeJSON(pf, st)
}

// prune decides what an interrupted run's tables and parts a resumed one
// keeps, removes the rest from disk and records it in progress.json.
// Parts are checked against their recorded size and SHA-256 (a table with
// a part damaged since is written again). When the resumed run reads the
// same view (the interrupted run's checkpoint), everything intact is kept.
// Otherwise the derived tables are kept only with both sources (the
// package documentation on consistency), and the current table's parts
// only when nothing before them is written again and the store resumes a
// dump at a position.
func (o Options) prune(st *progressState, sameView, positioned bool) error {
	intact := func(t Table) bool {
		for _, p := range t.Parts {
			if err := verifyPart(o.Dir, t.Name, p); err != nil {
				o.Logger.Warn("snapshot resume: a part does not match its checksum; the table is written again", "table", t.Name, "err", err)
				return false
			}
		}
		return true
	}
	n := len(st.Done)
	st.Done = slices.DeleteFunc(st.Done, func(t Table) bool { return !intact(t) })
	if st.Current != nil && !intact(*st.Current) {
		st.Current = nil
	}
	if !sameView {
		sourcesKept := true
		for _, name := range []string{TablePersons, TableMappings} {
			if !slices.ContainsFunc(st.Done, func(t Table) bool { return t.Name == name }) {
				sourcesKept = false
			}
		}
		st.Done = slices.DeleteFunc(st.Done, func(t Table) bool { return derivedTables[t.Name] && !sourcesKept })
		if st.Current != nil && derivedTables[st.Current.Name] && !sourcesKept {
			st.Current = nil
		}
	}
	// A dump resumed at the position would skip a table dropped before it.
	if len(st.Done) < n || !positioned {
		st.Current = nil
	}
	if st.Current == nil {
		st.Position = nil
	}
	for _, name := range append(slices.Clone(Tables), TableDefinitions, TableCohortMembers) {
		if st.Current != nil && st.Current.Name == name {
			if err := keepOnly(filepath.Join(o.Dir, name), st.Current.Parts); err != nil {
				return err
			}
			continue
		}
		if !slices.ContainsFunc(st.Done, func(t Table) bool { return t.Name == name }) {
			if err := os.RemoveAll(filepath.Join(o.Dir, name)); err != nil {
				return err
			}
		}
	}
	return writeJSON(filepath.Join(o.Dir, progressFile), st)
}

// keepOnly removes the files of a table's directory that are not parts
// (temporary files, parts written after the last recorded one).
func keepOnly(dir string, parts []Part) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !slices.ContainsFunc(parts, func(p Part) bool { return filepath.Base(filepath.FromSlash(p.File)) == e.Name() }) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// creator is one Create's scan: the table being written and the ones done.
type creator struct {
	ctx   context.Context
	o     Options
	st    *progressState
	start time.Time
	kept  map[string]bool // complete from an earlier run: skipped
	// closed tables must not reappear: Dump groups entities by kind on
	// every backend, and a table is complete when the next one starts.
	closed map[string]bool
	cur    *tableWriter
	total  int64
}

// scan dumps src from the resume position.
func (c *creator) scan(src store.Store) error {
	if p, ok := src.(positioned); ok {
		return p.DumpFrom(c.ctx, c.st.Position, c.entity)
	}
	return src.Dump(c.ctx, func(e store.Entity) error { return c.entity(e, nil) })
}

func (c *creator) entity(e store.Entity, pos []byte) error {
	if c.total%64 == 0 {
		if err := c.ctx.Err(); err != nil {
			return err
		}
	}
	table, team := tableOf(e)
	if table == "" || (c.o.Team != 0 && team != c.o.Team) || c.kept[table] {
		return nil
	}
	if c.cur == nil || c.cur.name != table {
		if c.closed[table] {
			return fmt.Errorf("store dump returned %s again after other tables: it must group entities by kind", table)
		}
		if err := c.finishTable(); err != nil {
			return err
		}
		c.cur = &tableWriter{name: table, dir: c.o.Dir, groupRows: c.o.RowGroupRows, partRows: c.o.PartRows}
	}
	closed, err := c.cur.add(e)
	if err != nil {
		return err
	}
	if closed && pos != nil {
		c.st.Current = &Table{Name: c.cur.name, Rows: c.cur.rows, Parts: slices.Clone(c.cur.parts)}
		c.st.Position = slices.Clone(pos)
		if err := writeJSON(filepath.Join(c.o.Dir, progressFile), c.st); err != nil {
			return err
		}
	}
	c.total++
	if c.cur.rows%int64(c.o.RowGroupRows) == 0 {
		c.report(false)
	}
	return nil
}

func (c *creator) report(done bool) {
	parts := len(c.cur.parts)
	for _, t := range c.st.Done {
		parts += len(t.Parts)
	}
	p := Progress{Table: c.cur.name, TableRows: c.cur.rows, Rows: c.total, Parts: parts, Done: done, Elapsed: c.o.Now().Sub(c.start)}
	if c.o.Progress != nil {
		c.o.Progress(p)
	}
	if done {
		c.o.Logger.Info("snapshot table complete", "table", p.Table, "rows", p.TableRows, "parts", len(c.cur.parts),
			"total_rows", p.Rows, "elapsed", p.Elapsed.Round(time.Millisecond))
	}
}

// finishTable closes the current table and records it in progress.json.
func (c *creator) finishTable() error {
	if c.cur == nil {
		return nil
	}
	if err := c.cur.closePart(); err != nil {
		return err
	}
	c.report(true)
	c.st.Done = append(c.st.Done, Table{Name: c.cur.name, Rows: c.cur.rows, Parts: c.cur.parts})
	c.st.Current, c.st.Position = nil, nil
	c.closed[c.cur.name] = true
	c.cur = nil
	return writeJSON(filepath.Join(c.o.Dir, progressFile), c.st)
}

func (c *creator) abort() {
	if c.cur != nil {
		c.cur.abort()
	}
}

// tableWriter writes one table's parts.
type tableWriter struct {
	name                string
	dir                 string
	groupRows, partRows int
	rows                int64 // of the table
	parts               []Part
	part                *partWriter
}

// add adds one record; closed reports that it completed a part.
func (t *tableWriter) add(e store.Entity) (closed bool, err error) {
	if t.part == nil {
		p, err := openPart(t.dir, t.name, len(t.parts), t.groupRows)
		if err != nil {
			return false, err
		}
		t.part = p
	}
	if err := t.part.add(e); err != nil {
		return false, err
	}
	t.rows++
	if t.part.rows >= int64(t.partRows) {
		return true, t.closePart()
	}
	return false, nil
}

// addRecord adds one record that is not a store entity (a table written
// from the catalog), splitting parts at partRows like add.
func (t *tableWriter) addRecord(r CohortMemberRecord) error {
	if t.part == nil {
		p, err := openPart(t.dir, t.name, len(t.parts), t.groupRows)
		if err != nil {
			return err
		}
		t.part = p
	}
	g := t.part.recs.(*genericRecords[CohortMemberRecord])
	g.buf = append(g.buf, r)
	t.part.rows++
	t.rows++
	if len(g.buf) >= t.groupRows {
		if err := g.flush(); err != nil {
			return err
		}
	}
	if t.part.rows >= int64(t.partRows) {
		return t.closePart()
	}
	return nil
}

func (t *tableWriter) closePart() error {
	if t.part == nil {
		return nil
	}
	p, err := t.part.close()
	t.part = nil
	if err != nil {
		return err
	}
	t.parts = append(t.parts, p)
	return nil
}

func (t *tableWriter) abort() {
	if t.part != nil {
		t.part.f.Close()
		os.Remove(t.part.tmp)
	}
}

// records buffers one row group of one table's records.
type records interface {
	add(e store.Entity) error
	len() int
	flush() error
	close() error
}

type genericRecords[T any] struct {
	w    *parquet.GenericWriter[T]
	buf  []T
	conv func(store.Entity) (T, error)
}

func (g *genericRecords[T]) add(e store.Entity) error {
	r, err := g.conv(e)
	if err != nil {
		return err
	}
	g.buf = append(g.buf, r)
	return nil
}

func (g *genericRecords[T]) len() int { return len(g.buf) }

func (g *genericRecords[T]) flush() error {
	if len(g.buf) == 0 {
		return nil
	}
	if _, err := g.w.Write(g.buf); err != nil {
		return err
	}
	clear(g.buf)
	g.buf = g.buf[:0]
	return g.w.Flush()
}

func (g *genericRecords[T]) close() error {
	if err := g.flush(); err != nil {
		return err
	}
	return g.w.Close()
}

func newRecords[T any](w io.Writer, groupRows int, conv func(store.Entity) (T, error)) records {
	return &genericRecords[T]{
		w:    parquet.NewGenericWriter[T](w, parquet.MaxRowsPerRowGroup(int64(groupRows)), parquet.Compression(&parquet.Zstd)),
		buf:  make([]T, 0, groupRows),
		conv: conv,
	}
}

func recordsFor(table string, w io.Writer, groupRows int) records {
	switch table {
	case TablePersons:
		return newRecords(w, groupRows, func(e store.Entity) (PersonRecord, error) { return personRecord(e.Person) })
	case TableMappings:
		return newRecords(w, groupRows, func(e store.Entity) (MappingRecord, error) {
			m := e.Mapping
			return MappingRecord{Team: m.Team, DistinctID: m.DistinctID, PersonID: m.PersonID, Version: m.Version}, nil
		})
	case TableIndex:
		return newRecords(w, groupRows, func(e store.Entity) (IndexRecord, error) {
			x := e.Index
			return IndexRecord{Team: x.Team, PersonID: x.PersonID, DistinctID: x.DistinctID}, nil
		})
	case TableRows:
		return newRecords(w, groupRows, func(e store.Entity) (RowRecord, error) { return rowRecord(e.Row), nil })
	case TableGroups:
		return newRecords(w, groupRows, func(e store.Entity) (GroupRecord, error) { return groupRecord(e.Group) })
	case TableDefinitions: // written from the catalog (writeDefinitions), not from entities
		return newRecords(w, groupRows, func(store.Entity) (DefinitionRecord, error) {
			return DefinitionRecord{}, errors.New("definitions are not store entities")
		})
	case TableCohortMembers: // written from the catalog (writeCohortMembers)
		return newRecords(w, groupRows, func(store.Entity) (CohortMemberRecord, error) {
			return CohortMemberRecord{}, errors.New("cohort members are not store entities")
		})
	default:
		return newRecords(w, groupRows, func(e store.Entity) (GroupTypeRecord, error) {
			g := e.GroupType
			return GroupTypeRecord{Team: g.Team, Index: int32(g.Index), Name: g.Name}, nil
		})
	}
}

// partWriter writes one Parquet file through a hash and a byte count.
type partWriter struct {
	file, tmp string
	f         *os.File
	h         hash.Hash
	n         countWriter
	recs      records
	groupRows int
	rows      int64
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func partName(table string, i int) string {
	return filepath.Join(table, fmt.Sprintf("part-%05d.parquet", i))
}

func openPart(dir, table string, i, groupRows int) (*partWriter, error) {
	if err := os.MkdirAll(filepath.Join(dir, table), 0o755); err != nil {
		return nil, err
	}
	p := &partWriter{file: partName(table, i), h: sha256.New(), groupRows: groupRows}
	p.tmp = filepath.Join(dir, p.file) + ".tmp"
	f, err := os.Create(p.tmp)
	if err != nil {
		return nil, err
	}
	p.f = f
	p.recs = recordsFor(table, io.MultiWriter(f, p.h, &p.n), groupRows)
	return p, nil
}

func (p *partWriter) add(e store.Entity) error {
	if err := p.recs.add(e); err != nil {
		return err
	}
	p.rows++
	if p.recs.len() >= p.groupRows {
		return p.recs.flush()
	}
	return nil
}

func (p *partWriter) close() (Part, error) {
	err := p.recs.close()
	if err == nil {
		err = p.f.Sync()
	}
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	final := filepath.Join(filepath.Dir(p.tmp), filepath.Base(p.file))
	if err == nil {
		err = os.Rename(p.tmp, final)
	}
	if err == nil {
		err = syncDir(filepath.Dir(final))
	}
	if err != nil {
		os.Remove(p.tmp)
		return Part{}, err
	}
	return Part{File: filepath.ToSlash(p.file), Rows: p.rows, Bytes: p.n.n, SHA256: hex.EncodeToString(p.h.Sum(nil))}, nil
}
