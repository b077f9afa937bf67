package admin

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/errcode"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// TestAdmission: when the node has no room left for management calls, a
// REST call gets 503 with Retry-After and the stable code overloaded, a
// gRPC call RESOURCE_EXHAUSTED; both pass again once there is room.
func TestAdmission(t *testing.T) {
	ac, err := admission.New(admission.Config{InitialLimit: 4, MinLimit: 4, MaxLimit: 4})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Admission = ac })
	team := e.createTeam("acme").GetId()
	// Hold the management room (3 of 4: evaluation keeps the rest).
	var held []admission.Ticket
	for {
		tk, err := ac.Acquire(admission.Management)
		if err != nil {
			break
		}
		held = append(held, tk)
	}
	if len(held) != 3 {
		t.Fatalf("management room %d, want 3", len(held))
	}
	req, _ := http.NewRequest(http.MethodGet, e.base+"/api/projects/"+strconv.FormatInt(team, 10)+"/feature_flags", nil)
	req.Header.Set("Authorization", "Bearer "+e.root)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Code    int
		Details []struct {
			Reason   string
			Metadata map[string]string
		}
	}
	_ = json.NewDecoder(res.Body).Decode(&body)
	res.Body.Close()
	if res.StatusCode != 503 || res.Header.Get("Retry-After") != "1" || len(body.Details) == 0 ||
		body.Details[0].Reason != string(errcode.Overloaded) || body.Code != int(codes.ResourceExhausted) {
		t.Errorf("REST while full: %d (Retry-After %q) %+v, want 503 overloaded with Retry-After 1", res.StatusCode, res.Header.Get("Retry-After"), body)
	}
	_, err = e.client.GetTeam(e.ctx(e.root), &adminv1.GetTeamRequest{TeamId: team})
	st := status.Convert(err)
	if fe := errcode.FromStatus(st); st.Code() != codes.ResourceExhausted || fe.Code != errcode.Overloaded || fe.Meta[errcode.MetaRetryAfter] != "1" {
		t.Errorf("gRPC while full: %v %+v, want RESOURCE_EXHAUSTED overloaded", st.Code(), fe)
	}
	// Evaluation still has the top of the limit.
	if tk, err := ac.Acquire(admission.Evaluate); err != nil {
		t.Errorf("evaluation refused while management is full: %v", err)
	} else {
		tk.Done()
	}
	for _, tk := range held {
		tk.Done()
	}
	if _, err := e.client.GetTeam(e.ctx(e.root), &adminv1.GetTeamRequest{TeamId: team}); err != nil {
		t.Errorf("gRPC once there is room: %v", err)
	}
	if code := e.do(http.MethodGet, "/api/projects/"+strconv.FormatInt(team, 10)+"/feature_flags", e.root, nil, nil); code != 200 {
		t.Errorf("REST once there is room: %d", code)
	}
}
