package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/store"
)

// ServiceConfig configures a Service.
type ServiceConfig struct {
	// Root holds one directory per snapshot. Required.
	Root string
	// Store, Backend, Cut and End are Options' for every snapshot taken.
	Store   store.Store
	Catalog Catalog
	// Checkpoint is Options.Checkpoint.
	Checkpoint func(ctx context.Context, reuse string) (*Frozen, error)
	Backend    string
	Cut        func(ctx context.Context) (Cut, error)
	End        func(ctx context.Context) (uint64, error)
	Logger     *slog.Logger
	// WriteError writes an error in the management API's shape
	// (admin.WriteHTTPError), so that its clients read one error format
	// with errcode's stable codes. Default: {"code": ..., "message": ...}.
	WriteError func(w http.ResponseWriter, r *http.Request, err error)
}

// Service is the management API's snapshots: list them, take one in the
// background (one at a time), and follow it. Mount Handler behind the
// management API's authentication (admin.Service.Guard).
type Service struct {
	cfg ServiceConfig
	// ctx bounds the background snapshots (Close cancels it).
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		jobs     map[string]*job
		verifies map[string]*verification
	}
}

// verification is one background Verify of a complete snapshot. Results
// live in memory: a restarted node answers not_found until verified again.
type verification struct {
	Name       string     `json:"name"`
	State      string     `json:"state"` // running, ok, corrupt, failed
	Parts      int        `json:"parts_checked"`
	PartsTotal int        `json:"parts_total"`
	Started    time.Time  `json:"started_at"`
	Finished   *time.Time `json:"finished_at,omitempty"`
	// Code is the stable error code when State is failed ("corrupt" has
	// none: the snapshot, not the request, is at fault).
	Code  errcode.Code `json:"code,omitempty"`
	Error string       `json:"error,omitempty"`
}

type job struct {
	Name    string    `json:"name"`
	State   string    `json:"state"` // running, complete, failed
	Team    int64     `json:"team"`
	Started time.Time `json:"started_at"`
	Table   string    `json:"table,omitempty"`
	Rows    int64     `json:"rows"`
	// Parts counts the Parquet files complete on disk.
	Parts    int       `json:"parts"`
	Error    string    `json:"error,omitempty"`
	Manifest *Manifest `json:"manifest,omitempty"`
}

// NewService returns a Service; Close stops its background work.
func NewService(cfg ServiceConfig) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.WriteError == nil {
		cfg.WriteError = func(w http.ResponseWriter, _ *http.Request, err error) {
			e := errcode.From(err)
			writeJSONResponse(w, e.Code.HTTPStatus(), map[string]any{"code": e.Code, "message": e.Error()})
		}
	}
	s := &Service{cfg: cfg}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mu.jobs = map[string]*job{}
	s.mu.verifies = map[string]*verification{}
	return s
}

// Close cancels a snapshot being taken (it resumes when created again
// under the same name) and waits for it.
func (s *Service) Close() {
	s.cancel()
	s.wg.Wait()
}

// maxCreateBody bounds POST /api/snapshots.
const maxCreateBody = 4 << 10

// maxList bounds the snapshots one GET /api/snapshots answers (the list
// says truncated beyond it); maxVerifies bounds the verifications running
// at once, each reading a whole snapshot from disk.
const (
	maxList     = 1000
	maxVerifies = 2
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Handler serves
//
//   - GET /api/snapshots: the list, read from Root (at most maxList);
//   - POST /api/snapshots ({"name": optional, "team": 0 for every team}):
//     202 and the job, taken in the background, one at a time;
//   - GET /api/snapshots/{name}: inspect: state running (with the table,
//     rows and parts done), complete with the manifest, partial, or failed
//     with the error;
//   - POST /api/snapshots/{name}/verify: 202, checks every part's size,
//     SHA-256 and row count in the background;
//   - GET /api/snapshots/{name}/verify: that check's state (running, ok,
//     corrupt with the part at fault, failed) and parts checked.
//
// Restore is not here: it needs an empty store, which a serving node's is
// not (vexil snapshot restore, on a stopped node's data directory or an
// empty keyspace).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/snapshots", s.list)
	mux.HandleFunc("GET /api/snapshots/{$}", s.list)
	mux.HandleFunc("POST /api/snapshots", s.create)
	mux.HandleFunc("POST /api/snapshots/{$}", s.create)
	mux.HandleFunc("GET /api/snapshots/{name}", s.status)
	mux.HandleFunc("POST /api/snapshots/{name}/verify", s.verify)
	mux.HandleFunc("GET /api/snapshots/{name}/verify", s.verifyStatus)
	mux.HandleFunc("/api/snapshots/", func(w http.ResponseWriter, r *http.Request) {
		s.cfg.WriteError(w, r, errcode.New(errcode.NotFound, "no route %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func writeJSONResponse(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Service) list(w http.ResponseWriter, r *http.Request) {
	entries, err := os.ReadDir(s.cfg.Root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		s.cfg.WriteError(w, r, err)
		return
	}
	// ReadDir sorts by name, so the first maxList are a stable page.
	out := []*job{}
	truncated := false
	for _, e := range entries {
		if !e.IsDir() || !nameRE.MatchString(e.Name()) {
			continue
		}
		if len(out) == maxList {
			truncated = true
			break
		}
		out = append(out, s.jobOf(e.Name(), false))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSONResponse(w, http.StatusOK, map[string]any{"results": out, "truncated": truncated})
}

// jobOf is the state of the named snapshot: the running job, or what its
// directory holds.
func (s *Service) jobOf(name string, withManifest bool) *job {
	s.mu.Lock()
	j, ok := s.mu.jobs[name]
	if ok && j.State != "complete" {
		c := *j
		s.mu.Unlock()
		return &c
	}
	s.mu.Unlock()
	m, err := ReadManifest(filepath.Join(s.cfg.Root, name))
	switch {
	case err == nil:
		out := &job{Name: name, State: "complete", Team: m.Team, Started: m.CreatedAt, Rows: m.Rows()}
		for _, t := range m.Tables {
			out.Parts += len(t.Parts)
		}
		if withManifest {
			out.Manifest = m
		}
		return out
	case strings.Contains(err.Error(), "incomplete"):
		// What an interrupted snapshot holds, which creating it again
		// under the same name keeps.
		out := &job{Name: name, State: "partial", Error: err.Error()}
		var st progressState
		if readJSON(filepath.Join(s.cfg.Root, name, progressFile), &st) == nil {
			out.Team, out.Started = st.Team, st.CreatedAt
			for _, t := range append(slices.Clone(st.Done), ptrTables(st.Current)...) {
				out.Rows += t.Rows
				out.Parts += len(t.Parts)
			}
			if st.Current != nil {
				out.Table = st.Current.Name
			}
		}
		return out
	default:
		return &job{Name: name, State: "failed", Error: err.Error()}
	}
}

// named checks the request's snapshot name and that the snapshot exists
// (on disk or being taken).
func (s *Service) named(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("name")
	if !nameRE.MatchString(name) {
		s.cfg.WriteError(w, r, errcode.Field(errcode.InvalidArgument, "name", "name %q: want 1 to 64 letters, digits, '.', '_' or '-', not starting with '.', '_' or '-'", name))
		return "", false
	}
	if _, err := os.Stat(filepath.Join(s.cfg.Root, name)); err != nil {
		s.mu.Lock()
		_, running := s.mu.jobs[name]
		s.mu.Unlock()
		if !running {
			s.cfg.WriteError(w, r, errcode.New(errcode.NotFound, "no snapshot %q", name))
			return "", false
		}
	}
	return name, true
}

func (s *Service) status(w http.ResponseWriter, r *http.Request) {
	name, ok := s.named(w, r)
	if !ok {
		return
	}
	writeJSONResponse(w, http.StatusOK, s.jobOf(name, true))
}

func (s *Service) verify(w http.ResponseWriter, r *http.Request) {
	name, ok := s.named(w, r)
	if !ok {
		return
	}
	if j := s.jobOf(name, false); j.State != "complete" {
		s.cfg.WriteError(w, r, errcode.New(errcode.FailedPrecondition, "snapshot %q is %s, not complete: nothing to verify yet", name, j.State))
		return
	}
	s.mu.Lock()
	running := 0
	for _, v := range s.mu.verifies {
		if v.State == "running" {
			if v.Name == name {
				c := *v
				s.mu.Unlock()
				writeJSONResponse(w, http.StatusAccepted, &c)
				return
			}
			running++
		}
	}
	if running >= maxVerifies {
		s.mu.Unlock()
		s.cfg.WriteError(w, r, errcode.New(errcode.LimitExceeded, "%d verifications are running; at most %d at a time", running, maxVerifies))
		return
	}
	v := &verification{Name: name, State: "running", Started: time.Now().UTC()}
	s.mu.verifies[name] = v
	c := *v
	s.mu.Unlock()
	s.wg.Add(1)
	go s.runVerify(v, filepath.Join(s.cfg.Root, name))
	writeJSONResponse(w, http.StatusAccepted, &c)
}

func (s *Service) runVerify(v *verification, dir string) {
	defer s.wg.Done()
	_, err := VerifyProgress(s.ctx, dir, func(done, total int) {
		s.mu.Lock()
		v.Parts, v.PartsTotal = done, total
		s.mu.Unlock()
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	v.Finished = &now
	switch {
	case err == nil:
		v.State = "ok"
	case errors.Is(err, ErrCorrupt):
		v.State, v.Error = "corrupt", err.Error()
		s.cfg.Logger.Warn("snapshot corrupt", "name", v.Name, "err", err)
	default:
		e := errcode.From(err)
		v.State, v.Code, v.Error = "failed", e.Code, err.Error()
	}
}

func (s *Service) verifyStatus(w http.ResponseWriter, r *http.Request) {
	name, ok := s.named(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	v, found := s.mu.verifies[name]
	var c verification
	if found {
		c = *v
	}
	s.mu.Unlock()
	if !found {
		s.cfg.WriteError(w, r, errcode.New(errcode.NotFound, "snapshot %q has not been verified since this node started (POST /api/snapshots/%s/verify)", name, name))
		return
	}
	writeJSONResponse(w, http.StatusOK, &c)
}

func (s *Service) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
		Team int64  `json:"team"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCreateBody+1))
	if err != nil {
		s.cfg.WriteError(w, r, err)
		return
	}
	if len(body) > maxCreateBody {
		s.cfg.WriteError(w, r, errcode.New(errcode.TooLarge, "body over %d bytes", maxCreateBody))
		return
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			s.cfg.WriteError(w, r, errcode.New(errcode.InvalidArgument, "body: %v", err))
			return
		}
	}
	if req.Name == "" {
		req.Name = "snapshot-" + time.Now().UTC().Format("20060102-150405")
	}
	if !nameRE.MatchString(req.Name) {
		s.cfg.WriteError(w, r, errcode.Field(errcode.InvalidArgument, "name", "name %q: want 1 to 64 letters, digits, '.', '_' or '-', not starting with '.', '_' or '-'", req.Name))
		return
	}
	if req.Team < 0 {
		s.cfg.WriteError(w, r, errcode.Field(errcode.InvalidArgument, "team", "team %d is negative", req.Team))
		return
	}
	dir := filepath.Join(s.cfg.Root, req.Name)
	if _, err := os.Stat(filepath.Join(dir, ManifestFile)); err == nil {
		s.cfg.WriteError(w, r, errcode.New(errcode.AlreadyExists, "snapshot %q already exists", req.Name))
		return
	}
	s.mu.Lock()
	for _, j := range s.mu.jobs {
		if j.State == "running" {
			s.mu.Unlock()
			s.cfg.WriteError(w, r, errcode.New(errcode.FailedPrecondition, "snapshot %q is being taken; one at a time", j.Name))
			return
		}
	}
	j := &job{Name: req.Name, State: "running", Team: req.Team, Started: time.Now().UTC()}
	s.mu.jobs[req.Name] = j
	c := *j
	s.mu.Unlock()
	s.wg.Add(1)
	go s.run(j, dir)
	writeJSONResponse(w, http.StatusAccepted, &c)
}

func (s *Service) run(j *job, dir string) {
	defer s.wg.Done()
	if err := os.MkdirAll(s.cfg.Root, 0o755); err != nil {
		s.finish(j, nil, err)
		return
	}
	m, err := Create(s.ctx, Options{Store: s.cfg.Store, Catalog: s.cfg.Catalog, Backend: s.cfg.Backend, Dir: dir, Team: j.Team, Cut: s.cfg.Cut, Checkpoint: s.cfg.Checkpoint, End: s.cfg.End,
		Logger: s.cfg.Logger, Progress: func(p Progress) {
			s.mu.Lock()
			j.Table, j.Rows, j.Parts = p.Table, p.Rows, p.Parts
			s.mu.Unlock()
		}})
	s.finish(j, m, err)
}

func (s *Service) finish(j *job, m *Manifest, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		j.State, j.Error = "failed", err.Error()
		s.cfg.Logger.Warn("snapshot failed", "name", j.Name, "err", err)
		return
	}
	j.State, j.Rows, j.Manifest = "complete", m.Rows(), nil
	j.Parts = 0
	for _, t := range m.Tables {
		j.Parts += len(t.Parts)
	}
}

func ptrTables(t *Table) []Table {
	if t == nil {
		return nil
	}
	return []Table{*t}
}

// Root is the directory holding the snapshots.
func (s *Service) Root() string { return s.cfg.Root }

// String describes the service for logs.
func (s *Service) String() string { return fmt.Sprintf("snapshots in %s", s.cfg.Root) }
