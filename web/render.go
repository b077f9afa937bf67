package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// view is what every template gets.
type view struct {
	// Q is the signed-in request (nil on the sign-in and error pages
	// before sign-in).
	Q     *req
	Title string
	// Nav marks the current section in the navigation.
	Nav  string
	Data any
	// Code is an error page's stable code.
	Code string
}

// Can reports whether the signed-in key carries scope.
func (v view) Can(scope string) bool { return v.Q != nil && v.Q.Can(scope) }

// T is the team's base path (/ui/t/1).
func (v view) T() string {
	if v.Q == nil || v.Q.Team == nil {
		return strings.TrimSuffix(Prefix, "/")
	}
	return fmt.Sprintf("%st/%d", Prefix, v.Q.Team.GetId())
}

var funcs = template.FuncMap{
	"when": func(t *timestamppb.Timestamp) string {
		if t == nil {
			return ""
		}
		return t.AsTime().UTC().Format("2006-01-02 15:04 UTC")
	},
	"json": func(v any) string {
		switch x := v.(type) {
		case *structpb.Value:
			if x == nil {
				return ""
			}
			v = x.AsInterface()
		case *structpb.Struct:
			if x == nil {
				return ""
			}
			v = x.AsMap()
		}
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(b)
	},
	"join": strings.Join,
	"list": func(xs ...string) []string { return xs },
	"int":  func(v int32) int { return int(v) },
	"opInput": func(op string) string {
		o, ok := operator(op)
		if !ok {
			return "text"
		}
		return o.Input
	},
	"kind": func(k adminv1.CohortKind) string {
		return strings.ToLower(strings.TrimPrefix(k.String(), "COHORT_KIND_"))
	},
	"stage": func(s adminv1.Stage) string {
		return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(s.String(), "STAGE_")), "_", " ")
	},
	"runState": func(s adminv1.PrecomputeState) string {
		return strings.ToLower(strings.TrimPrefix(s.String(), "PRECOMPUTE_STATE_"))
	},
	"pct": func(done, total int64) int64 {
		if total <= 0 {
			return 0
		}
		return min(100, done*100/total)
	},
	"seconds": func(s float64) string { return (time.Duration(s) * time.Second).String() },
	"add":     func(a, b int) int { return a + b },
	"seq": func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	},
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[fmt.Sprint(kv[i])] = kv[i+1]
		}
		return m
	},
}

// parsePages builds one template set per page: the layout, the shared
// partials and the page's own "content".
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".html")
		if base == "layout" || strings.HasPrefix(base, "_") {
			continue
		}
		files := []string{"templates/layout.html", n}
		partials, _ := fs.Glob(templateFS, "templates/_*.html")
		files = append(files, partials...)
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, files...)
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", n, err)
		}
		pages[base] = t
	}
	return pages, nil
}

// render writes a page; an htmx request for a fragment gets the page's
// "content" alone.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, code int, page string, v view) {
	t := h.pages[page]
	if t == nil {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	name := "layout"
	if r.Header.Get("HX-Request") != "" && r.Header.Get("HX-Boosted") == "" {
		name = "content"
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, v); err != nil {
		h.log.Error("web: rendering", "page", page, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
