package canary

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
)

// Bounds of a recorded request.
const (
	MaxLineBytes   = 1 << 20
	MaxHeaders     = 32
	MaxHeaderBytes = 8 << 10
)

// Request is one recorded or generated evaluation request, as one line of
// a request log: {"method":"POST","path":"/flags/?v=2","headers":{...},
// "body":{...}}.
type Request struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
}

// Kind is what a request asks for: "flags" (/flags and /decide) or
// "definitions" (local evaluation); "" when it is neither.
func (r Request) Kind() string {
	p, _, _ := strings.Cut(r.Path, "?")
	p = strings.TrimSuffix(p, "/")
	switch p {
	case "/flags", "/decide":
		return "flags"
	case "/flags/definitions", "/api/feature_flag/local_evaluation":
		return "definitions"
	}
	return ""
}

// Validate checks a request's bounds and that it is an evaluation request.
func (r Request) Validate() error {
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodPost:
		return fmt.Errorf("method %q: GET or POST", r.Method)
	case !strings.HasPrefix(r.Path, "/") || r.Kind() == "":
		return fmt.Errorf("path %q: /flags, /decide, /flags/definitions or /api/feature_flag/local_evaluation", r.Path)
	case len(r.Headers) > MaxHeaders:
		return fmt.Errorf("headers: %d, at most %d", len(r.Headers), MaxHeaders)
	}
	n := 0
	for k, v := range r.Headers {
		n += len(k) + len(v)
	}
	if n > MaxHeaderBytes {
		return fmt.Errorf("headers: %d bytes, at most %d", n, MaxHeaderBytes)
	}
	return nil
}

// ReadLog returns a source of the requests of a log (one JSON Request a
// line; blank lines and lines starting with # are skipped). A bad line is
// an error naming its number.
func ReadLog(r io.Reader) func() (Request, bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLineBytes)
	line := 0
	return func() (Request, bool, error) {
		for sc.Scan() {
			line++
			b := sc.Bytes()
			if s := strings.TrimSpace(string(b)); s == "" || strings.HasPrefix(s, "#") {
				continue
			}
			var req Request
			if err := json.Unmarshal(b, &req); err != nil {
				return req, false, fmt.Errorf("canary: request log line %d: %w", line, err)
			}
			if err := req.Validate(); err != nil {
				return req, false, fmt.Errorf("canary: request log line %d: %w", line, err)
			}
			return req, true, nil
		}
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				return Request{}, false, fmt.Errorf("canary: request log line %d: over %d bytes", line+1, MaxLineBytes)
			}
			return Request{}, false, fmt.Errorf("canary: request log: %w", err)
		}
		return Request{}, false, nil
	}
}

// Generator makes requests like vexil loadtest's: /flags for distinct ids
// user-0 ... user-<Persons-1> (uniform, or Zipf-distributed when Zipf >
// 1), with company groups when Companies > 0, and, one in every
// PollEvery, a definitions poll with the personal key.
type Generator struct {
	Token       string
	PersonalKey string
	Persons     int
	Companies   int
	// Zipf > 1 draws distinct ids with that exponent (a few persons are
	// asked for most often); 0 draws uniformly.
	Zipf      float64
	PollEvery int
	Count     int
	Seed      uint64
}

// Source returns a source of g.Count requests.
func (g Generator) Source() (func() (Request, bool, error), error) {
	if g.Persons < 1 || g.Count < 0 || g.Companies < 0 || g.PollEvery < 0 || g.Zipf != 0 && g.Zipf <= 1 {
		return nil, errors.New("canary: generator: persons >= 1, count, companies and poll-every >= 0, zipf 0 or > 1")
	}
	rng := rand.New(rand.NewPCG(g.Seed, 0x5eed))
	var zipf *rand.Zipf
	if g.Zipf > 1 {
		zipf = rand.NewZipf(rng, g.Zipf, 1, uint64(g.Persons-1))
	}
	i := 0
	return func() (Request, bool, error) {
		if i >= g.Count {
			return Request{}, false, nil
		}
		i++
		if g.PollEvery > 0 && i%g.PollEvery == 0 {
			return Request{Method: http.MethodGet, Path: "/api/feature_flag/local_evaluation/?token=" + g.Token + "&send_cohorts",
				Headers: map[string]string{"Authorization": "Bearer " + g.PersonalKey}}, true, nil
		}
		p := rng.IntN(g.Persons)
		if zipf != nil {
			p = int(zipf.Uint64())
		}
		body := map[string]any{"token": g.Token, "distinct_id": fmt.Sprintf("user-%d", p)}
		if g.Companies > 0 {
			body["groups"] = map[string]string{"company": fmt.Sprintf("company-%d", p%g.Companies)}
		}
		b, _ := json.Marshal(body)
		return Request{Method: http.MethodPost, Path: "/flags/?v=2", Headers: map[string]string{"Content-Type": "application/json"}, Body: b}, true, nil
	}, nil
}
