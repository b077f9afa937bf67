package capture

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/vexil-dev/vexil/errcode"
)

// serveRemoteConfig answers posthog-js's remote config,
// GET /array/<token>/config, in PostHog's JSON shape with what Vexil
// serves: flags (posthog-js then asks /flags), capture with gzip, and no
// session recording, surveys, heatmaps or site apps. Without it posthog-js
// logs a failed request on every page load and falls back to /flags alone.
func (h *Handler) serveRemoteConfig(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeErr(w, capErr(errcode.InvalidArgument, CodeMethod, "", "use GET"))
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/array/")
	token, file, _ := strings.Cut(rest, "/")
	if !ok || token == "" || len(token) > 256 || (file != "config" && file != "config.js") {
		writeErr(w, errcode.New(errcode.NotFound, "no such path: remote config is /array/<project token>/config"))
		return
	}
	if _, err := h.cfg.Projects(r.Context(), token); err != nil {
		writeErr(w, err)
		return
	}
	cfg := map[string]any{
		"token":                 token,
		"supportedCompression":  []string{"gzip", "gzip-js"},
		"hasFeatureFlags":       true,
		"autocapture_opt_out":   false,
		"capturePerformance":    false,
		"analytics":             map[string]any{"endpoint": "/i/v0/e/"},
		"elementsChainAsString": true,
		"sessionRecording":      false,
		"heatmaps":              false,
		"surveys":               false,
		"siteApps":              []any{},
		"defaultIdentifiedOnly": true,
	}
	body, _ := json.Marshal(cfg)
	if file == "config.js" {
		// The script form assigns the config where posthog-js looks for it.
		w.Header().Set("Content-Type", "application/javascript")
		_, _ = w.Write([]byte("(function(){window._POSTHOG_REMOTE_CONFIG=window._POSTHOG_REMOTE_CONFIG||{};window._POSTHOG_REMOTE_CONFIG[" +
			string(mustJSON(token)) + "]={config:" + string(body) + ",siteApps:[]}})();"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
