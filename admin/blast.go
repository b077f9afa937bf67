package admin

import (
	"github.com/cespare/xxhash/v2"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/flags"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
	"github.com/vexil-dev/vexil/store"
)

// jobRef names a queued blast radius job.
type jobRef struct {
	team int64
	id   string
}

// blastRequest is what a job stores as its Request.
type blastRequest struct {
	FlagID     int64      `json:"flag_id,omitempty"`
	Flag       flags.Flag `json:"flag"`
	SampleSize int        `json:"sample_size"`
}

// MaxBlastSample bounds the sample of a blast radius.
const MaxBlastSample = 100

var jobStates = map[catalog.JobStatus]adminv1.JobState{
	catalog.JobQueued: adminv1.JobState_JOB_STATE_QUEUED, catalog.JobRunning: adminv1.JobState_JOB_STATE_RUNNING,
	catalog.JobDone: adminv1.JobState_JOB_STATE_DONE, catalog.JobFailed: adminv1.JobState_JOB_STATE_FAILED,
	catalog.JobCancelled: adminv1.JobState_JOB_STATE_CANCELLED,
}

func jobProto(j catalog.BlastRadiusJob) *adminv1.BlastRadiusJob {
	out := &adminv1.BlastRadiusJob{
		Id: j.ID, TeamId: j.TeamID, State: jobStates[j.Status], RowsDone: j.Done, RowsTotal: j.Total, Error: j.Error,
		CreatedAt: ts(j.CreatedAt), FinishedAt: ts(j.FinishedAt), CancelRequested: j.CancelRequested,
	}
	if r := j.Result; r != nil {
		out.Changed, out.Transitions, out.Sample = r.Matched, r.ByVariant, r.Sample
		out.GroupsEvaluated, out.GroupsChanged, out.GroupTransitions, out.GroupSample = r.GroupsEvaluated, r.GroupsMatched, r.GroupsByVariant, r.GroupSample
	}
	return out
}

func finished(s catalog.JobStatus) bool {
	return s == catalog.JobDone || s == catalog.JobFailed || s == catalog.JobCancelled
}

// blastCalc compares a flag's value before and after a change, row by row.
type blastCalc struct {
	s              *Service
	team           int64
	defs           flags.Definitions
	static         map[int64]bool
	old, new       *flags.Set
	oldKey, newKey string
	sampleSize     int
	res            catalog.BlastRadiusResult
	// changed holds the persons (hashes of their ids) already counted: a
	// person changes when any of its distinct ids does, and counts once.
	changed map[uint64]struct{}
	// groupTypes are the group type indexes the flag's conditions
	// aggregate by, before or after the change (groupTypesOf); oldTypes
	// and newTypes those of each side.
	groupTypes, oldTypes, newTypes []int
}

// newBlastCalc compiles the team's current definitions and the proposed
// ones.
func (s *Service) newBlastCalc(ctx context.Context, team int64, req blastRequest) (*blastCalc, error) {
	snap, err := s.cat.Snapshot(ctx, team)
	if err != nil {
		return nil, err
	}
	b := &blastCalc{s: s, team: team, defs: snap.Definitions, static: staticCohorts(snap.Definitions),
		newKey: req.Flag.Key, sampleSize: req.SampleSize, res: catalog.BlastRadiusResult{ByVariant: map[string]int64{}},
		changed: map[uint64]struct{}{}}
	b.old, _ = flags.Compile(snap.Definitions)
	if req.FlagID != 0 {
		for _, f := range snap.Definitions.Flags {
			if f.ID == req.FlagID {
				b.oldKey = f.Key
			}
		}
	}
	for _, f := range snap.Definitions.Flags {
		if req.FlagID != 0 && f.ID == req.FlagID {
			b.oldTypes = groupTypesOf(f)
		}
	}
	b.newTypes = groupTypesOf(req.Flag)
	b.groupTypes = slices.Clone(b.oldTypes)
	for _, t := range b.newTypes {
		if !slices.Contains(b.groupTypes, t) {
			b.groupTypes = append(b.groupTypes, t)
		}
	}
	slices.Sort(b.groupTypes)
	d := snap.Definitions
	d.Flags = slices.DeleteFunc(slices.Clone(d.Flags), func(f flags.Flag) bool { return req.FlagID != 0 && f.ID == req.FlagID })
	d.Flags = append(d.Flags, req.Flag)
	b.new, _ = flags.Compile(d)
	return b, nil
}

func (b *blastCalc) rows(ctx context.Context, rows []*store.Row) error {
	for _, row := range rows {
		ec, err := b.s.rowContext(ctx, b.team, b.defs, b.static, row)
		if err != nil {
			return err
		}
		before := "false"
		if b.oldKey != "" {
			if r, ok := evalOne(b.old, &ec, b.oldKey); ok {
				before = valueOf(r)
			}
		}
		after := "false"
		if r, ok := evalOne(b.new, &ec, b.newKey); ok {
			after = valueOf(r)
		}
		b.res.Evaluated++
		if before != after {
			b.res.ByVariant[before+"->"+after]++
			person := xxhash.Sum64String(row.PersonID)
			if row.PersonID == "" {
				person = xxhash.Sum64String("\x00" + row.DistinctID)
			}
			if _, seen := b.changed[person]; !seen {
				b.changed[person] = struct{}{}
				b.res.Matched++
				if len(b.res.Sample) < b.sampleSize {
					b.res.Sample = append(b.res.Sample, row.DistinctID)
				}
			}
		}
	}
	b.s.metrics.blastRows.Add(float64(len(rows)))
	return nil
}

// groupTypesOf returns the group type indexes a flag's conditions
// aggregate by: the flag's default, or each condition's own.
func groupTypesOf(f flags.Flag) []int {
	var out []int
	add := func(t *int) {
		if t != nil && !slices.Contains(out, *t) {
			out = append(out, *t)
		}
	}
	for _, cs := range [][]flags.Condition{f.Filters.Groups, f.Filters.SuperGroups} {
		for _, c := range cs {
			if c.Aggregation.Set {
				add(c.Aggregation.Index) // nil: persons
			} else {
				add(f.Filters.AggregationGroupTypeIndex)
			}
		}
	}
	if len(f.Filters.Groups) == 0 {
		add(f.Filters.AggregationGroupTypeIndex)
	}
	return out
}

// groupScanner is the part of the persons store that lists groups
// (memstore, pebblestore, scyllastore); a store without it counts no
// groups.
type groupScanner interface {
	ScanGroups(ctx context.Context, team int64, typeIndex int, cursor string, limit int) (store.GroupPage, error)
}

// MaxBlastGroups bounds the groups one blast radius evaluates per group
// type (the rest are not counted; groups_evaluated says how many were).
const MaxBlastGroups = 1_000_000

// groups evaluates the flag before and after for every group of the
// group types its conditions aggregate by: a group-aggregated condition
// set's blast radius is in groups, not persons. Each group is evaluated
// alone (no person), as a request naming only that group; a side (before
// or after) whose conditions do not aggregate by the group's type is
// "false" for it (a group cannot match a person condition).
func (b *blastCalc) groups(ctx context.Context) error {
	gs, ok := b.s.cfg.Persons.(groupScanner)
	if !ok || len(b.groupTypes) == 0 {
		return nil
	}
	if b.res.GroupsByVariant == nil {
		b.res.GroupsByVariant = map[string]int64{}
	}
	for _, t := range b.groupTypes {
		var n int
		for cursor := ""; n < MaxBlastGroups; {
			page, err := gs.ScanGroups(ctx, b.team, t, cursor, b.s.cfg.BlastRadiusPage)
			if err != nil {
				return err
			}
			for _, g := range page.Groups {
				props, err := decodeProps(g.Properties)
				if err != nil {
					return fmt.Errorf("admin: group %d/%q: %w", t, g.Key, err)
				}
				ec := flags.Context{Groups: make([]flags.Group, t+1), Now: b.s.cfg.Now()}
				ec.Groups[t] = flags.Group{Key: g.Key, Properties: props}
				before := "false"
				if b.oldKey != "" && slices.Contains(b.oldTypes, t) {
					if r, ok := evalOne(b.old, &ec, b.oldKey); ok {
						before = valueOf(r)
					}
				}
				after := "false"
				if slices.Contains(b.newTypes, t) {
					if r, ok := evalOne(b.new, &ec, b.newKey); ok {
						after = valueOf(r)
					}
				}
				b.res.GroupsEvaluated++
				n++
				if before != after {
					b.res.GroupsByVariant[before+"->"+after]++
					b.res.GroupsMatched++
					if len(b.res.GroupSample) < b.sampleSize {
						b.res.GroupSample = append(b.res.GroupSample, fmt.Sprintf("%d:%s", t, g.Key))
					}
				}
			}
			if cursor = page.Next; cursor == "" {
				break
			}
		}
	}
	return nil
}

func (b *blastCalc) result() *catalog.BlastRadiusResult {
	r := b.res
	r.ByVariant = maps.Clone(b.res.ByVariant)
	r.GroupsByVariant = maps.Clone(b.res.GroupsByVariant)
	r.Sample = slices.Clone(b.res.Sample)
	r.GroupSample = slices.Clone(b.res.GroupSample)
	return &r
}

// StartBlastRadius starts (or, for a small team, answers at once) a blast
// radius computation.
func (s *Service) StartBlastRadius(ctx context.Context, req *adminv1.StartBlastRadiusRequest) (*adminv1.StartBlastRadiusResponse, error) {
	p := callerOf(ctx)
	sample := int(req.GetSampleSize())
	switch {
	case sample < 0:
		return nil, errcode.Field(errcode.InvalidArgument, "sample_size", "sample_size must not be negative")
	case sample > MaxBlastSample:
		return nil, errcode.Field(errcode.LimitExceeded, "sample_size", "sample_size is at most %d", MaxBlastSample)
	case sample == 0:
		sample = 10
	}
	proposed, err := s.flagFromInput(req.GetFlag(), "flag.")
	if err != nil {
		return nil, err
	}
	if _, err := s.getTeam(ctx, req.GetTeamId()); err != nil {
		return nil, err
	}
	proposed.TeamID = req.GetTeamId()
	if req.GetFlagId() != 0 {
		cur, err := s.getFlag(ctx, req.GetTeamId(), req.GetFlagId())
		if err != nil {
			return nil, err
		}
		proposed.ID, proposed.Version = cur.Flag.ID, cur.Flag.Version
	}
	if _, err := s.validateFlag(ctx, proposed, prefixed("flag.")); err != nil {
		return nil, err
	}
	if s.cfg.Persons == nil {
		return nil, errcode.New(errcode.Unavailable, "blast radius needs the persons store, which this server does not have")
	}
	br := blastRequest{FlagID: req.GetFlagId(), Flag: proposed, SampleSize: sample}
	raw, err := json.Marshal(br)
	if err != nil {
		return nil, err
	}
	first, err := s.cfg.Persons.ScanRows(ctx, req.GetTeamId(), "", s.cfg.BlastRadiusPage)
	if err != nil {
		return nil, err
	}
	if first.Next == "" {
		// Small team: answer now; the job is stored done, for the record.
		calc, err := s.newBlastCalc(ctx, req.GetTeamId(), br)
		if err != nil {
			return nil, err
		}
		if err := calc.rows(ctx, first.Rows); err != nil {
			return nil, err
		}
		if err := calc.groups(ctx); err != nil {
			return nil, err
		}
		n := int64(len(first.Rows))
		j, err := s.cat.CreateJob(ctx, catalog.BlastRadiusJob{TeamID: req.GetTeamId(), Status: catalog.JobDone, Request: raw,
			Done: n, Total: n, Result: calc.result(), CreatedBy: p.key.ID, FinishedAt: s.cfg.Now()})
		if err != nil {
			return nil, err
		}
		return &adminv1.StartBlastRadiusResponse{Job: jobProto(j)}, nil
	}
	j, err := s.cat.CreateJob(ctx, catalog.BlastRadiusJob{TeamID: req.GetTeamId(), Status: catalog.JobQueued, Request: raw, CreatedBy: p.key.ID})
	if err != nil {
		return nil, err
	}
	select {
	case s.jobs <- jobRef{team: j.TeamID, id: j.ID}:
	default:
		_, _ = s.updateJob(context.WithoutCancel(ctx), j.TeamID, j.ID, func(j *catalog.BlastRadiusJob) bool {
			j.Status, j.Error, j.FinishedAt = catalog.JobFailed, "too many blast radius jobs queued", s.cfg.Now()
			return true
		})
		return nil, errcode.New(errcode.Unavailable, "too many blast radius jobs are queued: retry later")
	}
	return &adminv1.StartBlastRadiusResponse{Job: jobProto(j)}, nil
}

// updateJob applies fn to the stored job and writes it, retrying on
// version conflicts (a cancel request racing with progress). fn returns
// false to write nothing.
func (s *Service) updateJob(ctx context.Context, team int64, id string, fn func(*catalog.BlastRadiusJob) bool) (catalog.BlastRadiusJob, error) {
	for {
		j, err := s.cat.GetJob(ctx, team, id)
		if err != nil {
			return catalog.BlastRadiusJob{}, err
		}
		if !fn(&j) {
			return j, nil
		}
		out, err := s.cat.UpdateJob(ctx, j)
		if errors.Is(err, catalog.ErrConflict) {
			continue
		}
		return out, err
	}
}

// runJob runs one queued job: a counting pass for the total, then the
// evaluation pass, checking for a cancel request after every page.
func (s *Service) runJob(ctx context.Context, ref jobRef) {
	log := s.log.With("job", ref.id, "team", ref.team)
	fail := func(err error) {
		log.Warn("blast radius job failed", "err", err)
		_, uerr := s.updateJob(context.WithoutCancel(ctx), ref.team, ref.id, func(j *catalog.BlastRadiusJob) bool {
			if finished(j.Status) {
				return false
			}
			j.Status, j.Error, j.FinishedAt = catalog.JobFailed, err.Error(), s.cfg.Now()
			if ctx.Err() != nil {
				j.Error = "the server stopped"
			}
			return true
		})
		if uerr != nil {
			log.Warn("blast radius job: recording the failure", "err", uerr)
		}
	}
	var br blastRequest
	cancelled := false
	j, err := s.updateJob(ctx, ref.team, ref.id, func(j *catalog.BlastRadiusJob) bool {
		if finished(j.Status) {
			cancelled = true
			return false
		}
		if j.CancelRequested {
			j.Status, j.FinishedAt, cancelled = catalog.JobCancelled, s.cfg.Now(), true
			return true
		}
		j.Status = catalog.JobRunning
		return true
	})
	if err != nil {
		fail(err)
		return
	}
	if cancelled {
		return
	}
	if err := json.Unmarshal(j.Request, &br); err != nil {
		fail(fmt.Errorf("admin: job request: %w", err))
		return
	}
	calc, err := s.newBlastCalc(ctx, ref.team, br)
	if err != nil {
		fail(err)
		return
	}
	// progress records a page and reports whether to go on.
	progress := func(done, total int64, res *catalog.BlastRadiusResult) (bool, error) {
		goOn := true
		_, err := s.updateJob(ctx, ref.team, ref.id, func(j *catalog.BlastRadiusJob) bool {
			if finished(j.Status) {
				goOn = false
				return false
			}
			if j.CancelRequested {
				j.Status, j.FinishedAt, goOn = catalog.JobCancelled, s.cfg.Now(), false
			}
			j.Done, j.Total = done, total
			if res != nil {
				j.Result = res
			}
			return true
		})
		return goOn, err
	}
	var total int64
	for cursor := ""; ; {
		page, err := s.cfg.Persons.ScanRows(ctx, ref.team, cursor, s.cfg.BlastRadiusPage)
		if err != nil {
			fail(err)
			return
		}
		total += int64(len(page.Rows))
		if goOn, err := progress(0, total, nil); err != nil || !goOn {
			if err != nil {
				fail(err)
			}
			return
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	var done int64
	for cursor := ""; ; {
		page, err := s.cfg.Persons.ScanRows(ctx, ref.team, cursor, s.cfg.BlastRadiusPage)
		if err != nil {
			fail(err)
			return
		}
		if err := calc.rows(ctx, page.Rows); err != nil {
			fail(err)
			return
		}
		done += int64(len(page.Rows))
		total = max(total, done)
		if goOn, err := progress(done, total, calc.result()); err != nil || !goOn {
			if err != nil {
				fail(err)
			}
			return
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	if err := calc.groups(ctx); err != nil {
		fail(err)
		return
	}
	if _, err := s.updateJob(ctx, ref.team, ref.id, func(j *catalog.BlastRadiusJob) bool {
		if finished(j.Status) {
			return false
		}
		j.Status, j.FinishedAt, j.Done, j.Total, j.Result = catalog.JobDone, s.cfg.Now(), done, total, calc.result()
		return true
	}); err != nil {
		fail(err)
	}
}

func (s *Service) getJob(ctx context.Context, team int64, id string) (catalog.BlastRadiusJob, error) {
	j, err := s.cat.GetJob(ctx, team, id)
	if errors.Is(err, catalog.ErrNotFound) || (err == nil && j.TeamID != team) {
		return catalog.BlastRadiusJob{}, errcode.Field(errcode.NotFound, "job_id", "job not found")
	}
	return j, err
}

// GetBlastRadiusJob returns a job and its progress.
func (s *Service) GetBlastRadiusJob(ctx context.Context, req *adminv1.GetBlastRadiusJobRequest) (*adminv1.GetBlastRadiusJobResponse, error) {
	j, err := s.getJob(ctx, req.GetTeamId(), req.GetJobId())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetBlastRadiusJobResponse{Job: jobProto(j)}, nil
}

// ListBlastRadiusJobs lists a team's jobs, newest first.
func (s *Service) ListBlastRadiusJobs(ctx context.Context, req *adminv1.ListBlastRadiusJobsRequest) (*adminv1.ListBlastRadiusJobsResponse, error) {
	if _, err := s.getTeam(ctx, req.GetTeamId()); err != nil {
		return nil, err
	}
	jobs, err := s.cat.ListJobs(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListBlastRadiusJobsResponse{}
	for _, j := range jobs {
		if j.TeamID == req.GetTeamId() {
			out.Jobs = append(out.Jobs, jobProto(j))
		}
	}
	return out, nil
}

// CancelBlastRadiusJob asks a job to stop; a queued job is cancelled at
// once, a running one after its current page.
func (s *Service) CancelBlastRadiusJob(ctx context.Context, req *adminv1.CancelBlastRadiusJobRequest) (*adminv1.CancelBlastRadiusJobResponse, error) {
	if _, err := s.getJob(ctx, req.GetTeamId(), req.GetJobId()); err != nil {
		return nil, err
	}
	var already bool
	j, err := s.updateJob(ctx, req.GetTeamId(), req.GetJobId(), func(j *catalog.BlastRadiusJob) bool {
		if finished(j.Status) {
			already = true
			return false
		}
		j.CancelRequested = true
		if j.Status == catalog.JobQueued {
			j.Status, j.FinishedAt = catalog.JobCancelled, s.cfg.Now()
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if already {
		return nil, errcode.Field(errcode.FailedPrecondition, "job_id", "the job has already finished (%s)", j.Status)
	}
	return &adminv1.CancelBlastRadiusJobResponse{Job: jobProto(j)}, nil
}

// reapJobs marks failed the queued or running jobs that nobody has updated
// for AbandonedJobAfter: the node that held them stopped.
func (s *Service) reapJobs(ctx context.Context) error {
	teams, err := s.cat.ListTeams(ctx)
	if err != nil {
		return err
	}
	cutoff := s.cfg.Now().Add(-s.cfg.AbandonedJobAfter)
	for _, t := range teams {
		jobs, err := s.cat.ListJobs(ctx, t.ID)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if finished(j.Status) || j.UpdatedAt.After(cutoff) {
				continue
			}
			if _, err := s.updateJob(ctx, t.ID, j.ID, func(j *catalog.BlastRadiusJob) bool {
				if finished(j.Status) || j.UpdatedAt.After(cutoff) {
					return false
				}
				j.Status, j.Error, j.FinishedAt = catalog.JobFailed, "abandoned: the server running it stopped", s.cfg.Now()
				return true
			}); err != nil {
				return err
			}
			s.log.Info("blast radius job abandoned", "team", t.ID, "job", j.ID)
		}
	}
	return nil
}
