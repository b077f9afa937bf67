package web

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/vexil-dev/vexil/admin"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// ---- activity ----

type activityRow struct {
	E       *adminv1.ActivityEntry
	Changes []Change
}

func activityRows(es []*adminv1.ActivityEntry) []activityRow {
	out := make([]activityRow, 0, len(es))
	for _, e := range es {
		var before, after any
		if e.GetBefore() != nil {
			before = e.GetBefore().AsInterface()
		}
		if e.GetAfter() != nil {
			after = e.GetAfter().AsInterface()
		}
		ch := diff(before, after)
		if len(ch) > 40 {
			ch = append(ch[:40], Change{Path: fmt.Sprintf("… %d more", len(ch)-40)})
		}
		out = append(out, activityRow{E: e, Changes: ch})
	}
	return out
}

func (h *Handler) activity(w http.ResponseWriter, q *req) {
	v := q.r.URL.Query()
	scope := v.Get("scope")
	if len(scope) > 40 || len(v.Get("page")) > 200 {
		h.render(w, q.r, http.StatusBadRequest, "error", view{Q: q, Title: "Bad request", Data: "scope is at most 40 characters"})
		return
	}
	resp, err := h.api.ListActivity(q.ctx, &adminv1.ListActivityRequest{TeamId: q.Team.GetId(), Scope: scope, PageSize: 50, PageToken: v.Get("page")})
	if err != nil {
		h.fail(w, q, err)
		return
	}
	h.render(w, q.r, http.StatusOK, "activity", view{Q: q, Title: "Activity", Nav: "activity",
		Data: map[string]any{"Rows": activityRows(resp.GetEntries()), "Next": resp.GetNextPageToken(), "Scope": scope}})
}

// ---- cohorts ----

type cohortsData struct {
	Cohorts []*adminv1.Cohort
	Form    map[string]string
	Errors  map[string]string
	Report  []*adminv1.CohortFilterReport
}

var cohortKinds = map[string]adminv1.CohortKind{
	"static": adminv1.CohortKind_COHORT_KIND_STATIC, "property": adminv1.CohortKind_COHORT_KIND_PROPERTY,
	"behavioral": adminv1.CohortKind_COHORT_KIND_BEHAVIORAL,
}

func (h *Handler) cohortsPage(w http.ResponseWriter, q *req, code int, d cohortsData) {
	cs, err := h.api.ListCohorts(q.ctx, &adminv1.ListCohortsRequest{TeamId: q.Team.GetId(), PageSize: 1000})
	if err != nil {
		h.fail(w, q, err)
		return
	}
	d.Cohorts = cs.GetResults()
	if d.Form == nil {
		d.Form = map[string]string{"kind": "static"}
	}
	h.render(w, q.r, code, "cohorts", view{Q: q, Title: "Cohorts", Nav: "cohorts", Data: d})
}

func (h *Handler) cohorts(w http.ResponseWriter, q *req) {
	h.cohortsPage(w, q, http.StatusOK, cohortsData{})
}

func (h *Handler) cohortCreate(w http.ResponseWriter, q *req) {
	f := q.r.PostForm
	d := cohortsData{Form: map[string]string{"name": f.Get("name"), "description": f.Get("description"), "kind": f.Get("kind"), "filters": f.Get("filters")},
		Errors: map[string]string{}}
	kind, ok := cohortKinds[d.Form["kind"]]
	if !ok {
		d.Errors["kind"] = "choose static, property or behavioural"
	}
	if n := strings.TrimSpace(d.Form["name"]); n == "" || len(n) > 400 {
		d.Errors["name"] = "a name of 1 to 400 characters is required"
	}
	in := &adminv1.CohortInput{Name: strings.TrimSpace(d.Form["name"]), Description: d.Form["description"], Kind: kind,
		IsStatic: kind == adminv1.CohortKind_COHORT_KIND_STATIC}
	if kind != adminv1.CohortKind_COHORT_KIND_STATIC {
		var m map[string]any
		if len(d.Form["filters"]) > maxFieldBytes {
			d.Errors["filters"] = fmt.Sprintf("at most %d bytes", maxFieldBytes)
		} else if err := json.Unmarshal([]byte(d.Form["filters"]), &m); err != nil {
			d.Errors["filters"] = "not a JSON object: " + err.Error()
		} else if st, err := structpb.NewStruct(m); err != nil {
			d.Errors["filters"] = err.Error()
		} else {
			in.Filters = st
		}
	}
	if len(d.Errors) > 0 {
		h.cohortsPage(w, q, http.StatusUnprocessableEntity, d)
		return
	}
	resp, err := h.api.CreateCohort(q.ctx, &adminv1.CreateCohortRequest{TeamId: q.Team.GetId(), Cohort: in})
	if err != nil {
		e := apiError(err)
		field := "filters"
		switch {
		case strings.Contains(e.Field, "name"):
			field = "name"
		case strings.Contains(e.Field, "kind"):
			field = "kind"
		}
		d.Errors[field] = e.Message
		if e.Field != "" {
			d.Errors[field] = e.Field + ": " + e.Message
		}
		h.cohortsPage(w, q, e.Code.HTTPStatus(), d)
		return
	}
	http.Redirect(w, q.r, fmt.Sprintf("%s/cohorts/%d", view{Q: q}.T(), resp.GetCohort().GetId()), http.StatusSeeOther)
}

type cohortData struct {
	C       *adminv1.Cohort
	Members []string
	More    bool
	Added   int
	Error   string
}

func (h *Handler) cohortView(w http.ResponseWriter, q *req, code int, d cohortData) {
	id, err := strconv.ParseInt(q.r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		h.render(w, q.r, http.StatusNotFound, "error", view{Q: q, Title: "Not found", Data: "There is no such cohort."})
		return
	}
	c, err := h.api.GetCohort(q.ctx, &adminv1.GetCohortRequest{TeamId: q.Team.GetId(), CohortId: id})
	if err != nil {
		h.fail(w, q, err)
		return
	}
	d.C = c.GetCohort()
	if d.C.GetIsStatic() {
		if m, err := h.api.ListCohortMembers(q.ctx, &adminv1.ListCohortMembersRequest{TeamId: q.Team.GetId(), CohortId: id, PageSize: 100}); err == nil {
			d.Members, d.More = m.GetDistinctIds(), m.GetNextPageToken() != ""
		}
	}
	h.render(w, q.r, code, "cohort", view{Q: q, Title: d.C.GetName(), Nav: "cohorts", Data: d})
}

func (h *Handler) cohortPage(w http.ResponseWriter, q *req) {
	d := cohortData{}
	if n, err := strconv.Atoi(q.r.URL.Query().Get("added")); err == nil {
		d.Added = n
	}
	h.cohortView(w, q, http.StatusOK, d)
}

// readCSV reads distinct ids from the first column of a CSV; a first row
// reading "distinct_id" is a header.
func readCSV(r io.Reader) ([]string, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	var ids []string
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", line, err)
		}
		if len(rec) == 0 {
			continue
		}
		id := strings.TrimSpace(rec[0])
		if line == 1 && strings.EqualFold(id, "distinct_id") {
			continue
		}
		if id == "" {
			continue
		}
		if len(id) > maxIDBytes {
			return nil, fmt.Errorf("line %d: a distinct id is at most %d bytes", line, maxIDBytes)
		}
		if len(ids) >= maxCSVRows {
			return nil, fmt.Errorf("more than %d rows: split the file", maxCSVRows)
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, errors.New("no distinct ids in the file (one per line, first column)")
	}
	return ids, nil
}

func (h *Handler) cohortMembers(w http.ResponseWriter, q *req) {
	file, _, err := q.r.FormFile("csv")
	if err != nil {
		h.cohortView(w, q, http.StatusUnprocessableEntity, cohortData{Error: "csv: choose a CSV file to upload"})
		return
	}
	defer file.Close()
	ids, err := readCSV(file)
	if err != nil {
		h.cohortView(w, q, http.StatusUnprocessableEntity, cohortData{Error: "csv: " + err.Error()})
		return
	}
	id, _ := strconv.ParseInt(q.r.PathValue("id"), 10, 64)
	added := 0
	for start := 0; start < len(ids); start += 1000 {
		chunk := ids[start:min(start+1000, len(ids))]
		resp, err := h.api.AddCohortMembers(q.ctx, &adminv1.AddCohortMembersRequest{TeamId: q.Team.GetId(), CohortId: id, DistinctIds: chunk})
		if err != nil {
			e := apiError(err)
			h.cohortView(w, q, e.Code.HTTPStatus(), cohortData{Added: added, Error: fmt.Sprintf("csv: stopped after %d added: %s", added, e.Message)})
			return
		}
		added += int(resp.GetAdded())
	}
	http.Redirect(w, q.r, fmt.Sprintf("%s/cohorts/%d?added=%d", view{Q: q}.T(), id, added), http.StatusSeeOther)
}

// ---- early access ----

var stages = []struct {
	Name  string
	Stage adminv1.Stage
}{
	{"concept", adminv1.Stage_STAGE_CONCEPT}, {"alpha", adminv1.Stage_STAGE_ALPHA}, {"beta", adminv1.Stage_STAGE_BETA},
	{"general availability", adminv1.Stage_STAGE_GENERAL_AVAILABILITY}, {"archived", adminv1.Stage_STAGE_ARCHIVED},
}

func stageOf(s string) adminv1.Stage {
	n, _ := strconv.Atoi(s)
	for _, x := range stages {
		if int(x.Stage) == n {
			return x.Stage
		}
	}
	return adminv1.Stage_STAGE_UNSPECIFIED
}

func (h *Handler) earlyAccessPage(w http.ResponseWriter, q *req, code int, form map[string]string, errs map[string]string) {
	resp, err := h.api.ListEarlyAccessFeatures(q.ctx, &adminv1.ListEarlyAccessFeaturesRequest{TeamId: q.Team.GetId()})
	if err != nil {
		h.fail(w, q, err)
		return
	}
	if form == nil {
		form = map[string]string{"stage": strconv.Itoa(int(adminv1.Stage_STAGE_CONCEPT))}
	}
	h.render(w, q.r, code, "earlyaccess", view{Q: q, Title: "Early access", Nav: "early-access",
		Data: map[string]any{"Features": resp.GetFeatures(), "Stages": stages, "Form": form, "Errors": errs}})
}

func (h *Handler) earlyAccess(w http.ResponseWriter, q *req) {
	h.earlyAccessPage(w, q, http.StatusOK, nil, nil)
}

func (h *Handler) earlyAccessCreate(w http.ResponseWriter, q *req) {
	f := q.r.PostForm
	form := map[string]string{"name": f.Get("name"), "description": f.Get("description"), "stage": f.Get("stage"),
		"documentation_url": f.Get("documentation_url"), "flag_key": f.Get("flag_key")}
	errs := map[string]string{}
	if n := strings.TrimSpace(form["name"]); n == "" || len(n) > 400 {
		errs["name"] = "a name of 1 to 400 characters is required"
	}
	st := stageOf(form["stage"])
	if st == adminv1.Stage_STAGE_UNSPECIFIED {
		errs["stage"] = "choose a stage"
	}
	if len(errs) == 0 {
		_, err := h.api.CreateEarlyAccessFeature(q.ctx, &adminv1.CreateEarlyAccessFeatureRequest{TeamId: q.Team.GetId(),
			Name: strings.TrimSpace(form["name"]), Description: form["description"], Stage: st,
			DocumentationUrl: strings.TrimSpace(form["documentation_url"]), FlagKey: strings.TrimSpace(form["flag_key"])})
		if err == nil {
			http.Redirect(w, q.r, view{Q: q}.T()+"/early-access", http.StatusSeeOther)
			return
		}
		e := apiError(err)
		field := strings.TrimPrefix(e.Field, "feature.")
		if _, ok := form[field]; !ok {
			field = "name"
		}
		errs[field] = e.Message
		h.earlyAccessPage(w, q, e.Code.HTTPStatus(), form, errs)
		return
	}
	h.earlyAccessPage(w, q, http.StatusUnprocessableEntity, form, errs)
}

func (h *Handler) earlyAccessStage(w http.ResponseWriter, q *req) {
	version, _ := strconv.ParseInt(q.r.PostFormValue("version"), 10, 64)
	st := stageOf(q.r.PostFormValue("stage"))
	_, err := h.api.UpdateEarlyAccessFeature(q.ctx, &adminv1.UpdateEarlyAccessFeatureRequest{TeamId: q.Team.GetId(),
		FeatureId: q.r.PathValue("id"), Version: version, Stage: st})
	if err != nil {
		h.earlyAccessPage(w, q, apiError(err).Code.HTTPStatus(), nil, map[string]string{"list": apiError(err).Message})
		return
	}
	http.Redirect(w, q.r, view{Q: q}.T()+"/early-access", http.StatusSeeOther)
}

// ---- keys ----

func (h *Handler) keysPage(w http.ResponseWriter, q *req, code int, data map[string]any) {
	resp, err := h.api.ListKeys(q.ctx, &adminv1.ListKeysRequest{TeamId: q.Team.GetId()})
	if err != nil {
		h.fail(w, q, err)
		return
	}
	data["Keys"] = resp.GetKeys()
	data["Scopes"] = admin.Scopes
	h.render(w, q.r, code, "keys", view{Q: q, Title: "API keys", Nav: "keys", Data: data})
}

func (h *Handler) keys(w http.ResponseWriter, q *req) {
	h.keysPage(w, q, http.StatusOK, map[string]any{})
}

func (h *Handler) keyCreate(w http.ResponseWriter, q *req) {
	f := q.r.PostForm
	scopes := f["scopes"]
	label := strings.TrimSpace(f.Get("label"))
	errs := map[string]string{}
	if len(scopes) == 0 {
		errs["scopes"] = "choose at least one scope"
	}
	if label == "" || len(label) > 200 {
		errs["label"] = "a label of 1 to 200 characters, to recognise the key"
	}
	if len(errs) == 0 {
		resp, err := h.api.CreatePersonalKey(q.ctx, &adminv1.CreatePersonalKeyRequest{Label: label, Scopes: scopes, Teams: []int64{q.Team.GetId()}})
		if err == nil {
			h.keysPage(w, q, http.StatusOK, map[string]any{"Created": resp.GetKey(), "Secret": resp.GetSecret()})
			return
		}
		e := apiError(err)
		errs["scopes"] = e.Message
		h.keysPage(w, q, e.Code.HTTPStatus(), map[string]any{"Errors": errs, "Label": label})
		return
	}
	h.keysPage(w, q, http.StatusUnprocessableEntity, map[string]any{"Errors": errs, "Label": label})
}

func (h *Handler) keyRevoke(w http.ResponseWriter, q *req) {
	id := q.r.PathValue("id")
	// Only the team's own keys are listed here: refuse others as missing.
	resp, err := h.api.ListKeys(q.ctx, &adminv1.ListKeysRequest{TeamId: q.Team.GetId()})
	if err != nil {
		h.fail(w, q, err)
		return
	}
	found := false
	for _, k := range resp.GetKeys() {
		found = found || k.GetId() == id
	}
	if !found {
		h.render(w, q.r, http.StatusNotFound, "error", view{Q: q, Title: "Not found", Data: "There is no such key in this team."})
		return
	}
	if _, err := h.api.RevokeKey(q.ctx, &adminv1.RevokeKeyRequest{KeyId: id}); err != nil {
		h.fail(w, q, err)
		return
	}
	http.Redirect(w, q.r, view{Q: q}.T()+"/keys", http.StatusSeeOther)
}

// ---- settings: group types and precompute ----

func (h *Handler) settingsPage(w http.ResponseWriter, q *req, code int, errs map[string]string) {
	d := map[string]any{"Errors": errs}
	if resp, err := h.api.GetPrecomputeStatus(q.ctx, &adminv1.GetPrecomputeStatusRequest{TeamId: q.Team.GetId()}); err == nil {
		d["Run"] = resp.GetRun()
	} else {
		d["RunError"] = apiError(err).Message
	}
	h.render(w, q.r, code, "settings", view{Q: q, Title: "Project", Nav: "settings", Data: d})
}

func (h *Handler) settings(w http.ResponseWriter, q *req) { h.settingsPage(w, q, http.StatusOK, nil) }

func (h *Handler) groupTypeSet(w http.ResponseWriter, q *req) {
	idx, err := strconv.Atoi(q.r.PostFormValue("index"))
	name := strings.TrimSpace(q.r.PostFormValue("name"))
	if err != nil || idx < 0 || idx > 4 {
		h.settingsPage(w, q, http.StatusUnprocessableEntity, map[string]string{"index": "a group type index is 0 to 4"})
		return
	}
	if len(name) > 400 {
		h.settingsPage(w, q, http.StatusUnprocessableEntity, map[string]string{"name": "at most 400 characters"})
		return
	}
	_, err = h.api.SetGroupType(q.ctx, &adminv1.SetGroupTypeRequest{TeamId: q.Team.GetId(), GroupTypeIndex: int32(idx), GroupType: name, Version: q.Team.GetVersion()})
	if err != nil {
		e := apiError(err)
		if e.Code.HTTPStatus() == http.StatusForbidden {
			h.fail(w, q, err)
			return
		}
		h.settingsPage(w, q, e.Code.HTTPStatus(), map[string]string{"name": e.Message})
		return
	}
	http.Redirect(w, q.r, view{Q: q}.T()+"/settings", http.StatusSeeOther)
}
