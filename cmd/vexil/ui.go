package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"google.golang.org/grpc"

	"github.com/vexil-dev/vexil/admin"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
	"github.com/vexil-dev/vexil/web"
)

// newUI returns the web UI over the management API's gRPC service, through
// conn (a client connection to the node's own gRPC server), so that the UI
// goes through the same interceptor, scopes and limits as the REST API.
func newUI(svc *admin.Service, conn grpc.ClientConnInterface, log *slog.Logger, u web.UsageSource) (*web.Handler, error) {
	return web.New(web.Config{Client: adminv1.NewAdminServiceClient(conn), Identify: svc.Identify,
		Logger: log.With("role", "web"), Usage: u})
}

// printLoginLink prints a single-use login link to the web UI for key.
func printLoginLink(w io.Writer, ui *web.Handler, key, baseURL string) {
	path, exp, err := ui.NewLoginLink(key)
	if err != nil {
		fmt.Fprintf(w, "The web UI is at %s/ (no login link: %v)\n", baseURL, err)
		return
	}
	fmt.Fprintf(w, "Web UI: %s/ ; sign in with the personal key, or once with this link (until %s):\n\n  %s%s\n\n",
		baseURL, exp.UTC().Format("15:04:05 UTC"), baseURL, path)
}

// loginLinkThroughAPI asks a running node for a login link for the
// caller's own key (vexil keys login-link).
func loginLinkThroughAPI(ctx context.Context, c *apiClient, stdout io.Writer) error {
	var out struct {
		Path      string `json:"path"`
		ExpiresAt string `json:"expires_at"`
	}
	if err := c.do(ctx, http.MethodPost, "/ui/login-links", nil, &out); err != nil {
		return err
	}
	if out.Path == "" {
		return fmt.Errorf("the node answered no login link")
	}
	fmt.Fprintf(stdout, "%s%s\n", c.base, out.Path)
	return nil
}
