package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/changes"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/flags"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// Bounds of one import (the body limit bounds it too).
const (
	maxImportFlags   = 5000
	maxImportCohorts = 5000
)

// Import actions.
const (
	actionCreate    = "create"
	actionUpdate    = "update"
	actionUnchanged = "unchanged"
	actionRefuse    = "refuse"
)

// importFlag is one flag of an import.
type importFlag struct {
	field string // "definitions.flags[3]"
	src   int64  // PostHog's id
	flag  flags.Flag
	// existing is the stored flag of the same key, if any.
	existing *catalog.FlagRecord
	item     *adminv1.ImportItem
}

// importCohort is one cohort of an import.
type importCohort struct {
	field       string // "definitions.cohorts.5" or "definitions.cohorts[0]"
	groupField  string // where its property group is in the request
	src         int64
	cohort      flags.Cohort
	description string
	existing    *catalog.CohortRecord
	// problems are the engine's problems of the cohort.
	problems []*flags.ValidationError
	// tmp is its id while planning: the existing one, or a negative
	// placeholder until it is created.
	tmp  int64
	item *adminv1.ImportItem
}

// importPlan is what an import would do.
type importPlan struct {
	team       catalog.Team
	groupTypes map[int]string // to add to the team
	flags      []*importFlag
	cohorts    []*importCohort
	// cohortIDs maps PostHog's cohort ids to planning ids.
	cohortIDs map[int64]int64
	refused   []*adminv1.Warning // every refusal, in order, for the error
}

// ImportDefinitions loads a team's definitions at once: PostHog's
// local-evaluation payload, or lists of PostHog flags and cohorts.
func (s *Service) ImportDefinitions(ctx context.Context, req *adminv1.ImportDefinitionsRequest) (*adminv1.ImportDefinitionsResponse, error) {
	p := callerOf(ctx)
	if req.GetDefinitions() == nil {
		return nil, errcode.Field(errcode.InvalidArgument, "definitions", "definitions is required: {\"flags\": [...], \"cohorts\": ..., \"group_type_mapping\": ...}")
	}
	text, err := messageJSON(req.GetDefinitions())
	if err != nil {
		return nil, errcode.Field(errcode.InvalidArgument, "definitions", "%v", err)
	}
	raw, err := decodeGeneric([]byte(text))
	if err != nil {
		return nil, errcode.Field(errcode.InvalidArgument, "definitions", "%v", err)
	}
	snap, err := s.cat.Snapshot(ctx, req.GetTeamId())
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, errTeamNotFound()
	}
	if err != nil {
		return nil, err
	}
	obj, _ := raw.(map[string]any)
	plan, err := s.planImport(ctx, snap, obj)
	if err != nil {
		return nil, err
	}
	if len(plan.cohorts) > 0 && !p.has(ScopeCohortWrite) && !req.GetDryRun() {
		return nil, errcode.Field(errcode.PermissionDenied, "definitions.cohorts", "importing cohorts needs the scope %s", ScopeCohortWrite)
	}
	if len(plan.groupTypes) > 0 && !p.has(ScopeTeamAdmin) && !req.GetDryRun() {
		return nil, errcode.Field(errcode.PermissionDenied, "definitions.group_type_mapping", "creating group types needs the scope %s", ScopeTeamAdmin)
	}
	resp := plan.report(req.GetDryRun())
	if req.GetDryRun() {
		return resp, nil
	}
	if len(plan.refused) > 0 {
		// The first refusal in the order of the report.
		first := plan.refused[0]
		for _, it := range resp.GetItems() {
			if len(it.GetErrors()) > 0 {
				first = it.GetErrors()[0]
				break
			}
		}
		return nil, errcode.Field(errcode.InvalidDefinition, first.GetField(),
			"%d of the imported definitions are refused, nothing was written; the first: %s (dry_run reports every one)",
			resp.GetRefused(), first.GetMessage()).With("engine_code", first.GetCode()).With("refused", strconv.Itoa(int(resp.GetRefused())))
	}
	if err := s.applyImport(ctx, plan); err != nil {
		return nil, err
	}
	resp = plan.report(false)
	resp.Applied = true
	return resp, nil
}

// report summarises a plan.
func (pl *importPlan) report(dryRun bool) *adminv1.ImportDefinitionsResponse {
	out := &adminv1.ImportDefinitionsResponse{DryRun: dryRun}
	for _, i := range slices.Sorted(maps.Keys(pl.groupTypes)) {
		out.GroupTypesCreated = append(out.GroupTypesCreated, &adminv1.GroupType{GroupTypeIndex: int32(i), GroupType: pl.groupTypes[i]})
	}
	add := func(it *adminv1.ImportItem) {
		out.Items = append(out.Items, it)
		switch it.GetAction() {
		case actionCreate:
			out.Created++
		case actionUpdate:
			out.Changed++
		case actionUnchanged:
			out.Unchanged++
		case actionRefuse:
			out.Refused++
		}
	}
	for _, c := range pl.cohorts {
		add(c.item)
	}
	for _, f := range pl.flags {
		add(f.item)
	}
	return out
}

// refuse marks an item refused for a reason.
func (pl *importPlan) refuse(it *adminv1.ImportItem, field, code, format string, args ...any) {
	w := &adminv1.Warning{Field: field, Code: code, Message: fmt.Sprintf(format, args...)}
	it.Action = actionRefuse
	it.Errors = append(it.Errors, w)
	pl.refused = append(pl.refused, w)
}

// planImport parses the definitions, matches them with the team's, remaps
// cohort ids and flag references, and compiles the result.
func (s *Service) planImport(ctx context.Context, snap catalog.TeamSnapshot, raw map[string]any) (*importPlan, error) {
	pl := &importPlan{team: snap.Team, groupTypes: map[int]string{}, cohortIDs: map[int64]int64{}}
	if err := pl.parseGroupTypes(raw["group_type_mapping"]); err != nil {
		return nil, err
	}
	cohortRecs, err := s.cat.ListCohorts(ctx, snap.Team.ID)
	if err != nil {
		return nil, err
	}
	if err := pl.parseCohorts(raw["cohorts"], cohortRecs); err != nil {
		return nil, err
	}
	flagList, ok := raw["flags"]
	if !ok {
		flagList = raw["results"] // PostHog's list answer
	}
	flagRecs, err := s.cat.ListFlags(ctx, snap.Team.ID)
	if err != nil {
		return nil, err
	}
	if err := s.parseFlags(pl, flagList, flagRecs); err != nil {
		return nil, err
	}
	pl.remap()
	pl.compile(snap.Definitions)
	pl.decide()
	return pl, nil
}

func (pl *importPlan) parseGroupTypes(v any) error {
	const field = "definitions.group_type_mapping"
	mapping := map[int]string{}
	switch x := v.(type) {
	case nil:
		return nil
	case map[string]any: // local evaluation: {"0": "company"}
		for k, name := range x {
			i, err := strconv.Atoi(k)
			n, _ := name.(string)
			if err != nil || n == "" {
				return errcode.Field(errcode.InvalidArgument, field+"."+k, "group_type_mapping maps an index (\"0\") to a name")
			}
			mapping[i] = n
		}
	case []any: // PostHog's group types API: [{"group_type": "company", "group_type_index": 0}]
		for j, e := range x {
			m, _ := e.(map[string]any)
			n, _ := m["group_type"].(string)
			i, err := strconv.Atoi(fmt.Sprint(m["group_type_index"]))
			if err != nil || n == "" {
				return errcode.Field(errcode.InvalidArgument, fmt.Sprintf("%s[%d]", field, j), "an entry is {\"group_type\": name, \"group_type_index\": index}")
			}
			mapping[i] = n
		}
	default:
		return errcode.Field(errcode.InvalidArgument, field, "group_type_mapping is an object or a list")
	}
	for _, i := range slices.Sorted(maps.Keys(mapping)) {
		name := mapping[i]
		f := fmt.Sprintf("%s.%d", field, i)
		if i < 0 || i >= flags.MaxGroupTypes || len(name) > 200 {
			return errcode.Field(errcode.InvalidArgument, f, "a group type index is 0..%d, its name at most 200 bytes", flags.MaxGroupTypes-1)
		}
		if cur, ok := pl.team.GroupTypes[i]; ok {
			if cur != name {
				return errcode.Field(errcode.FailedPrecondition, f, "the team names group type %d %q, the import %q", i, cur, name)
			}
			continue
		}
		for j, cur := range pl.team.GroupTypes {
			if cur == name {
				return errcode.Field(errcode.FailedPrecondition, f, "the team has group type %q at index %d, the import at %d", name, j, i)
			}
		}
		pl.groupTypes[i] = name
	}
	return nil
}

// parseCohorts reads the local-evaluation map (id -> property group) or a
// list of PostHog cohorts; a cohort matches the team's live cohort of the
// same name (a cohort of the local-evaluation payload has none: it is
// named "PostHog cohort <id>").
func (pl *importPlan) parseCohorts(v any, recs []catalog.CohortRecord) error {
	byName := map[string]*catalog.CohortRecord{}
	for i := range recs {
		if r := &recs[i]; !r.Deleted && r.Cohort.TeamID == pl.team.ID {
			byName[r.Cohort.Name] = r
		}
	}
	next := int64(-1)
	add := func(c *importCohort, raw any) {
		c.item = &adminv1.ImportItem{Kind: "cohort", Key: c.cohort.Name, SourceId: c.src}
		if _, dup := pl.cohortIDs[c.src]; dup && c.src != 0 {
			pl.cohorts = append(pl.cohorts, c)
			pl.refuse(c.item, c.field+".id", "duplicate_cohort", "cohort id %d appears twice", c.src)
			return
		}
		if r, ok := byName[c.cohort.Name]; ok {
			c.existing, c.tmp = r, r.Cohort.ID
			c.item.Id = r.Cohort.ID
			delete(byName, c.cohort.Name)
		} else {
			c.tmp, next = next, next-1
		}
		c.cohort.ID, c.cohort.TeamID = c.tmp, pl.team.ID
		if c.src != 0 {
			pl.cohortIDs[c.src] = c.tmp
		}
		pl.cohorts = append(pl.cohorts, c)
		if raw != nil {
			actionKeys(raw)
			if err := decodeInto(raw, &c.cohort.Filters); err != nil {
				pl.refuse(c.item, c.groupField, flags.CodeInvalidValue, "not a property group: %v", err)
			}
		}
	}
	switch x := v.(type) {
	case nil:
		return nil
	case map[string]any:
		if len(x) > maxImportCohorts {
			return errcode.Field(errcode.LimitExceeded, "definitions.cohorts", "%d cohorts: at most %d", len(x), maxImportCohorts)
		}
		for _, k := range sortedKeys(x) {
			id, err := strconv.ParseInt(k, 10, 64)
			if err != nil {
				return errcode.Field(errcode.InvalidArgument, "definitions.cohorts."+k, "cohorts maps a cohort id to its property group")
			}
			field := "definitions.cohorts." + k
			c := &importCohort{field: field, groupField: field, src: id,
				cohort: flags.Cohort{Name: fmt.Sprintf("PostHog cohort %d", id), Kind: flags.CohortDynamic}}
			add(c, x[k])
			if g, _ := x[k].(map[string]any); g != nil && hasBehavioral(g) {
				c.cohort.Kind = flags.CohortBehavioral
			}
		}
	case []any:
		if len(x) > maxImportCohorts {
			return errcode.Field(errcode.LimitExceeded, "definitions.cohorts", "%d cohorts: at most %d", len(x), maxImportCohorts)
		}
		for i, e := range x {
			field := fmt.Sprintf("definitions.cohorts[%d]", i)
			m, ok := e.(map[string]any)
			if !ok {
				return errcode.Field(errcode.InvalidArgument, field, "a cohort is an object")
			}
			if del, _ := m["deleted"].(bool); del {
				continue
			}
			name, _ := m["name"].(string)
			id, _ := strconv.ParseInt(fmt.Sprint(m["id"]), 10, 64)
			if name == "" {
				name = fmt.Sprintf("PostHog cohort %d", id)
			}
			if len(name) > 400 {
				return errcode.Field(errcode.InvalidArgument, field+".name", "name is at most 400 bytes")
			}
			desc, _ := m["description"].(string)
			c := &importCohort{field: field, groupField: field + ".filters.properties", src: id, description: desc,
				cohort: flags.Cohort{Name: name, Kind: flags.CohortDynamic}}
			var group any
			if fl, _ := m["filters"].(map[string]any); fl != nil {
				if pr, ok := fl["properties"]; ok {
					group = pr
				} else if _, ok := fl["values"]; ok {
					group, c.groupField = fl, field+".filters"
				}
			}
			g, _ := group.(map[string]any)
			switch static, _ := m["is_static"].(bool); {
			case static:
				c.cohort.Kind = flags.CohortStatic
				group = nil
			case g != nil && hasBehavioral(g):
				c.cohort.Kind = flags.CohortBehavioral
			}
			add(c, group)
			if c.cohort.Kind == flags.CohortStatic {
				c.item.Warnings = append(c.item.Warnings, &adminv1.Warning{Field: field + ".is_static", Code: "static_cohort",
					Message: "a static cohort's members are not part of the definitions: add them (AddCohortMembers)"})
			} else if g == nil && c.item.GetAction() != actionRefuse {
				pl.refuse(c.item, c.groupField, flags.CodeInvalidValue, "a cohort that is not static needs filters.properties")
			}
		}
	default:
		return errcode.Field(errcode.InvalidArgument, "definitions.cohorts", "cohorts is an object (id -> property group) or a list of cohorts")
	}
	return nil
}

// actionKeys writes the numeric key of a behavioural filter (PostHog names
// an action by its id: {"key": 14, "event_type": "actions"}) as a string,
// so that the cohort decodes and the engine refuses that filter alone,
// with its reason, instead of the whole property group failing to decode.
func actionKeys(g any) {
	m, _ := g.(map[string]any)
	vals, _ := m["values"].([]any)
	for _, v := range vals {
		f, _ := v.(map[string]any)
		if _, isGroup := f["values"]; isGroup {
			actionKeys(f)
			continue
		}
		if n, ok := f["key"].(json.Number); ok && f["type"] == "behavioral" {
			f["key"] = n.String()
		}
	}
}

// parseFlags reads the flags; a flag matches the team's live flag of the
// same key. Deleted flags are left out.
func (s *Service) parseFlags(pl *importPlan, v any, recs []catalog.FlagRecord) error {
	list, ok := v.([]any)
	if !ok && v != nil {
		return errcode.Field(errcode.InvalidArgument, "definitions.flags", "flags is a list of PostHog flags")
	}
	if len(list) > maxImportFlags {
		return errcode.Field(errcode.LimitExceeded, "definitions.flags", "%d flags: at most %d", len(list), maxImportFlags)
	}
	byKey := map[string]*catalog.FlagRecord{}
	for i := range recs {
		if r := &recs[i]; !r.Flag.Deleted && r.Flag.TeamID == pl.team.ID {
			byKey[r.Flag.Key] = r
		}
	}
	seen := map[string]bool{}
	for i, e := range list {
		field := fmt.Sprintf("definitions.flags[%d]", i)
		m, ok := e.(map[string]any)
		if !ok {
			return errcode.Field(errcode.InvalidArgument, field, "a flag is an object")
		}
		if del, _ := m["deleted"].(bool); del {
			continue
		}
		key, _ := m["key"].(string)
		src, _ := strconv.ParseInt(fmt.Sprint(m["id"]), 10, 64)
		it := &adminv1.ImportItem{Kind: "flag", Key: key, SourceId: src}
		f := &importFlag{field: field, src: src, item: it}
		pl.flags = append(pl.flags, f)
		in := &adminv1.FlagInput{Key: key, Active: true}
		in.Name, _ = m["name"].(string)
		in.Description, _ = m["description"].(string)
		if a, ok := m["active"].(bool); ok {
			in.Active = a
		}
		in.EnsureExperienceContinuity, _ = m["ensure_experience_continuity"].(bool)
		in.EvaluationRuntime, _ = m["evaluation_runtime"].(string)
		in.BucketingIdentifier, _ = m["bucketing_identifier"].(string)
		if tags, _ := m["tags"].([]any); tags != nil {
			for _, t := range tags {
				if ts, ok := t.(string); ok {
					in.Tags = append(in.Tags, ts)
				}
			}
		}
		flag, err := s.flagFromInput(in, field+".")
		if err != nil {
			var e *errcode.Error
			if errors.As(err, &e) {
				pl.refuse(it, e.Field, string(e.Code), "%s", e.Message)
				continue
			}
			return err
		}
		if fl, ok := m["filters"]; ok && fl != nil {
			if err := decodeInto(fl, &flag.Filters); err != nil {
				pl.refuse(it, field+".filters", flags.CodeInvalidValue, "filters is not a filters object: %v", err)
				continue
			}
			if flag.Filters.Groups == nil {
				flag.Filters.Groups = []flags.Condition{}
			}
		}
		if err := s.checkFlagLimits(flag, field+"."); err != nil {
			var e *errcode.Error
			if errors.As(err, &e) {
				pl.refuse(it, e.Field, string(e.Code), "%s", e.Message)
				continue
			}
			return err
		}
		if seen[key] {
			pl.refuse(it, field+".key", flags.CodeDuplicateKey, "flag key %q appears twice in the import", key)
			continue
		}
		seen[key] = true
		flag.TeamID = pl.team.ID
		if r, ok := byKey[key]; ok {
			f.existing = r
			it.Id = r.Flag.ID
			flag.ID, flag.Version, flag.HasExperiment = r.Flag.ID, r.Flag.Version, r.Flag.HasExperiment
			flag.Overrides = r.Flag.Overrides // Vexil's own; PostHog has none
		} else if err := checkNewFlagKey(key, "", field+".key"); err != nil {
			e := errcode.From(err)
			pl.refuse(it, e.Field, string(e.Code), "%s", e.Message)
			continue
		}
		f.flag = flag
	}
	return nil
}

// decodeInto re-reads generic JSON into an engine type, numbers keeping
// their text.
func decodeInto(v any, out any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return decodeJSON(string(data), out)
}

// remap rewrites cohort references (PostHog's ids) to planning ids and
// flag references by PostHog id to flag keys. A cohort the import does not
// define refuses the flag or cohort that names it.
func (pl *importPlan) remap() {
	srcKeys := map[string]string{} // PostHog id -> key
	keys := map[string]bool{}
	for _, f := range pl.flags {
		if f.item.GetAction() == actionRefuse {
			continue
		}
		keys[f.flag.Key] = true
		if f.src != 0 {
			srcKeys[strconv.FormatInt(f.src, 10)] = f.flag.Key
		}
	}
	filter := func(it *adminv1.ImportItem, path string, pf *flags.PropertyFilter) {
		switch pf.Type {
		case "cohort":
			id, err := strconv.ParseInt(strings.Trim(string(pf.Value), `"`), 10, 64)
			if err != nil {
				return // the engine refuses it with its path
			}
			to, ok := pl.cohortIDs[id]
			if !ok {
				pl.refuse(it, path+".value", flags.CodeUnknownCohort, "cohort %d is not among the imported cohorts", id)
				return
			}
			pf.Value = json.RawMessage(strconv.FormatInt(to, 10))
		case "flag":
			if key, ok := srcKeys[pf.Key]; ok && !keys[pf.Key] {
				pf.Key = key // PostHog names a dependency by its flag id
			}
		}
	}
	for _, f := range pl.flags {
		if f.item.GetAction() == actionRefuse {
			continue
		}
		for name, groups := range map[string][]flags.Condition{"groups": f.flag.Filters.Groups,
			"super_groups": f.flag.Filters.SuperGroups, "holdout_groups": f.flag.Filters.HoldoutGroups} {
			for ci := range groups {
				for pi := range groups[ci].Properties {
					filter(f.item, fmt.Sprintf("%s.filters.%s[%d].properties[%d]", f.field, name, ci, pi), &groups[ci].Properties[pi])
				}
			}
		}
	}
	var walk func(it *adminv1.ImportItem, path string, g *flags.PropertyGroup)
	walk = func(it *adminv1.ImportItem, path string, g *flags.PropertyGroup) {
		for i := range g.Values {
			p := fmt.Sprintf("%s.values[%d]", path, i)
			if n := g.Values[i]; n.Group != nil {
				walk(it, p, n.Group)
			} else if n.Filter != nil {
				filter(it, p, n.Filter)
			}
		}
	}
	for _, c := range pl.cohorts {
		if c.item.GetAction() != actionRefuse {
			walk(c.item, c.groupField, &c.cohort.Filters)
		}
	}
}

// compile compiles the team's definitions with the import in place and
// files each problem of an imported flag or cohort as a refusal or a
// warning.
func (pl *importPlan) compile(cur flags.Definitions) {
	defs := cur
	defs.GroupTypes = maps.Clone(cur.GroupTypes)
	if defs.GroupTypes == nil {
		defs.GroupTypes = map[int]string{}
	}
	maps.Copy(defs.GroupTypes, pl.groupTypes)
	flagsByKey := map[string]*importFlag{}
	replaced := map[string]bool{}
	var added []flags.Flag
	for _, f := range pl.flags {
		if f.item.GetAction() != actionRefuse {
			flagsByKey[f.flag.Key] = f
			replaced[f.flag.Key] = true
			added = append(added, f.flag)
		}
	}
	defs.Flags = slices.DeleteFunc(slices.Clone(cur.Flags), func(o flags.Flag) bool { return replaced[o.Key] })
	defs.Flags = append(defs.Flags, added...)
	cohortsByID := map[int64]*importCohort{}
	for _, c := range pl.cohorts {
		if c.item.GetAction() != actionRefuse {
			cohortsByID[c.tmp] = c
		}
	}
	defs.Cohorts = slices.DeleteFunc(slices.Clone(cur.Cohorts), func(o flags.Cohort) bool { return cohortsByID[o.ID] != nil })
	for _, c := range pl.cohorts {
		if c.item.GetAction() != actionRefuse {
			defs.Cohorts = append(defs.Cohorts, c.cohort)
		}
	}
	_, err := flags.Compile(defs)
	var ves flags.ValidationErrors
	errors.As(err, &ves)
	for _, ve := range ves {
		var it *adminv1.ImportItem
		var path string
		switch {
		case ve.Flag != "" && flagsByKey[ve.Flag] != nil:
			f := flagsByKey[ve.Flag]
			if ve.Code == flags.CodeDuplicateKey {
				continue // an existing flag of the key is replaced
			}
			it, path = f.item, f.field+"."+ve.Path
		case ve.Flag == "" && cohortsByID[ve.Cohort] != nil:
			c := cohortsByID[ve.Cohort]
			c.problems = append(c.problems, ve)
			it, path = c.item, c.field+"."+ve.Path
			if rest, ok := strings.CutPrefix(ve.Path, "filters"); ok {
				path = c.groupField + rest
			}
		default:
			continue // a problem of a flag or cohort the import leaves alone
		}
		if refuses(ve) {
			pl.refuse(it, path, ve.Code, "%s", ve.Reason)
		} else {
			it.Warnings = append(it.Warnings, &adminv1.Warning{Field: path, Code: ve.Code, Message: ve.Reason})
		}
	}
	for _, c := range cohortsByID {
		c.item.Filters = filterReport(&c.cohort.Filters, c.problems, func(p string) string {
			if rest, ok := strings.CutPrefix(p, "filters"); ok {
				return c.groupField + rest
			}
			return c.field + "." + p
		})
	}
}

// decide sets each item's action that is not refused: create, update or
// unchanged.
func (pl *importPlan) decide() {
	for _, c := range pl.cohorts {
		if c.item.GetAction() == actionRefuse {
			continue
		}
		switch {
		case c.existing == nil:
			c.item.Action = actionCreate
		case (c.existing.Cohort.Kind == flags.CohortStatic) != (c.cohort.Kind == flags.CohortStatic):
			pl.refuse(c.item, c.field+".is_static", flags.CodeInvalidValue, "cohort %q exists and is %s: a static cohort stays static", c.cohort.Name, c.existing.Cohort.Kind)
		case encodeJSON(c.existing.Cohort.Filters) == encodeJSON(c.cohort.Filters) && c.existing.Cohort.Kind == c.cohort.Kind &&
			(c.description == "" || c.description == c.existing.Description):
			c.item.Action = actionUnchanged
		default:
			c.item.Action = actionUpdate
		}
	}
	for _, f := range pl.flags {
		if f.item.GetAction() == actionRefuse {
			continue
		}
		switch {
		case f.existing == nil:
			f.item.Action = actionCreate
		case encodeJSON(f.existing.Flag) == encodeJSON(f.flag):
			f.item.Action = actionUnchanged
		default:
			f.item.Action = actionUpdate
		}
	}
}

// importUndo undoes one applied write.
type importUndo func(context.Context) error

// applyImport writes the plan: group types, then cohorts and flags in
// dependency order (what a record names is written before it), so every
// state a reader sees on the way is valid on its own. A failure (a
// concurrent change of one of the records, a backend error) undoes what
// was written, newest first, and refuses the import.
func (s *Service) applyImport(ctx context.Context, pl *importPlan) (err error) {
	p := callerOf(ctx)
	var undo []importUndo
	defer func() {
		if err == nil {
			return
		}
		uctx := context.WithoutCancel(ctx)
		for i := len(undo) - 1; i >= 0; i-- {
			if uerr := undo[i](uctx); uerr != nil {
				s.log.Error("import: undoing a write failed", "team", pl.team.ID, "err", uerr)
			}
		}
	}()
	change := func(action string, diff json.RawMessage) catalog.Change {
		return catalog.Change{Actor: p.key.ID, Action: action, Diff: diff}
	}
	if len(pl.groupTypes) > 0 {
		before := pl.team
		t := pl.team
		t.GroupTypes = maps.Clone(before.GroupTypes)
		if t.GroupTypes == nil {
			t.GroupTypes = map[int]string{}
		}
		maps.Copy(t.GroupTypes, pl.groupTypes)
		if _, err := s.saveTeam(ctx, p, before, t, "imported"); err != nil {
			return err
		}
		undo = append(undo, func(ctx context.Context) error {
			cur, err := s.cat.GetTeam(ctx, t.ID)
			if err != nil {
				return err
			}
			for i := range pl.groupTypes {
				delete(cur.GroupTypes, i)
			}
			_, err = s.saveTeam(ctx, p, before, cur, "import_undone")
			return err
		})
	}
	// Cohorts, those named by others first.
	realID := map[int64]int64{}
	for _, c := range pl.cohorts {
		if c.existing != nil {
			realID[c.tmp] = c.tmp
		}
	}
	var fix func(g *flags.PropertyGroup)
	fixFilter := func(pf *flags.PropertyFilter) {
		if pf.Type != "cohort" {
			return
		}
		if id, err := strconv.ParseInt(string(pf.Value), 10, 64); err == nil && id < 0 {
			pf.Value = json.RawMessage(strconv.FormatInt(realID[id], 10))
		}
	}
	fix = func(g *flags.PropertyGroup) {
		for i := range g.Values {
			if n := g.Values[i]; n.Group != nil {
				fix(n.Group)
			} else if n.Filter != nil {
				fixFilter(n.Filter)
			}
		}
	}
	for _, c := range cohortOrder(pl.cohorts) {
		if c.item.GetAction() == actionUnchanged {
			continue
		}
		fix(&c.cohort.Filters)
		if c.existing == nil {
			co := c.cohort
			co.ID = 0
			rec := catalog.CohortRecord{Cohort: co, Description: c.description, CreatedBy: p.key.ID, UpdatedBy: p.key.ID}
			diff := jsonDiff(nil, rec.Cohort)
			r, err := s.cat.CreateCohort(ctx, rec, change("imported", diff))
			if err != nil {
				return err
			}
			realID[c.tmp], c.item.Id = r.Cohort.ID, r.Cohort.ID
			s.announce(ctx, changes.Notice{Team: pl.team.ID, Kind: changes.KindCohort, ID: strconv.FormatInt(r.Cohort.ID, 10),
				Version: r.Cohort.Version, Op: "imported"}, p.key.ID, diff)
			undo = append(undo, func(ctx context.Context) error {
				cur, err := s.cat.GetCohort(ctx, pl.team.ID, r.Cohort.ID)
				if err != nil {
					return err
				}
				del := cur
				del.Deleted = true
				_, err = s.saveCohort(ctx, cur, del, "import_undone")
				return err
			})
			continue
		}
		before := *c.existing
		next := before
		next.Cohort = c.cohort
		next.Cohort.Version = before.Cohort.Version
		if c.description != "" {
			next.Description = c.description
		}
		out, err := s.saveCohort(ctx, before, next, "imported")
		if err != nil {
			return err
		}
		undo = append(undo, func(ctx context.Context) error {
			back := before
			back.Cohort.Version = out.Cohort.Version
			_, err := s.saveCohort(ctx, out, back, "import_undone")
			return err
		})
	}
	// Flags, dependencies first.
	for _, f := range flagOrder(pl.flags) {
		for _, groups := range [][]flags.Condition{f.flag.Filters.Groups, f.flag.Filters.SuperGroups, f.flag.Filters.HoldoutGroups} {
			for ci := range groups {
				for pi := range groups[ci].Properties {
					fixFilter(&groups[ci].Properties[pi])
				}
			}
		}
		if f.item.GetAction() == actionUnchanged {
			continue
		}
		if f.existing == nil {
			diff := jsonDiff(nil, f.flag)
			r, err := s.cat.CreateFlag(ctx, catalog.FlagRecord{Flag: f.flag, CreatedBy: p.key.ID, UpdatedBy: p.key.ID}, change("imported", diff))
			if errors.Is(err, catalog.ErrExists) {
				return errcode.Field(errcode.AlreadyExists, f.field+".key", "another flag of the team took the key %q meanwhile: nothing was written", f.flag.Key)
			}
			if err != nil {
				return err
			}
			f.item.Id = r.Flag.ID
			s.announce(ctx, changes.Notice{Team: pl.team.ID, Kind: changes.KindFlag, ID: strconv.FormatInt(r.Flag.ID, 10), Key: r.Flag.Key,
				Version: r.Flag.Version, Op: "imported"}, p.key.ID, diff)
			undo = append(undo, func(ctx context.Context) error {
				return s.undoFlag(ctx, r, func(fl *flags.Flag) { fl.Deleted = true })
			})
			continue
		}
		before := *f.existing
		next := before
		next.Flag = f.flag
		next.UpdatedBy = p.key.ID
		diff := jsonDiff(before.Flag, next.Flag)
		out, err := s.cat.UpdateFlag(ctx, next, change("imported", diff))
		if errors.Is(err, catalog.ErrConflict) {
			return errcode.Field(errcode.Conflict, f.field, "flag %q changed while importing: nothing was written", f.flag.Key)
		}
		if err != nil {
			return err
		}
		s.announce(ctx, changes.Notice{Team: pl.team.ID, Kind: changes.KindFlag, ID: strconv.FormatInt(out.Flag.ID, 10), Key: out.Flag.Key,
			Version: out.Flag.Version, Op: "imported"}, p.key.ID, diff)
		undo = append(undo, func(ctx context.Context) error {
			return s.undoFlag(ctx, out, func(fl *flags.Flag) { *fl = before.Flag })
		})
	}
	return nil
}

// undoFlag writes a flag back (after a failed import).
func (s *Service) undoFlag(ctx context.Context, cur catalog.FlagRecord, set func(*flags.Flag)) error {
	p := callerOf(ctx)
	next := cur
	next.Flag = cloneFlag(cur.Flag)
	set(&next.Flag)
	next.Flag.ID, next.Flag.Version = cur.Flag.ID, cur.Flag.Version
	diff := jsonDiff(cur.Flag, next.Flag)
	out, err := s.cat.UpdateFlag(ctx, next, catalog.Change{Actor: p.key.ID, Action: "import_undone", Diff: diff})
	if err != nil {
		return err
	}
	s.announce(ctx, changes.Notice{Team: cur.Flag.TeamID, Kind: changes.KindFlag, ID: strconv.FormatInt(out.Flag.ID, 10), Key: out.Flag.Key,
		Version: out.Flag.Version, Op: "import_undone"}, p.key.ID, diff)
	return nil
}

// cohortOrder returns the cohorts to write, each after the imported
// cohorts it names (the engine has refused cycles already).
func cohortOrder(cs []*importCohort) []*importCohort {
	byID := map[int64]*importCohort{}
	for _, c := range cs {
		byID[c.tmp] = c
	}
	var out []*importCohort
	done := map[*importCohort]bool{}
	var visit func(c *importCohort)
	var names func(g *flags.PropertyGroup, fn func(int64))
	names = func(g *flags.PropertyGroup, fn func(int64)) {
		for _, n := range g.Values {
			if n.Group != nil {
				names(n.Group, fn)
			} else if n.Filter != nil && n.Filter.Type == "cohort" {
				if id, err := strconv.ParseInt(string(n.Filter.Value), 10, 64); err == nil {
					fn(id)
				}
			}
		}
	}
	visit = func(c *importCohort) {
		if done[c] {
			return
		}
		done[c] = true
		names(&c.cohort.Filters, func(id int64) {
			if d := byID[id]; d != nil {
				visit(d)
			}
		})
		out = append(out, c)
	}
	for _, c := range cs {
		visit(c)
	}
	return out
}

// flagOrder returns the flags to write, each after the imported flags it
// depends on.
func flagOrder(fs []*importFlag) []*importFlag {
	byKey := map[string]*importFlag{}
	for _, f := range fs {
		byKey[f.flag.Key] = f
	}
	var out []*importFlag
	done := map[*importFlag]bool{}
	var visit func(f *importFlag)
	visit = func(f *importFlag) {
		if done[f] {
			return
		}
		done[f] = true
		for _, groups := range [][]flags.Condition{f.flag.Filters.Groups, f.flag.Filters.SuperGroups, f.flag.Filters.HoldoutGroups} {
			for _, c := range groups {
				for _, pf := range c.Properties {
					if d := byKey[pf.Key]; pf.Type == "flag" && d != nil {
						visit(d)
					}
				}
			}
		}
		out = append(out, f)
	}
	for _, f := range fs {
		visit(f)
	}
	return out
}
