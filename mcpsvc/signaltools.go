package mcpsvc

import (
	"context"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/errcode"
)

type (
	signalsListIn struct {
		TeamID int64  `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
		Cursor uint64 `json:"cursor,omitempty" jsonschema:"list the signals after this cursor; 0: after the acknowledged ones"`
		Limit  int    `json:"limit,omitempty" jsonschema:"at most 100 (default)"`
		Full   bool   `json:"full,omitempty" jsonschema:"include each signal's data (a rollout change's diff ...); default: one line each"`
	}
	signalsAckIn struct {
		TeamID int64  `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
		Cursor uint64 `json:"cursor" jsonschema:"acknowledge every signal up to and including this cursor"`
	}
)

// inboxTeam authorizes an inbox call the way the service authorizes a
// method: the key again (a revoked key is refused at once), the team
// (not found when the key does not reach it), then flag:read.
func (c *call) inboxTeam(ctx context.Context, id int64) (*Inbox, int64, error) {
	in := c.env.s.cfg.Inbox
	if in == nil {
		return nil, 0, errcode.New(errcode.Unavailable, "signals need the signal inbox (a store and NATS JetStream), which this server does not have")
	}
	caller, err := c.svc().Authenticate(ctx, c.auth)
	if err != nil {
		return nil, 0, err
	}
	team, err := c.team(id)
	if err != nil {
		return nil, 0, err
	}
	if !caller.Reaches(team) {
		return nil, 0, errcode.Field(errcode.NotFound, "team_id", "team not found")
	}
	if !caller.Has(admin.ScopeFlagRead) {
		return nil, 0, errcode.New(errcode.PermissionDenied, "the API key lacks the scope %q", admin.ScopeFlagRead)
	}
	return in, team, nil
}

func signalsList(ctx context.Context, c *call, in signalsListIn) (any, error) {
	inbox, team, err := c.inboxTeam(ctx, in.TeamID)
	if err != nil {
		return nil, err
	}
	entries, more, err := inbox.List(ctx, team, in.Cursor, in.Limit)
	if err != nil {
		return nil, err
	}
	if !in.Full {
		for i := range entries {
			entries[i].Data = nil
		}
	}
	out := map[string]any{"signals": entries, "more": more}
	if entries == nil {
		out["signals"] = []Entry{}
	}
	if len(entries) > 0 {
		out["next_cursor"] = entries[len(entries)-1].Cursor
	}
	return out, nil
}

func signalSpecs() []toolSpec {
	return []toolSpec{
		{name: "signals_list", feature: "signals", scope: admin.ScopeFlagRead, readOnly: true, idem: true,
			desc: "The team's signals, oldest first: rollout changes (who, what, diff), cohort membership changes, findings (stale flags, anomalies). Page with cursor; acknowledge with signals_ack.",
			add:  handler(signalsList)},
		{name: "signals_ack", feature: "signals", scope: admin.ScopeFlagRead, idem: true,
			desc: "Acknowledge the team's signals up to a cursor (they stop being pending).",
			add: handler(func(ctx context.Context, c *call, in signalsAckIn) (any, error) {
				inbox, team, err := c.inboxTeam(ctx, in.TeamID)
				if err != nil {
					return nil, err
				}
				if in.Cursor == 0 {
					return nil, errcode.Field(errcode.InvalidArgument, "cursor", "cursor is required")
				}
				acked, err := inbox.Ack(ctx, team, in.Cursor)
				if err != nil {
					return nil, err
				}
				return map[string]any{"acknowledged_up_to": acked}, nil
			})},
	}
}
