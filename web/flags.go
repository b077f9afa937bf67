package web

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"github.com/vexil-dev/vexil/errcode"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

type flagRow struct {
	F      *adminv1.FeatureFlag
	Status string
	Usage  *Usage
	// LastEvaluated is the flag's last remote evaluation ("" none known).
	LastEvaluated string
}

type flagsData struct {
	Rows                []flagRow
	Search, Tag, Status string
	Count               int32
	Next                string
}

var statusByName = map[string]adminv1.FlagStatus{
	"": adminv1.FlagStatus_FLAG_STATUS_UNSPECIFIED, "active": adminv1.FlagStatus_FLAG_STATUS_ACTIVE,
	"stale": adminv1.FlagStatus_FLAG_STATUS_STALE, "archived": adminv1.FlagStatus_FLAG_STATUS_ARCHIVED,
	"inactive": adminv1.FlagStatus_FLAG_STATUS_INACTIVE, "all": adminv1.FlagStatus_FLAG_STATUS_ALL,
}

// flagStatus is the badge of a flag: the usage statistics' STALE (no
// evaluation, or unchanged at 100% or 0%, for the team's N days) before
// the flag's own state.
func flagStatus(f *adminv1.FeatureFlag) string {
	switch {
	case f.GetArchived():
		return "archived"
	case f.GetStatus() == "STALE":
		return "stale"
	case !f.GetActive():
		return "disabled"
	}
	return "active"
}

// lastEvaluated is when the usage statistics last saw the flag evaluated.
func lastEvaluated(f *adminv1.FeatureFlag, u *Usage) string {
	switch {
	case f.GetLastEvaluatedAt() != nil:
		return f.GetLastEvaluatedAt().AsTime().UTC().Format("2006-01-02 15:04")
	case u != nil && !u.LastEvaluated.IsZero():
		return u.LastEvaluated.UTC().Format("2006-01-02 15:04")
	}
	return ""
}

func (h *Handler) flagsList(w http.ResponseWriter, q *req) {
	v := q.r.URL.Query()
	d := flagsData{Search: v.Get("search"), Tag: v.Get("tag"), Status: v.Get("status")}
	st, ok := statusByName[d.Status]
	if !ok || len(d.Search) > 200 || len(d.Tag) > 200 || len(v.Get("page")) > 200 {
		h.render(w, q.r, http.StatusBadRequest, "error", view{Q: q, Title: "Bad request", Data: "status is one of active, stale, inactive, archived, all; search, tag and page are at most 200 characters"})
		return
	}
	lr := &adminv1.ListFlagsRequest{TeamId: q.Team.GetId(), Search: d.Search, Status: st, PageSize: 100, PageToken: v.Get("page")}
	if d.Tag != "" {
		lr.Tags = []string{d.Tag}
	}
	resp, err := h.api.ListFlags(q.ctx, lr)
	if err != nil {
		h.fail(w, q, err)
		return
	}
	d.Count, d.Next = resp.GetCount(), resp.GetNextPageToken()
	for _, f := range resp.GetResults() {
		s := flagStatus(f)
		if d.Status == "stale" {
			s = "stale"
		}
		u := h.usageOf(q, f.GetKey())
		d.Rows = append(d.Rows, flagRow{F: f, Status: s, Usage: u, LastEvaluated: lastEvaluated(f, u)})
	}
	h.render(w, q.r, http.StatusOK, "flags", view{Q: q, Title: "Flags", Nav: "flags", Data: d})
}

// editorData is what the flag editor shows.
type editorData struct {
	F        *flagForm
	New      bool
	Groups   []*adminv1.GroupType
	Cohorts  []*adminv1.Cohort
	Flags    []*adminv1.FeatureFlag
	Ops      []Operator
	Preview  *preview
	Conflict *conflict
}

type preview struct {
	Changes []Change
	Job     *adminv1.BlastRadiusJob
	// JobError says why no blast radius could be computed.
	JobError string
}

type conflict struct {
	Changes []Change
	By, At  string
	Version int64
}

func (h *Handler) editor(q *req, ff *flagForm) editorData {
	d := editorData{F: ff, New: ff.ID == 0, Groups: q.Team.GetGroupTypes(), Ops: Operators}
	if q.Can("cohort:read") {
		if cs, err := h.api.ListCohorts(q.ctx, &adminv1.ListCohortsRequest{TeamId: q.Team.GetId(), PageSize: 1000}); err == nil {
			d.Cohorts = cs.GetResults()
		}
	}
	if fs, err := h.api.ListFlags(q.ctx, &adminv1.ListFlagsRequest{TeamId: q.Team.GetId(), PageSize: 1000}); err == nil {
		for _, f := range fs.GetResults() {
			if f.GetId() != ff.ID {
				d.Flags = append(d.Flags, f)
			}
		}
	}
	return d
}

func (h *Handler) renderEditor(w http.ResponseWriter, q *req, code int, d editorData) {
	title := "New flag"
	if !d.New {
		title = "Edit " + d.F.Key
	}
	h.render(w, q.r, code, "edit", view{Q: q, Title: title, Nav: "flags", Data: d})
}

func (h *Handler) flagNew(w http.ResponseWriter, q *req) {
	ff := &flagForm{Active: true, Errors: map[string]string{}, Conditions: []condForm{{Target: "persons", Rollout: "100"}}}
	h.renderEditor(w, q, http.StatusOK, h.editor(q, ff))
}

func (h *Handler) loadFlag(w http.ResponseWriter, q *req) *adminv1.FeatureFlag {
	id, err := strconv.ParseInt(q.r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		h.render(w, q.r, http.StatusNotFound, "error", view{Q: q, Title: "Not found", Data: "There is no such flag."})
		return nil
	}
	resp, err := h.api.GetFlag(q.ctx, &adminv1.GetFlagRequest{TeamId: q.Team.GetId(), FlagId: id})
	if err != nil {
		h.fail(w, q, err)
		return nil
	}
	return resp.GetFlag()
}

func (h *Handler) flagEdit(w http.ResponseWriter, q *req) {
	f := h.loadFlag(w, q)
	if f == nil {
		return
	}
	h.renderEditor(w, q, http.StatusOK, h.editor(q, formOf(f)))
}

// baseOf decodes the flag as the editor read it.
func baseOf(ff *flagForm) map[string]any {
	if ff.Base == "" {
		return map[string]any{}
	}
	b, err := base64.StdEncoding.DecodeString(ff.Base)
	var m map[string]any
	if err != nil || json.Unmarshal(b, &m) != nil {
		return map[string]any{}
	}
	return m
}

// flagSubmit handles every button of the editor: rows added or removed,
// review (diff and blast radius), and save.
func (h *Handler) flagSubmit(w http.ResponseWriter, q *req) {
	ff, action := parseFlagForm(q.r.PostForm)
	if q.r.PathValue("id") != "" {
		id, _ := strconv.ParseInt(q.r.PathValue("id"), 10, 64)
		ff.ID = id
	}
	d := h.editor(q, ff)
	if ff.apply(action) {
		h.renderEditor(w, q, http.StatusOK, d)
		return
	}
	in := ff.input()
	if in == nil {
		h.renderEditor(w, q, http.StatusUnprocessableEntity, d)
		return
	}
	switch action {
	case "review":
		p := &preview{Changes: diff(baseOf(ff), comparable(in))}
		job, err := h.api.StartBlastRadius(q.ctx, &adminv1.StartBlastRadiusRequest{TeamId: q.Team.GetId(), FlagId: ff.ID, Flag: in, SampleSize: 10})
		if err != nil {
			p.JobError = apiError(err).Message
		} else {
			p.Job = job.GetJob()
		}
		d.Preview = p
		h.renderEditor(w, q, http.StatusOK, d)
		return
	case "save":
	default:
		ff.Problems = append(ff.Problems, fmt.Sprintf("unknown action %q", action))
		h.renderEditor(w, q, http.StatusBadRequest, d)
		return
	}
	var saved *adminv1.FeatureFlag
	var err error
	if ff.ID == 0 {
		var resp *adminv1.CreateFlagResponse
		if resp, err = h.api.CreateFlag(q.ctx, &adminv1.CreateFlagRequest{TeamId: q.Team.GetId(), Flag: in}); err == nil {
			saved = resp.GetFlag()
		}
	} else {
		var resp *adminv1.UpdateFlagResponse
		if resp, err = h.api.UpdateFlag(q.ctx, &adminv1.UpdateFlagRequest{TeamId: q.Team.GetId(), FlagId: ff.ID, Version: ff.Version, Flag: in}); err == nil {
			saved = resp.GetFlag()
		}
	}
	if err == nil {
		http.Redirect(w, q.r, fmt.Sprintf("%s/flags/%d", view{Q: q}.T(), saved.GetId()), http.StatusSeeOther)
		return
	}
	e := apiError(err)
	if e.Code == errcode.Conflict {
		// Someone saved first: show their change, keep this person's
		// edits, and move the form onto the current version so that a
		// second save is a deliberate overwrite.
		if cur, gerr := h.api.GetFlag(q.ctx, &adminv1.GetFlagRequest{TeamId: q.Team.GetId(), FlagId: ff.ID}); gerr == nil {
			c := cur.GetFlag()
			d.Conflict = &conflict{Changes: diff(baseOf(ff), comparable(c)), By: c.GetUpdatedBy(), Version: c.GetVersion()}
			if c.GetUpdatedAt() != nil {
				d.Conflict.At = c.GetUpdatedAt().AsTime().UTC().Format("15:04:05 UTC")
			}
			ff.Version = c.GetVersion()
			if b, err := json.Marshal(comparable(c)); err == nil {
				ff.Base = base64.StdEncoding.EncodeToString(b)
			}
		}
		h.renderEditor(w, q, http.StatusConflict, d)
		return
	}
	if f := fieldPath(strings.TrimPrefix(e.Field, "flag.")); f != "" && e.Code != errcode.PermissionDenied {
		ff.Errors[f] = e.Message
	} else {
		msg := e.Message
		if e.Field != "" {
			msg = e.Field + ": " + msg
		}
		ff.Problems = append(ff.Problems, msg)
	}
	h.renderEditor(w, q, e.Code.HTTPStatus(), d)
}

type flagPageData struct {
	F          *adminv1.FeatureFlag
	Status     string
	Plain      Plain
	Dependents []*adminv1.Dependent
	Activity   []activityRow
	Usage      *Usage
	UsageJSON  string
	// LastEvaluated is the last remote evaluation ("" none known).
	LastEvaluated string
	Problem       string
	Explain       *explainData
	Groups        []*adminv1.GroupType
}

func (h *Handler) flagPageData(q *req, f *adminv1.FeatureFlag) flagPageData {
	d := flagPageData{F: f, Status: flagStatus(f), Groups: q.Team.GetGroupTypes()}
	names := map[string]string{}
	if q.Can("cohort:read") {
		if cs, err := h.api.ListCohorts(q.ctx, &adminv1.ListCohortsRequest{TeamId: q.Team.GetId(), PageSize: 1000}); err == nil {
			for _, c := range cs.GetResults() {
				names[strconv.FormatInt(c.GetId(), 10)] = c.GetName()
			}
		}
	}
	d.Plain = describe(q.Team, f, formOf(f), names)
	if deps, err := h.api.ListDependents(q.ctx, &adminv1.ListDependentsRequest{TeamId: q.Team.GetId(), FlagId: f.GetId()}); err == nil {
		d.Dependents = deps.GetDependents()
	}
	if q.Can("activity:read") {
		if a, err := h.api.ListFlagActivity(q.ctx, &adminv1.ListFlagActivityRequest{TeamId: q.Team.GetId(), FlagId: f.GetId(), PageSize: 20}); err == nil {
			d.Activity = activityRows(a.GetEntries())
		}
	}
	d.Usage = h.usageOf(q, f.GetKey())
	d.LastEvaluated = lastEvaluated(f, d.Usage)
	if d.Usage != nil {
		d.UsageJSON = d.Usage.EvaluationsJSON()
	}
	return d
}

func (h *Handler) flagPage(w http.ResponseWriter, q *req) {
	f := h.loadFlag(w, q)
	if f == nil {
		return
	}
	h.render(w, q.r, http.StatusOK, "flag", view{Q: q, Title: f.GetKey(), Nav: "flags", Data: h.flagPageData(q, f)})
}

// flagState enables, disables, archives or brings back a flag.
func (h *Handler) flagState(w http.ResponseWriter, q *req) {
	f := h.loadFlag(w, q)
	if f == nil {
		return
	}
	version, _ := strconv.ParseInt(q.r.PostFormValue("version"), 10, 64)
	t, id := q.Team.GetId(), f.GetId()
	var err error
	switch q.r.PostFormValue("op") {
	case "enable":
		_, err = h.api.EnableFlag(q.ctx, &adminv1.EnableFlagRequest{TeamId: t, FlagId: id, Version: version})
	case "disable":
		_, err = h.api.DisableFlag(q.ctx, &adminv1.DisableFlagRequest{TeamId: t, FlagId: id, Version: version})
	case "archive":
		_, err = h.api.ArchiveFlag(q.ctx, &adminv1.ArchiveFlagRequest{TeamId: t, FlagId: id, Version: version})
	case "unarchive":
		_, err = h.api.UnarchiveFlag(q.ctx, &adminv1.UnarchiveFlagRequest{TeamId: t, FlagId: id, Version: version})
	default:
		h.render(w, q.r, http.StatusBadRequest, "error", view{Q: q, Title: "Bad request", Data: "op is enable, disable, archive or unarchive"})
		return
	}
	if err != nil {
		e := apiError(err)
		if e.Code == errcode.PermissionDenied || e.Code == errcode.NotFound {
			h.fail(w, q, err)
			return
		}
		d := h.flagPageData(q, f)
		d.Problem = e.Message
		if e.Code == errcode.HasDependents {
			d.Problem = "Archive refused: other flags depend on this one (listed under Dependents). Remove the dependency from them first. (" + e.Message + ")"
		}
		h.render(w, q.r, e.Code.HTTPStatus(), "flag", view{Q: q, Title: f.GetKey(), Nav: "flags", Data: d})
		return
	}
	http.Redirect(w, q.r, fmt.Sprintf("%s/flags/%d", view{Q: q}.T(), id), http.StatusSeeOther)
}

type explainData struct {
	DistinctID string
	Groups     map[string]string
	Result     *adminv1.ExplainFlagResponse
	Error      string
}

func (h *Handler) flagExplain(w http.ResponseWriter, q *req) {
	f := h.loadFlag(w, q)
	if f == nil {
		return
	}
	v := q.r.URL.Query()
	ex := &explainData{DistinctID: strings.TrimSpace(v.Get("distinct_id")), Groups: map[string]string{}}
	badGroup := ""
	for _, g := range q.Team.GetGroupTypes() {
		if k := strings.TrimSpace(v.Get("group." + g.GetGroupType())); k != "" {
			ex.Groups[g.GetGroupType()] = k
			if len(k) > maxIDBytes {
				badGroup = g.GetGroupType()
			}
		}
	}
	code := http.StatusOK
	switch {
	case badGroup != "":
		ex.Error = fmt.Sprintf("group.%s: a group key is at most %d bytes", badGroup, maxIDBytes)
		code = http.StatusUnprocessableEntity
	case ex.DistinctID == "":
		ex.Error = "distinct_id: enter the distinct id to explain"
		code = http.StatusUnprocessableEntity
	case len(ex.DistinctID) > maxIDBytes:
		ex.Error = fmt.Sprintf("distinct_id: at most %d bytes", maxIDBytes)
		code = http.StatusUnprocessableEntity
	default:
		resp, err := h.api.ExplainFlag(q.ctx, &adminv1.ExplainFlagRequest{TeamId: q.Team.GetId(), FlagId: f.GetId(), DistinctId: ex.DistinctID, Groups: ex.Groups})
		if err != nil {
			e := apiError(err)
			ex.Error, code = e.Message, e.Code.HTTPStatus()
		} else {
			ex.Result = resp
		}
	}
	d := h.flagPageData(q, f)
	d.Explain = ex
	h.render(w, q.r, code, "flag", view{Q: q, Title: f.GetKey(), Nav: "flags", Data: d})
}

func (h *Handler) blastJob(w http.ResponseWriter, q *req) {
	id := q.r.PathValue("job")
	if len(id) > 100 {
		h.render(w, q.r, http.StatusNotFound, "error", view{Q: q, Title: "Not found", Data: "no such job"})
		return
	}
	resp, err := h.api.GetBlastRadiusJob(q.ctx, &adminv1.GetBlastRadiusJobRequest{TeamId: q.Team.GetId(), JobId: id})
	if err != nil {
		h.fail(w, q, err)
		return
	}
	h.render(w, q.r, http.StatusOK, "blast", view{Q: q, Title: "Blast radius", Data: resp.GetJob()})
}

// checkRegex answers the editor's as-you-type regex check (htmx).
func (h *Handler) checkRegex(w http.ResponseWriter, r *http.Request) {
	if h.auth.fromRequest(r) == nil {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFieldBytes)
	_ = r.ParseForm()
	// htmx sends the whole form; the input that asked is named in
	// HX-Trigger-Name.
	v := r.PostForm.Get(r.Header.Get("HX-Trigger-Name"))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if msg := regexProblem(v); msg != "" {
		fmt.Fprintf(w, `<span class="err">%s</span>`, template.HTMLEscapeString(msg))
		return
	}
	fmt.Fprint(w, `<span class="ok">valid regular expression</span>`)
}
