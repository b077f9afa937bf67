package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/changes"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/flags"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// errFlagNotFound is the answer for a missing, deleted or unreachable flag.
func errFlagNotFound() *errcode.Error {
	return errcode.Field(errcode.NotFound, "flag_id", "flag not found")
}

// getFlag returns a live flag of a team.
func (s *Service) getFlag(ctx context.Context, team, id int64) (catalog.FlagRecord, error) {
	r, err := s.cat.GetFlag(ctx, team, id)
	if errors.Is(err, catalog.ErrNotFound) || (err == nil && (r.Flag.Deleted || r.Flag.TeamID != team)) {
		return catalog.FlagRecord{}, errFlagNotFound()
	}
	return r, err
}

// validateFlag compiles the team's definitions with f in place of its
// stored version (or added, when new): a problem of f that refuses (see
// refuses) is the error, the others come back as warnings. fieldOf maps an
// engine path to the request's field path.
func (s *Service) validateFlag(ctx context.Context, f flags.Flag, fieldOf func(string) string) ([]*adminv1.Warning, error) {
	snap, err := s.cat.Snapshot(ctx, f.TeamID)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, errTeamNotFound()
	}
	if err != nil {
		return nil, err
	}
	defs := snap.Definitions
	defs.Flags = slices.DeleteFunc(slices.Clone(defs.Flags), func(o flags.Flag) bool { return f.ID != 0 && o.ID == f.ID })
	defs.Flags = append(defs.Flags, f)
	_, err = flags.Compile(defs)
	var ves flags.ValidationErrors
	errors.As(err, &ves)
	var own []*flags.ValidationError
	for _, ve := range ves {
		// Key uniqueness is the catalog's (already_exists).
		if ve.Flag == f.Key && ve.Code != flags.CodeDuplicateKey {
			own = append(own, ve)
		}
	}
	warns, e := judge(own, fieldOf)
	if e != nil {
		return nil, e
	}
	return warns, nil
}

func prefixed(prefix string) func(string) string {
	return func(p string) string {
		if p == "" {
			return strings.TrimSuffix(prefix, ".")
		}
		return prefix + p
	}
}

// mutation is one change of a stored flag.
type mutation struct {
	team, id, version int64
	// action names the change in the activity log and the notices.
	action string
	// validate compiles the result (definition changes); single-purpose
	// state changes skip it so that they never depend on targeting.
	validate bool
	// fieldOf maps engine paths to request fields (validate only).
	fieldOf func(string) string
	apply   func(r *catalog.FlagRecord) error
}

// mutateFlag reads a flag, checks the expected version, applies the
// change, validates it, writes it with a compare-and-set and announces it.
func (s *Service) mutateFlag(ctx context.Context, m mutation) (*adminv1.FeatureFlag, error) {
	p := callerOf(ctx)
	r, err := s.getFlag(ctx, m.team, m.id)
	if err != nil {
		return nil, err
	}
	if err := expectVersion(versionOf(ctx, m.version), r.Flag.Version); err != nil {
		return nil, err
	}
	before := cloneFlag(r.Flag)
	beforeArchived := r.Archived
	r.Flag = cloneFlag(r.Flag)
	if err := m.apply(&r); err != nil {
		return nil, err
	}
	if err := checkNewFlagKey(r.Flag.Key, before.Key, "flag.key"); err != nil {
		return nil, err
	}
	var warns []*adminv1.Warning
	if m.validate {
		if err := s.checkFlagLimits(r.Flag, "flag."); err != nil {
			return nil, err
		}
		fieldOf := m.fieldOf
		if fieldOf == nil {
			fieldOf = prefixed("flag.")
		}
		if warns, err = s.validateFlag(ctx, r.Flag, fieldOf); err != nil {
			return nil, err
		}
	}
	type view struct {
		flags.Flag
		Archived bool `json:"archived"`
	}
	diff := jsonDiff(view{before, beforeArchived}, view{r.Flag, r.Archived})
	r.UpdatedBy = p.key.ID
	out, err := s.cat.UpdateFlag(ctx, r, catalog.Change{Actor: p.key.ID, Action: m.action, Diff: diff})
	switch {
	case errors.Is(err, catalog.ErrConflict):
		cur, gerr := s.cat.GetFlag(ctx, m.team, m.id)
		if gerr != nil {
			return nil, gerr
		}
		return nil, conflict(r.Flag.Version, cur.Flag.Version)
	case errors.Is(err, catalog.ErrExists):
		return nil, errcode.Field(errcode.AlreadyExists, "flag.key", "another flag of the team has the key %q", r.Flag.Key)
	case err != nil:
		return nil, err
	}
	s.announce(ctx, changes.Notice{Team: m.team, Kind: changes.KindFlag, ID: strconv.FormatInt(out.Flag.ID, 10), Key: out.Flag.Key,
		Version: out.Flag.Version, Op: m.action}, p.key.ID, diff)
	fp := flagProto(out)
	fp.Warnings = warns
	return fp, nil
}

// CreateFlag creates a flag.
func (s *Service) CreateFlag(ctx context.Context, req *adminv1.CreateFlagRequest) (*adminv1.CreateFlagResponse, error) {
	p := callerOf(ctx)
	if _, err := s.getTeam(ctx, req.GetTeamId()); err != nil {
		return nil, err
	}
	f, err := s.flagFromInput(req.GetFlag(), "flag.")
	if err != nil {
		return nil, err
	}
	if err := checkNewFlagKey(f.Key, "", "flag.key"); err != nil {
		return nil, err
	}
	f.TeamID = req.GetTeamId()
	warns, err := s.validateFlag(ctx, f, prefixed("flag."))
	if err != nil {
		return nil, err
	}
	diff := jsonDiff(nil, f)
	r, err := s.cat.CreateFlag(ctx, catalog.FlagRecord{Flag: f, CreatedBy: p.key.ID, UpdatedBy: p.key.ID},
		catalog.Change{Actor: p.key.ID, Diff: diff})
	if errors.Is(err, catalog.ErrExists) {
		return nil, errcode.Field(errcode.AlreadyExists, "flag.key", "another flag of the team has the key %q", f.Key)
	}
	if err != nil {
		return nil, err
	}
	s.announce(ctx, changes.Notice{Team: f.TeamID, Kind: changes.KindFlag, ID: strconv.FormatInt(r.Flag.ID, 10), Key: r.Flag.Key,
		Version: r.Flag.Version, Op: "created"}, p.key.ID, diff)
	fp := flagProto(r)
	fp.Warnings = warns
	return &adminv1.CreateFlagResponse{Flag: fp}, nil
}

// GetFlag returns a flag by id.
func (s *Service) GetFlag(ctx context.Context, req *adminv1.GetFlagRequest) (*adminv1.GetFlagResponse, error) {
	r, err := s.getFlag(ctx, req.GetTeamId(), req.GetFlagId())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetFlagResponse{Flag: s.withUsage(ctx, r.Flag.TeamID, []catalog.FlagRecord{r}, flagProto(r))[0]}, nil
}

// GetFlagByKey returns a live flag by key.
func (s *Service) GetFlagByKey(ctx context.Context, req *adminv1.GetFlagByKeyRequest) (*adminv1.GetFlagByKeyResponse, error) {
	r, err := s.cat.GetFlagByKey(ctx, req.GetTeamId(), req.GetKey())
	if errors.Is(err, catalog.ErrNotFound) || (err == nil && r.Flag.TeamID != req.GetTeamId()) {
		return nil, errcode.Field(errcode.NotFound, "key", "flag not found")
	}
	if err != nil {
		return nil, err
	}
	return &adminv1.GetFlagByKeyResponse{Flag: s.withUsage(ctx, r.Flag.TeamID, []catalog.FlagRecord{r}, flagProto(r))[0]}, nil
}

// ListFlags lists a team's flags, filtered, by id.
func (s *Service) ListFlags(ctx context.Context, req *adminv1.ListFlagsRequest) (*adminv1.ListFlagsResponse, error) {
	size, err := s.pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	if req.GetStaleDays() < 0 {
		return nil, errcode.Field(errcode.InvalidArgument, "stale_days", "stale_days must not be negative")
	}
	if _, err := s.getTeam(ctx, req.GetTeamId()); err != nil {
		return nil, err
	}
	all, err := s.cat.ListFlags(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	staleDays := int(req.GetStaleDays())
	if staleDays == 0 {
		staleDays = 30
	}
	staleBefore := s.cfg.Now().Add(-time.Duration(staleDays) * 24 * time.Hour)
	search := strings.ToLower(req.GetSearch())
	// With usage statistics, STALE is their rule (docs/usage.md) with the
	// team's stale_after_days, unless the request names its stale_days.
	var usageStates map[string]FlagUsageState
	if req.GetStatus() == adminv1.FlagStatus_FLAG_STATUS_STALE && s.cfg.FlagUsage != nil && req.GetStaleDays() == 0 {
		if usageStates, err = s.cfg.FlagUsage.FlagStates(ctx, req.GetTeamId(), all); err != nil {
			return nil, err
		}
	}
	var match []catalog.FlagRecord
	for _, r := range all {
		f := r.Flag
		if f.Deleted || f.TeamID != req.GetTeamId() {
			continue
		}
		switch req.GetStatus() {
		case adminv1.FlagStatus_FLAG_STATUS_UNSPECIFIED:
			if r.Archived {
				continue
			}
		case adminv1.FlagStatus_FLAG_STATUS_ACTIVE:
			if r.Archived || !f.Active {
				continue
			}
		case adminv1.FlagStatus_FLAG_STATUS_INACTIVE:
			if r.Archived || f.Active {
				continue
			}
		case adminv1.FlagStatus_FLAG_STATUS_ARCHIVED:
			if !r.Archived {
				continue
			}
		case adminv1.FlagStatus_FLAG_STATUS_STALE:
			if r.Archived {
				continue
			}
			if usageStates != nil {
				if usageStates[f.Key].Status != "STALE" {
					continue
				}
			} else if !isStale(r, staleBefore) {
				continue
			}
		case adminv1.FlagStatus_FLAG_STATUS_ALL:
		default:
			return nil, errcode.Field(errcode.InvalidArgument, "status", "unknown status")
		}
		if search != "" && !strings.Contains(strings.ToLower(f.Key), search) &&
			!strings.Contains(strings.ToLower(f.Name), search) && !strings.Contains(strings.ToLower(f.Description), search) {
			continue
		}
		if !hasTags(f.Tags, req.GetTags()) {
			continue
		}
		match = append(match, r)
	}
	page, next, err := offsetPage(match, size, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListFlagsResponse{NextPageToken: next}
	for _, r := range page {
		out.Results = append(out.Results, flagProto(r))
	}
	out.Results = s.withUsage(ctx, req.GetTeamId(), page, out.Results...)
	out.Count = int32(len(match))
	return out, nil
}

func hasTags(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// isStale: unchanged since before, and either disabled or rolled out to
// everyone (a condition with no properties at 100%).
func isStale(r catalog.FlagRecord, before time.Time) bool {
	if r.UpdatedAt.After(before) {
		return false
	}
	if !r.Flag.Active {
		return true
	}
	for _, c := range r.Flag.Filters.Groups {
		if len(c.Properties) == 0 && (c.RolloutPercentage == nil || *c.RolloutPercentage >= 100) {
			return true
		}
	}
	return false
}

// UpdateFlag replaces a flag's definition.
func (s *Service) UpdateFlag(ctx context.Context, req *adminv1.UpdateFlagRequest) (*adminv1.UpdateFlagResponse, error) {
	in, err := s.flagFromInput(req.GetFlag(), "flag.")
	if err != nil {
		return nil, err
	}
	f, err := s.mutateFlag(ctx, mutation{team: req.GetTeamId(), id: req.GetFlagId(), version: req.GetVersion(),
		action: "updated", validate: true, apply: func(r *catalog.FlagRecord) error {
			return s.replaceFlag(ctx, r, in)
		}})
	if err != nil {
		return nil, err
	}
	return &adminv1.UpdateFlagResponse{Flag: f}, nil
}

// patchable are the fields of FlagInput a PATCH body may carry.
var patchable = []string{"key", "name", "description", "active", "tags", "ensure_experience_continuity",
	"evaluation_runtime", "bucketing_identifier", "filters", "overrides"}

// PatchFlag changes the fields a PostHog-shaped body carries.
func (s *Service) PatchFlag(ctx context.Context, req *adminv1.PatchFlagRequest) (*adminv1.PatchFlagResponse, error) {
	body := req.GetFlag().GetFields()
	version := req.GetVersion()
	if v, ok := body["version"]; ok && version == 0 {
		n, err := strconv.ParseInt(strings.TrimSuffix(fmt.Sprint(v.AsInterface()), ".0"), 10, 64)
		if err != nil || n < 0 {
			return nil, errcode.Field(errcode.InvalidArgument, "flag.version", "version is the version read, an integer")
		}
		version = n
	}
	if del, ok := body["deleted"]; ok && del.GetBoolValue() {
		r, err := s.DeleteFlag(ctx, &adminv1.DeleteFlagRequest{TeamId: req.GetTeamId(), FlagId: req.GetFlagId(), Version: version})
		if err != nil {
			return nil, err
		}
		return &adminv1.PatchFlagResponse{Flag: r.GetFlag()}, nil
	}
	// The known fields, decoded as a FlagInput.
	known := map[string]any{}
	for _, k := range patchable {
		if v, ok := body[k]; ok {
			known[k] = v.AsInterface()
		}
	}
	data, err := json.Marshal(known)
	if err != nil {
		return nil, errcode.Field(errcode.InvalidArgument, "flag", "%v", err)
	}
	patch := &adminv1.FlagInput{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, patch); err != nil {
		return nil, errcode.Field(errcode.InvalidArgument, "flag", "not a flag: %v", err)
	}
	f, err := s.mutateFlag(ctx, mutation{team: req.GetTeamId(), id: req.GetFlagId(), version: version,
		action: "updated", validate: true, apply: func(r *catalog.FlagRecord) error {
			in := &adminv1.FlagInput{Key: r.Flag.Key, Name: r.Flag.Name, Description: r.Flag.Description, Active: r.Flag.Active,
				Tags: r.Flag.Tags, EnsureExperienceContinuity: r.Flag.EnsureExperienceContinuity,
				EvaluationRuntime: r.Flag.EvaluationRuntime, BucketingIdentifier: r.Flag.BucketingIdentifier}
			dst, src := in.ProtoReflect(), patch.ProtoReflect()
			for k := range known {
				fd := dst.Descriptor().Fields().ByName(protoreflect.Name(k))
				if src.Has(fd) {
					dst.Set(fd, src.Get(fd))
				} else {
					dst.Clear(fd)
				}
			}
			next, err := s.flagFromInput(in, "flag.")
			if err != nil {
				return err
			}
			// What the body leaves out keeps its stored form.
			if _, ok := known["filters"]; !ok {
				next.Filters = r.Flag.Filters
			}
			if _, ok := known["overrides"]; !ok {
				next.Overrides = r.Flag.Overrides
			}
			return s.replaceFlag(ctx, r, next)
		}})
	if err != nil {
		return nil, err
	}
	return &adminv1.PatchFlagResponse{Flag: f}, nil
}

// replaceFlag puts a new definition in r, keeping what the client does not
// edit; renaming a flag other flags depend on is refused.
func (s *Service) replaceFlag(ctx context.Context, r *catalog.FlagRecord, in flags.Flag) error {
	if in.Key != r.Flag.Key {
		// Renaming would break the flags that name this one.
		if err := s.refuseIfDepended(ctx, r.Flag); err != nil {
			return err
		}
	}
	in.ID, in.TeamID, in.Version, in.Deleted = r.Flag.ID, r.Flag.TeamID, r.Flag.Version, r.Flag.Deleted
	in.HasExperiment = r.Flag.HasExperiment
	r.Flag = in
	return nil
}

// EnableFlag sets active; targeting is untouched.
func (s *Service) EnableFlag(ctx context.Context, req *adminv1.EnableFlagRequest) (*adminv1.EnableFlagResponse, error) {
	f, err := s.mutateFlag(ctx, mutation{team: req.GetTeamId(), id: req.GetFlagId(), version: req.GetVersion(),
		action: "enabled", apply: func(r *catalog.FlagRecord) error {
			if r.Archived {
				return errcode.Field(errcode.FailedPrecondition, "flag_id", "the flag is archived: unarchive it first")
			}
			r.Flag.Active = true
			return nil
		}})
	if err != nil {
		return nil, err
	}
	return &adminv1.EnableFlagResponse{Flag: f}, nil
}

// DisableFlag clears active; targeting is untouched.
func (s *Service) DisableFlag(ctx context.Context, req *adminv1.DisableFlagRequest) (*adminv1.DisableFlagResponse, error) {
	f, err := s.mutateFlag(ctx, mutation{team: req.GetTeamId(), id: req.GetFlagId(), version: req.GetVersion(),
		action: "disabled", apply: func(r *catalog.FlagRecord) error {
			r.Flag.Active = false
			return nil
		}})
	if err != nil {
		return nil, err
	}
	return &adminv1.DisableFlagResponse{Flag: f}, nil
}

// ArchiveFlag archives (and disables) a flag nothing live depends on.
func (s *Service) ArchiveFlag(ctx context.Context, req *adminv1.ArchiveFlagRequest) (*adminv1.ArchiveFlagResponse, error) {
	f, err := s.mutateFlag(ctx, mutation{team: req.GetTeamId(), id: req.GetFlagId(), version: req.GetVersion(),
		action: "archived", apply: func(r *catalog.FlagRecord) error {
			if err := s.refuseIfDepended(ctx, r.Flag); err != nil {
				return err
			}
			r.Archived, r.Flag.Active = true, false
			return nil
		}})
	if err != nil {
		return nil, err
	}
	return &adminv1.ArchiveFlagResponse{Flag: f}, nil
}

// UnarchiveFlag brings an archived flag back, still disabled.
func (s *Service) UnarchiveFlag(ctx context.Context, req *adminv1.UnarchiveFlagRequest) (*adminv1.UnarchiveFlagResponse, error) {
	f, err := s.mutateFlag(ctx, mutation{team: req.GetTeamId(), id: req.GetFlagId(), version: req.GetVersion(),
		action: "unarchived", apply: func(r *catalog.FlagRecord) error {
			r.Archived = false
			return nil
		}})
	if err != nil {
		return nil, err
	}
	return &adminv1.UnarchiveFlagResponse{Flag: f}, nil
}

// DeleteFlag soft-deletes a flag nothing live depends on.
func (s *Service) DeleteFlag(ctx context.Context, req *adminv1.DeleteFlagRequest) (*adminv1.DeleteFlagResponse, error) {
	f, err := s.mutateFlag(ctx, mutation{team: req.GetTeamId(), id: req.GetFlagId(), version: req.GetVersion(),
		action: "deleted", apply: func(r *catalog.FlagRecord) error {
			if err := s.refuseIfDepended(ctx, r.Flag); err != nil {
				return err
			}
			r.Flag.Deleted = true
			return nil
		}})
	if err != nil {
		return nil, err
	}
	return &adminv1.DeleteFlagResponse{Flag: f}, nil
}

// dependents returns the live, unarchived flags that depend on f.
func (s *Service) dependents(ctx context.Context, f flags.Flag) ([]*adminv1.Dependent, error) {
	snap, err := s.cat.Snapshot(ctx, f.TeamID)
	if err != nil {
		return nil, err
	}
	all, err := s.cat.ListFlags(ctx, f.TeamID)
	if err != nil {
		return nil, err
	}
	archived := map[int64]bool{}
	for _, r := range all {
		if r.Archived {
			archived[r.Flag.ID] = true
		}
	}
	set, _ := flags.Compile(snap.Definitions) // problems of other flags do not matter here
	var out []*adminv1.Dependent
	for _, o := range snap.Definitions.Flags {
		if o.ID == f.ID || archived[o.ID] {
			continue
		}
		info, ok := set.Info(o.Key)
		if !ok || !slices.Contains(info.DependencyChain, f.Key) {
			continue
		}
		out = append(out, &adminv1.Dependent{FlagId: o.ID, Key: o.Key, Direct: namesFlag(o, f.Key)})
	}
	return out, nil
}

// namesFlag reports whether o's own filters have a flag filter on key.
func namesFlag(o flags.Flag, key string) bool {
	for _, groups := range [][]flags.Condition{o.Filters.Groups, o.Filters.SuperGroups, o.Filters.HoldoutGroups} {
		for _, c := range groups {
			for _, p := range c.Properties {
				if p.Type == "flag" && p.Key == key {
					return true
				}
			}
		}
	}
	return false
}

func (s *Service) refuseIfDepended(ctx context.Context, f flags.Flag) error {
	deps, err := s.dependents(ctx, f)
	if err != nil {
		return err
	}
	if len(deps) == 0 {
		return nil
	}
	keys := make([]string, len(deps))
	for i, d := range deps {
		keys[i] = d.GetKey()
	}
	return errcode.Field(errcode.HasDependents, "flag_id", "other flags depend on %q: %s", f.Key, strings.Join(keys, ", ")).
		With("dependents", strings.Join(keys, ","))
}

// ListDependents lists the live flags that depend on a flag.
func (s *Service) ListDependents(ctx context.Context, req *adminv1.ListDependentsRequest) (*adminv1.ListDependentsResponse, error) {
	r, err := s.getFlag(ctx, req.GetTeamId(), req.GetFlagId())
	if err != nil {
		return nil, err
	}
	deps, err := s.dependents(ctx, r.Flag)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListDependentsResponse{Dependents: deps}, nil
}

// ---- Conditions ----

var groupPath = regexp.MustCompile(`^filters\.groups\[(\d+)\](.*)$`)

// conditionField maps engine paths inside condition i to "condition...".
func conditionField(i int) func(string) string {
	return func(p string) string {
		if m := groupPath.FindStringSubmatch(p); m != nil && m[1] == strconv.Itoa(i) {
			return "condition" + m[2]
		}
		return prefixed("flag.")(p)
	}
}

func conditionIndex(i int32, n int) error {
	if i < 0 || int(i) >= n {
		return errcode.Field(errcode.InvalidArgument, "index", "index %d is not a condition (the flag has %d)", i, n)
	}
	return nil
}

// AddCondition inserts a condition.
func (s *Service) AddCondition(ctx context.Context, req *adminv1.AddConditionRequest) (*adminv1.AddConditionResponse, error) {
	c, err := conditionFromProto(req.GetCondition(), "condition")
	if err != nil {
		return nil, err
	}
	pos := -1
	f, err := s.mutateFlag(ctx, mutation{team: req.GetTeamId(), id: req.GetFlagId(), version: req.GetVersion(),
		action: "condition_added", validate: true,
		fieldOf: func(p string) string { return conditionField(pos)(p) },
		apply: func(r *catalog.FlagRecord) error {
			g := r.Flag.Filters.Groups
			pos = len(g)
			if req.Position != nil {
				if req.GetPosition() < 0 || int(req.GetPosition()) > len(g) {
					return errcode.Field(errcode.InvalidArgument, "position", "position is 0..%d", len(g))
				}
				pos = int(req.GetPosition())
			}
			if len(g)+1 > s.cfg.Limits.MaxConditions {
				return errcode.Field(errcode.LimitExceeded, "condition", "the flag has %d conditions: at most %d",
					len(g), s.cfg.Limits.MaxConditions).With("limit", strconv.Itoa(s.cfg.Limits.MaxConditions))
			}
			r.Flag.Filters.Groups = slices.Insert(g, pos, c)
			return nil
		}})
	if err != nil {
		return nil, err
	}
	return &adminv1.AddConditionResponse{Flag: f}, nil
}

// UpdateCondition replaces a condition.
func (s *Service) UpdateCondition(ctx context.Context, req *adminv1.UpdateConditionRequest) (*adminv1.UpdateConditionResponse, error) {
	c, err := conditionFromProto(req.GetCondition(), "condition")
	if err != nil {
		return nil, err
	}
	f, err := s.mutateFlag(ctx, mutation{team: req.GetTeamId(), id: req.GetFlagId(), version: req.GetVersion(),
		action: "condition_updated", validate: true, fieldOf: conditionField(int(req.GetIndex())),
		apply: func(r *catalog.FlagRecord) error {
			if err := conditionIndex(req.GetIndex(), len(r.Flag.Filters.Groups)); err != nil {
				return err
			}
			r.Flag.Filters.Groups[req.GetIndex()] = c
			return nil
		}})
	if err != nil {
		return nil, err
	}
	return &adminv1.UpdateConditionResponse{Flag: f}, nil
}

// RemoveCondition removes a condition.
func (s *Service) RemoveCondition(ctx context.Context, req *adminv1.RemoveConditionRequest) (*adminv1.RemoveConditionResponse, error) {
	f, err := s.mutateFlag(ctx, mutation{team: req.GetTeamId(), id: req.GetFlagId(), version: req.GetVersion(),
		action: "condition_removed", validate: true,
		apply: func(r *catalog.FlagRecord) error {
			if err := conditionIndex(req.GetIndex(), len(r.Flag.Filters.Groups)); err != nil {
				return err
			}
			r.Flag.Filters.Groups = slices.Delete(r.Flag.Filters.Groups, int(req.GetIndex()), int(req.GetIndex())+1)
			return nil
		}})
	if err != nil {
		return nil, err
	}
	return &adminv1.RemoveConditionResponse{Flag: f}, nil
}

// ReorderConditions permutes the conditions.
func (s *Service) ReorderConditions(ctx context.Context, req *adminv1.ReorderConditionsRequest) (*adminv1.ReorderConditionsResponse, error) {
	f, err := s.mutateFlag(ctx, mutation{team: req.GetTeamId(), id: req.GetFlagId(), version: req.GetVersion(),
		action: "conditions_reordered", validate: true,
		apply: func(r *catalog.FlagRecord) error {
			g := r.Flag.Filters.Groups
			order := req.GetOrder()
			seen := make([]bool, len(g))
			if len(order) != len(g) {
				return errcode.Field(errcode.InvalidArgument, "order", "order lists each of the %d conditions once", len(g))
			}
			next := make([]flags.Condition, len(g))
			for i, o := range order {
				if o < 0 || int(o) >= len(g) || seen[o] {
					return errcode.Field(errcode.InvalidArgument, fmt.Sprintf("order[%d]", i), "order lists each of the %d conditions once", len(g))
				}
				seen[o] = true
				next[i] = g[o]
			}
			r.Flag.Filters.Groups = next
			return nil
		}})
	if err != nil {
		return nil, err
	}
	return &adminv1.ReorderConditionsResponse{Flag: f}, nil
}

// SetRollout changes one condition's rollout percentage.
func (s *Service) SetRollout(ctx context.Context, req *adminv1.SetRolloutRequest) (*adminv1.SetRolloutResponse, error) {
	pct := req.GetRolloutPercentage()
	if !(pct >= 0 && pct <= 100) {
		return nil, errcode.Field(errcode.InvalidArgument, "rollout_percentage", "rollout_percentage is 0..100")
	}
	f, err := s.mutateFlag(ctx, mutation{team: req.GetTeamId(), id: req.GetFlagId(), version: req.GetVersion(),
		action: "rollout_set", validate: true, fieldOf: conditionField(int(req.GetIndex())),
		apply: func(r *catalog.FlagRecord) error {
			if err := conditionIndex(req.GetIndex(), len(r.Flag.Filters.Groups)); err != nil {
				return err
			}
			r.Flag.Filters.Groups[req.GetIndex()].RolloutPercentage = &pct
			return nil
		}})
	if err != nil {
		return nil, err
	}
	return &adminv1.SetRolloutResponse{Flag: f}, nil
}

// SetOverrides replaces a flag's overrides.
func (s *Service) SetOverrides(ctx context.Context, req *adminv1.SetOverridesRequest) (*adminv1.SetOverridesResponse, error) {
	ovs, err := overridesFromProto(req.GetOverrides(), "overrides")
	if err != nil {
		return nil, err
	}
	if err := s.checkFlagLimits(flags.Flag{Overrides: ovs}, ""); err != nil {
		return nil, err
	}
	f, err := s.mutateFlag(ctx, mutation{team: req.GetTeamId(), id: req.GetFlagId(), version: req.GetVersion(),
		action: "overrides_set", validate: true,
		fieldOf: func(p string) string {
			if strings.HasPrefix(p, "overrides") {
				return p
			}
			return prefixed("flag.")(p)
		},
		apply: func(r *catalog.FlagRecord) error {
			r.Flag.Overrides = ovs
			return nil
		}})
	if err != nil {
		return nil, err
	}
	return &adminv1.SetOverridesResponse{Flag: f}, nil
}

// withUsage sets status and last_evaluated_at on the protos of recs (same
// order) when Config.FlagUsage is set. A failed read leaves them unset:
// usage is an annotation, not a reason to fail a read of definitions.
func (s *Service) withUsage(ctx context.Context, team int64, recs []catalog.FlagRecord, out ...*adminv1.FeatureFlag) []*adminv1.FeatureFlag {
	if s.cfg.FlagUsage == nil || len(recs) == 0 {
		return out
	}
	st, err := s.cfg.FlagUsage.FlagStates(ctx, team, recs)
	if err != nil {
		s.log.Warn("admin: flag usage status unavailable", "team", team, "err", err)
		return out
	}
	for i, r := range recs {
		u, ok := st[r.Flag.Key]
		if !ok || i >= len(out) {
			continue
		}
		out[i].Status = u.Status
		if !u.LastEvaluatedAt.IsZero() {
			out[i].LastEvaluatedAt = ts(u.LastEvaluatedAt)
		}
	}
	return out
}
