package admin

import (
	"context"
	"errors"

	"github.com/vexil-dev/vexil/errcode"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
	"github.com/vexil-dev/vexil/webhooks"
)

// Webhooks is what the management API needs of the webhooks' state
// (package webhooks owns it; *webhooks.Webhooks implements this).
type Webhooks interface {
	Create(ctx context.Context, e webhooks.Endpoint) (webhooks.Endpoint, error)
	Get(ctx context.Context, team int64, id string) (webhooks.Endpoint, error)
	List(ctx context.Context, team int64) ([]webhooks.Endpoint, error)
	Update(ctx context.Context, team int64, id string, fn func(*webhooks.Endpoint)) (webhooks.Endpoint, error)
	Delete(ctx context.Context, team int64, id string) error
	Status(ctx context.Context, team int64, id string) (webhooks.Status, error)
	DeadLetters(ctx context.Context, team int64, id string, after uint64, limit int) ([]webhooks.DeadLetter, error)
	Redeliver(ctx context.Context, team int64, id string, seq uint64) (int, error)
}

// webhooks checks the team and returns the store of endpoints.
func (s *Service) webhooks(ctx context.Context, team int64) (Webhooks, error) {
	if _, err := s.getTeam(ctx, team); err != nil {
		return nil, err
	}
	if s.cfg.Webhooks == nil {
		return nil, errcode.New(errcode.Unavailable, "this server has no webhooks (it runs without NATS)")
	}
	return s.cfg.Webhooks, nil
}

// webhookErr maps package webhooks' errors.
func webhookErr(err error) error {
	var fe *webhooks.FieldError
	switch {
	case errors.As(err, &fe):
		return errcode.Field(errcode.InvalidArgument, "endpoint."+fe.Field, "%s", fe.Reason)
	case errors.Is(err, webhooks.ErrLimit):
		return errcode.New(errcode.LimitExceeded, "%s", err.Error())
	case errors.Is(err, webhooks.ErrNotFound):
		return errcode.New(errcode.NotFound, "%s", err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return errcode.New(errcode.Unavailable, "webhooks: retry later").Wrap(err)
}

func endpointProto(e webhooks.Endpoint) *adminv1.WebhookEndpoint {
	return &adminv1.WebhookEndpoint{Id: e.ID, TeamId: e.Team, Url: e.URL, Description: e.Description, Secret: e.Secret,
		Scopes: e.Scopes, Cohorts: e.Cohorts, Enabled: !e.Disabled, CreatedAt: ts(e.CreatedAt), UpdatedAt: ts(e.UpdatedAt)}
}

func setEndpoint(e *webhooks.Endpoint, in *adminv1.WebhookEndpointInput) {
	e.URL, e.Description, e.Scopes, e.Cohorts = in.GetUrl(), in.GetDescription(), in.GetScopes(), in.GetCohorts()
	if in.Enabled != nil {
		e.Disabled = !in.GetEnabled()
	}
}

// CreateWebhookEndpoint creates an endpoint; its answer holds the secret.
func (s *Service) CreateWebhookEndpoint(ctx context.Context, req *adminv1.CreateWebhookEndpointRequest) (*adminv1.CreateWebhookEndpointResponse, error) {
	wh, err := s.webhooks(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	e := webhooks.Endpoint{Team: req.GetTeamId()}
	setEndpoint(&e, req.GetEndpoint())
	e, err = wh.Create(ctx, e)
	if err != nil {
		return nil, webhookErr(err)
	}
	return &adminv1.CreateWebhookEndpointResponse{Endpoint: endpointProto(e)}, nil
}

// GetWebhookEndpoint returns an endpoint, its secret redacted.
func (s *Service) GetWebhookEndpoint(ctx context.Context, req *adminv1.GetWebhookEndpointRequest) (*adminv1.GetWebhookEndpointResponse, error) {
	wh, err := s.webhooks(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	e, err := wh.Get(ctx, req.GetTeamId(), req.GetEndpointId())
	if err != nil {
		return nil, webhookErr(err)
	}
	return &adminv1.GetWebhookEndpointResponse{Endpoint: endpointProto(e.Redacted())}, nil
}

// ListWebhookEndpoints lists a team's endpoints (at most
// webhooks.MaxEndpointsPerTeam), oldest first.
func (s *Service) ListWebhookEndpoints(ctx context.Context, req *adminv1.ListWebhookEndpointsRequest) (*adminv1.ListWebhookEndpointsResponse, error) {
	wh, err := s.webhooks(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	all, err := wh.List(ctx, req.GetTeamId())
	if err != nil {
		return nil, webhookErr(err)
	}
	out := &adminv1.ListWebhookEndpointsResponse{}
	for _, e := range all {
		out.Results = append(out.Results, endpointProto(e.Redacted()))
	}
	return out, nil
}

// UpdateWebhookEndpoint replaces what a client sets of an endpoint.
func (s *Service) UpdateWebhookEndpoint(ctx context.Context, req *adminv1.UpdateWebhookEndpointRequest) (*adminv1.UpdateWebhookEndpointResponse, error) {
	wh, err := s.webhooks(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	e, err := wh.Update(ctx, req.GetTeamId(), req.GetEndpointId(), func(e *webhooks.Endpoint) { setEndpoint(e, req.GetEndpoint()) })
	if err != nil {
		return nil, webhookErr(err)
	}
	return &adminv1.UpdateWebhookEndpointResponse{Endpoint: endpointProto(e.Redacted())}, nil
}

// DeleteWebhookEndpoint deletes an endpoint.
func (s *Service) DeleteWebhookEndpoint(ctx context.Context, req *adminv1.DeleteWebhookEndpointRequest) (*adminv1.DeleteWebhookEndpointResponse, error) {
	wh, err := s.webhooks(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	if err := wh.Delete(ctx, req.GetTeamId(), req.GetEndpointId()); err != nil {
		return nil, webhookErr(err)
	}
	return &adminv1.DeleteWebhookEndpointResponse{}, nil
}

// GetWebhookStatus reports an endpoint's deliveries.
func (s *Service) GetWebhookStatus(ctx context.Context, req *adminv1.GetWebhookStatusRequest) (*adminv1.GetWebhookStatusResponse, error) {
	wh, err := s.webhooks(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	st, err := wh.Status(ctx, req.GetTeamId(), req.GetEndpointId())
	if err != nil {
		return nil, webhookErr(err)
	}
	return &adminv1.GetWebhookStatusResponse{Status: &adminv1.WebhookStatus{EndpointId: req.GetEndpointId(),
		Delivered: int64(st.Delivered), Failed: int64(st.Failed), Dead: int64(st.Dead),
		LastSuccess: ts(st.LastSuccess), LastFailure: ts(st.LastFailure), LastError: st.LastError, LastStatusCode: int32(st.LastStatusCode),
		Pending: int64(st.Pending), DeadLetters: int64(st.DeadLetters)}}, nil
}

// ListWebhookDeadLetters lists an endpoint's dead letters.
func (s *Service) ListWebhookDeadLetters(ctx context.Context, req *adminv1.ListWebhookDeadLettersRequest) (*adminv1.ListWebhookDeadLettersResponse, error) {
	if req.GetAfter() < 0 {
		return nil, errcode.Field(errcode.InvalidArgument, "after", "must not be negative")
	}
	limit := int(req.GetLimit())
	switch {
	case limit < 0 || limit > webhooks.MaxDeadList:
		return nil, errcode.Field(errcode.LimitExceeded, "limit", "at most %d", webhooks.MaxDeadList)
	case limit == 0:
		limit = 100
	}
	wh, err := s.webhooks(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	dls, err := wh.DeadLetters(ctx, req.GetTeamId(), req.GetEndpointId(), uint64(req.GetAfter()), limit)
	if err != nil {
		return nil, webhookErr(err)
	}
	out := &adminv1.ListWebhookDeadLettersResponse{}
	for _, d := range dls {
		out.Results = append(out.Results, &adminv1.WebhookDeadLetter{Seq: int64(d.Seq), SignalId: d.Signal.ID, Type: d.Signal.Type,
			CohortId: d.Signal.Cohort, DistinctId: d.Signal.DistinctID, Attempts: int32(d.Attempts), LastError: d.LastError,
			LastStatusCode: int32(d.LastStatusCode), At: ts(d.At)})
	}
	return out, nil
}

// RedeliverWebhook queues dead letters again.
func (s *Service) RedeliverWebhook(ctx context.Context, req *adminv1.RedeliverWebhookRequest) (*adminv1.RedeliverWebhookResponse, error) {
	if req.GetSeq() < 0 {
		return nil, errcode.Field(errcode.InvalidArgument, "seq", "must not be negative")
	}
	wh, err := s.webhooks(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	n, err := wh.Redeliver(ctx, req.GetTeamId(), req.GetEndpointId(), uint64(req.GetSeq()))
	if err != nil {
		return nil, webhookErr(err)
	}
	return &adminv1.RedeliverWebhookResponse{Queued: int32(n)}, nil
}
