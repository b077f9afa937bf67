package admin

import (
	"net/http"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/errcode"
)

// Guard serves next only to a caller whose personal API key is valid,
// reaches every team (instance-wide) and has scope, answering otherwise
// with the management API's errors (401, 403). It lets HTTP endpoints
// outside the gRPC service, such as snapshots, share its authentication.
func (s *Service) Guard(scope string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, err := s.authenticate(r.Context(), r.Header.Get("Authorization"), catalog.KeyPersonal)
		if err != nil {
			writeError(w, r, err)
			return
		}
		p := &principal{key: k}
		switch {
		case !p.instanceWide():
			writeError(w, r, errcode.New(errcode.PermissionDenied, "this endpoint needs an instance-wide API key (one that reaches every team)"))
			return
		case !p.has(scope):
			writeError(w, r, errcode.New(errcode.PermissionDenied, "the API key lacks the scope %q", scope))
			return
		}
		next.ServeHTTP(w, r)
	})
}
