package mcpsvc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vexil-dev/vexil/errcode"
)

// Change is one difference of a dry run: the JSON path, the value before
// and after (absent: null).
type Change struct {
	Path   string `json:"path"`
	Before any    `json:"before"`
	After  any    `json:"after"`
}

// Diff lists the differences between two JSON values, leaves first by
// path.
func Diff(before, after any) []Change {
	var out []Change
	diffAt("", before, after, &out)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func diffAt(path string, a, b any, out *[]Change) {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		for k := range keys {
			diffAt(join(path, k), am[k], bm[k], out)
		}
		return
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok && len(al) == len(bl) {
		for i := range al {
			diffAt(join(path, strconv.Itoa(i)), al[i], bl[i], out)
		}
		return
	}
	if !reflect.DeepEqual(a, b) {
		*out = append(*out, Change{Path: path, Before: a, After: b})
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// confirmations holds the short-lived confirm tokens.
type confirmations struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	m   map[string]pendingConfirm
}

type pendingConfirm struct {
	binding string
	expires time.Time
}

func newConfirmations(ttl time.Duration, now func() time.Time) *confirmations {
	return &confirmations{ttl: ttl, now: now, m: map[string]pendingConfirm{}}
}

// maxPendingConfirms bounds the tokens held at once.
const maxPendingConfirms = 10000

func (c *confirmations) issue(binding string) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tok := "cfm_" + hex.EncodeToString(b[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for k, p := range c.m {
		if now.After(p.expires) {
			delete(c.m, k)
		}
	}
	if len(c.m) >= maxPendingConfirms {
		return "", errcode.New(errcode.Overloaded, "too many pending confirmations; retry later")
	}
	c.m[tok] = pendingConfirm{binding: binding, expires: now.Add(c.ttl)}
	return tok, nil
}

// redeem consumes a token if it was issued for binding and is alive.
func (c *confirmations) redeem(tok, binding string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.m[tok]
	if !ok || p.binding != binding || c.now().After(p.expires) {
		return false
	}
	delete(c.m, tok)
	return true
}

// binding ties a token to the key, the tool and the exact arguments
// (without the token itself).
func (c *call) binding(args any) string {
	b, _ := json.Marshal(args)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	delete(m, "confirm_token")
	delete(m, "dry_run")
	b, _ = json.Marshal(m)
	h := sha256.Sum256(slices.Concat([]byte(c.env.sess.caller.KeyID+"\x00"+c.tool+"\x00"), b))
	return hex.EncodeToString(h[:])
}

// confirmationNeeded is the answer to a change that needs confirmation
// when the client cannot be asked.
type confirmationNeeded struct {
	ConfirmationRequired string `json:"confirmation_required"`
	ConfirmToken         string `json:"confirm_token"`
	ExpiresInSeconds     int    `json:"expires_in_seconds"`
	Note                 string `json:"note"`
}

// confirm decides whether the change may go on (nil, nil): a valid token,
// or the user accepting an elicitation. Otherwise it answers what to tell
// the client: a question (needInput) or a token.
func (c *call) confirm(ctx context.Context, token string, args any, reason string) (any, error) {
	bind := c.binding(args)
	if token != "" {
		if c.env.s.confirms.redeem(token, bind) {
			return nil, nil
		}
		return nil, errcode.Field(errcode.FailedPrecondition, "confirm_token",
			"the confirm token is unknown, expired, used, or was issued for other arguments")
	}
	question := &mcp.ElicitParams{Message: "Vexil: confirm this change: " + reason + "?",
		RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{
			"confirm": map[string]any{"type": "boolean", "description": "true to go ahead"}}, "required": []string{"confirm"}}}
	switch {
	case c.req == nil:
	case c.req.ProtocolVersion() >= modern:
		// 2026-07-28: the multi-round-trip request (SEP-2322). The
		// client answers the elicitation and calls again with it; the
		// request state binds the answer to these arguments.
		if r, ok := c.req.Params.InputResponses["confirm"].(*mcp.ElicitResult); ok {
			if c.req.Params.RequestState != bind {
				return nil, errcode.New(errcode.FailedPrecondition, "the confirmation was given for other arguments")
			}
			return nil, elicited(r)
		}
		if caps := c.req.ClientCapabilities(); caps != nil && caps.Elicitation != nil {
			return needInput{params: question, state: bind}, nil
		}
	case c.req.Session != nil:
		// The 2025 revisions: ask the client during the call.
		if res, err := c.req.Session.Elicit(ctx, question); err == nil {
			return nil, elicited(res)
		}
	}
	tok, err := c.env.s.confirms.issue(bind)
	if err != nil {
		return nil, err
	}
	return confirmationNeeded{ConfirmationRequired: reason, ConfirmToken: tok, ExpiresInSeconds: int(c.env.s.cfg.ConfirmTTL.Seconds()),
		Note: fmt.Sprintf("nothing was changed: call %s again with the same arguments and confirm_token (dry_run shows the blast radius)", c.tool)}, nil
}

// needInput is a tool answer that asks the client for input first (a
// multi-round-trip request): handler turns it into the input-required
// result.
type needInput struct {
	params *mcp.ElicitParams
	state  string
}

// elicited reads the user's answer to a confirmation.
func elicited(r *mcp.ElicitResult) error {
	if r.Action == "accept" && r.Content["confirm"] == true {
		return nil
	}
	return errcode.New(errcode.FailedPrecondition, "the change was not confirmed (%s)", r.Action)
}
