package admin

import (
	"net/http"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/errcode"
)

// AuthorizeHTTP checks a request to a route served beside the API
// (ServerConfig.Routes, e.g. package usage's REST handlers) the way the
// interceptor checks a method: a valid personal key (401), reaching team
// (404, the answer for a team that does not exist), holding scope (403).
func (s *Service) AuthorizeHTTP(r *http.Request, team int64, scope string) error {
	k, err := s.authenticate(r.Context(), r.Header.Get("Authorization"), catalog.KeyPersonal)
	if err != nil {
		return err
	}
	p := &principal{key: k}
	if !p.reaches(team) {
		return errTeamNotFound()
	}
	if !p.has(scope) {
		return errcode.New(errcode.PermissionDenied, "the API key lacks the scope %q", scope)
	}
	return nil
}

// WriteHTTPError writes err as the management API writes its errors
// (status from errcode's table, google.rpc.Status JSON), for routes
// served beside it.
func WriteHTTPError(w http.ResponseWriter, r *http.Request, err error) {
	writeError(w, r, err)
}
