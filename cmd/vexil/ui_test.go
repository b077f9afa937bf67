package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// uiBrowser is an HTTP client that keeps cookies, as a browser does, and
// does not follow redirects, so a test sees each 303 and where it points.
type uiBrowser struct {
	t *testing.T
	c *http.Client
}

func newUIBrowser(t *testing.T) *uiBrowser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &uiBrowser{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// get returns the status, the Location header and the body of GET u.
func (b *uiBrowser) get(u string) (int, string, string) {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(body)
}

// post submits a form as a browser on the same site does (with its Origin).
func (b *uiBrowser) post(u string, form url.Values) (int, string, string) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	pu, _ := url.Parse(u)
	req.Header.Set("Origin", pu.Scheme+"://"+pu.Host)
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(body)
}

// adminWithFlag creates an instance-wide key in a fresh data directory,
// starts vexil admin alone on it, and creates the team "acme" (id 1) with
// the flag "admin-ui-flag" through the REST API. It returns the base URL
// and the key.
func adminWithFlag(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	_, secret, _ := runCmd(t, "keys", "create", "--data-dir", dir)
	secret = strings.TrimSpace(secret)
	base, stop := startAdmin(t, dir)
	t.Cleanup(stop)
	for _, c := range []struct{ path, body string }{
		{"/api/projects", `{"name":"acme"}`},
		{"/api/projects/1/feature_flags", `{"key":"admin-ui-flag","name":"Seen through the admin UI","active":true,"filters":{"groups":[{"rollout_percentage":100}]}}`},
	} {
		req, _ := http.NewRequest("POST", base+c.path, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d %s", c.path, resp.StatusCode, body)
		}
	}
	return base, secret
}

// TestAdminServesUI: vexil admin alone (no evaluation, no projector)
// mounts the web UI: the login page, a sign-in with the key, and the
// team's flags page, which says there are no usage statistics on this
// role.
func TestAdminServesUI(t *testing.T) {
	base, secret := adminWithFlag(t)
	b := newUIBrowser(t)

	code, _, body := b.get(base + "/ui/login")
	if code != 200 || !strings.Contains(body, `<form method="post" action="/ui/login">`) || !strings.Contains(body, `id="key" name="key" type="password"`) {
		t.Fatalf("login page: %d %s", code, body)
	}
	code, loc, _ := b.get(base + "/ui/t/1/flags")
	if code != http.StatusSeeOther || !strings.HasPrefix(loc, "/ui/login?next=") {
		t.Fatalf("flags page before signing in: %d, Location %q; want 303 to the login page", code, loc)
	}

	code, _, body = b.post(base+"/ui/login", url.Values{"key": {"phx_" + strings.Repeat("0", 64)}, "next": {"/ui/"}})
	if code != http.StatusUnauthorized || !strings.Contains(body, "That key was not accepted") {
		t.Fatalf("an unknown key: %d %s", code, body)
	}
	code, loc, _ = b.post(base+"/ui/login", url.Values{"key": {secret}, "next": {"/ui/"}})
	if code != http.StatusSeeOther || loc != "/ui/" {
		t.Fatalf("sign in: %d, Location %q", code, loc)
	}
	code, loc, _ = b.get(base + "/ui/")
	if code != http.StatusSeeOther || loc != "/ui/t/1/flags" {
		t.Fatalf("home after signing in: %d, Location %q; want the first team's flags", code, loc)
	}
	code, _, body = b.get(base + loc)
	if code != 200 {
		t.Fatalf("flags page: %d %s", code, body)
	}
	for _, want := range []string{`data-testid="flags-table"`, "admin-ui-flag", `data-testid="new-flag"`, "no usage data yet"} {
		if !strings.Contains(body, want) {
			t.Errorf("the admin role's flags page lacks %q", want)
		}
	}
	// Another team's page is 404 even for an instance-wide key: it does not exist.
	if code, _, _ := b.get(base + "/ui/t/9/flags"); code != 404 {
		t.Errorf("a team that does not exist: %d, want 404", code)
	}
}

// TestKeysLoginLinkCommand: vexil keys login-link --url asks the running
// node for a single-use link; following it signs in once, and a second
// use is refused.
func TestKeysLoginLinkCommand(t *testing.T) {
	base, secret := adminWithFlag(t)

	code, out, stderr := runCmd(t, "keys", "login-link", "--url", base, "--key", secret)
	m := regexp.MustCompile(`^(` + regexp.QuoteMeta(base) + `/ui/login/link\?t=([A-Za-z0-9_%-]+))\n$`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("login-link: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	link, token, err := m[1], m[2], error(nil)
	if token, err = url.QueryUnescape(token); err != nil {
		t.Fatal(err)
	}

	b := newUIBrowser(t)
	// Opening the link shows a button, so a link previewer does not use it up.
	code, _, body := b.get(link)
	if code != 200 || !strings.Contains(body, `action="/ui/login/link"`) {
		t.Fatalf("GET the link: %d %s", code, body)
	}
	code, _, body = b.get(link)
	if code != 200 || !strings.Contains(body, `action="/ui/login/link"`) {
		t.Fatalf("GET the link a second time (still unused): %d %s", code, body)
	}
	code, loc, body := b.post(base+"/ui/login/link", url.Values{"t": {token}})
	if code != http.StatusSeeOther || loc != "/ui/" {
		t.Fatalf("sign in with the link: %d, Location %q %s", code, loc, body)
	}
	code, _, body = b.get(base + "/ui/t/1/flags")
	if code != 200 || !strings.Contains(body, "admin-ui-flag") {
		t.Fatalf("flags page through the link's session: %d %s", code, body)
	}

	again := newUIBrowser(t)
	code, _, body = again.post(base+"/ui/login/link", url.Values{"t": {token}})
	if code != http.StatusUnauthorized || !strings.Contains(body, "already used or has expired") {
		t.Fatalf("second use of the link: %d %s", code, body)
	}
	if code, loc, _ := again.get(base + "/ui/t/1/flags"); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/ui/login") {
		t.Errorf("after the refused second use: %d, Location %q; want no session", code, loc)
	}

	for _, c := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"without --url", []string{"keys", "login-link", "--key", secret}, 2, "login-link needs --url"},
		{"an unknown key", []string{"keys", "login-link", "--url", base, "--key", "phx_" + strings.Repeat("0", 64)}, 1, "401 invalid API key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, stderr := runCmd(t, c.args...)
			if code != c.code || out != "" || !strings.Contains(stderr, c.msg) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, out, stderr, c.code, c.msg)
			}
		})
	}
}
