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
	Backend string
	Cut     func(ctx context.Context) (Cut, error)
	End     func(ctx context.Context) (uint64, error)
	Logger  *slog.Logger
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
		jobs map[string]*job
	}
}

type job struct {
	Name     string    `json:"name"`
	State    string    `json:"state"` // running, complete, failed
	Team     int64     `json:"team"`
	Started  time.Time `json:"started_at"`
	Table    string    `json:"table,omitempty"`
	Rows     int64     `json:"rows"`
	Error    string    `json:"error,omitempty"`
	Manifest *Manifest `json:"manifest,omitempty"`
}

// NewService returns a Service; Close stops its background work.
func NewService(cfg ServiceConfig) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{cfg: cfg}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mu.jobs = map[string]*job{}
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

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Handler serves GET /api/snapshots (the list), POST /api/snapshots
// ({"name": optional, "team": 0 for every team}; 202 and the job) and
// GET /api/snapshots/{name} (state running, complete with the manifest,
// partial, or failed with the error).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/snapshots", s.list)
	mux.HandleFunc("GET /api/snapshots/", s.list)
	mux.HandleFunc("POST /api/snapshots", s.create)
	mux.HandleFunc("POST /api/snapshots/", s.create)
	mux.HandleFunc("GET /api/snapshots/{name}", s.status)
	return mux
}

func writeJSONResponse(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, err error) {
	e := errcode.From(err)
	writeJSONResponse(w, e.Code.HTTPStatus(), map[string]any{"code": e.Code, "message": e.Error()})
}

func (s *Service) list(w http.ResponseWriter, r *http.Request) {
	entries, err := os.ReadDir(s.cfg.Root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		writeErr(w, err)
		return
	}
	out := []*job{}
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, s.jobOf(e.Name(), false))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSONResponse(w, http.StatusOK, map[string]any{"results": out})
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
		if withManifest {
			out.Manifest = m
		}
		return out
	case strings.Contains(err.Error(), "incomplete"):
		return &job{Name: name, State: "partial", Error: err.Error()}
	default:
		return &job{Name: name, State: "failed", Error: err.Error()}
	}
}

func (s *Service) status(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !nameRE.MatchString(name) {
		writeErr(w, errcode.Field(errcode.InvalidArgument, "name", "name %q: want 1 to 64 letters, digits, '.', '_' or '-', not starting with '.', '_' or '-'", name))
		return
	}
	if _, err := os.Stat(filepath.Join(s.cfg.Root, name)); err != nil {
		s.mu.Lock()
		_, running := s.mu.jobs[name]
		s.mu.Unlock()
		if !running {
			writeErr(w, errcode.New(errcode.NotFound, "no snapshot %q", name))
			return
		}
	}
	writeJSONResponse(w, http.StatusOK, s.jobOf(name, true))
}

func (s *Service) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
		Team int64  `json:"team"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCreateBody+1))
	if err != nil {
		writeErr(w, err)
		return
	}
	if len(body) > maxCreateBody {
		writeErr(w, errcode.New(errcode.TooLarge, "body over %d bytes", maxCreateBody))
		return
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeErr(w, errcode.New(errcode.InvalidArgument, "body: %v", err))
			return
		}
	}
	if req.Name == "" {
		req.Name = "snapshot-" + time.Now().UTC().Format("20060102-150405")
	}
	if !nameRE.MatchString(req.Name) {
		writeErr(w, errcode.Field(errcode.InvalidArgument, "name", "name %q: want 1 to 64 letters, digits, '.', '_' or '-', not starting with '.', '_' or '-'", req.Name))
		return
	}
	if req.Team < 0 {
		writeErr(w, errcode.Field(errcode.InvalidArgument, "team", "team %d is negative", req.Team))
		return
	}
	dir := filepath.Join(s.cfg.Root, req.Name)
	if _, err := os.Stat(filepath.Join(dir, ManifestFile)); err == nil {
		writeErr(w, errcode.New(errcode.AlreadyExists, "snapshot %q already exists", req.Name))
		return
	}
	s.mu.Lock()
	for _, j := range s.mu.jobs {
		if j.State == "running" {
			s.mu.Unlock()
			writeErr(w, errcode.New(errcode.FailedPrecondition, "snapshot %q is being taken; one at a time", j.Name))
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
	m, err := Create(s.ctx, Options{Store: s.cfg.Store, Catalog: s.cfg.Catalog, Backend: s.cfg.Backend, Dir: dir, Team: j.Team, Cut: s.cfg.Cut, End: s.cfg.End,
		Logger: s.cfg.Logger, Progress: func(p Progress) {
			s.mu.Lock()
			j.Table, j.Rows = p.Table, p.Rows
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
}

// String describes the service for logs.
func (s *Service) String() string { return fmt.Sprintf("snapshots in %s", s.cfg.Root) }
