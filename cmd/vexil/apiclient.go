package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// apiKeyEnv is the environment variable --key defaults to, so that a
// secret need not appear in the process list.
const apiKeyEnv = "VEXIL_API_KEY"

// apiFlags are the flags of a command that can go through a running
// node's management API instead of a stopped data directory.
type apiFlags struct {
	url, key *string
	tls      clientTLSFlags
}

func bindAPIFlags(fs *flag.FlagSet) apiFlags {
	return apiFlags{
		url: fs.String("url", "", "a running node's HTTP address (http://127.0.0.1:8000, or https:// with -ca-file): go through its management API instead of -data-dir"),
		key: fs.String("key", os.Getenv(apiKeyEnv), "a personal API key (phx_...) for -url; default $"+apiKeyEnv),
		tls: bindClientTLSFlags(fs, false),
	}
}

// client returns the API client, or nil when -url is not given.
func (f apiFlags) client() (*apiClient, error) {
	if *f.url == "" {
		return nil, nil
	}
	u, err := url.Parse(*f.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &usageError{msg: fmt.Sprintf("-url: %q is not an http:// or https:// address", *f.url)}
	}
	if *f.key == "" {
		return nil, &usageError{msg: "-url needs -key (or $" + apiKeyEnv + "): a personal API key"}
	}
	client := &http.Client{Timeout: 30 * time.Second}
	if u.Scheme == "https" {
		tc, err := f.tls.config()
		if err != nil {
			return nil, err
		}
		client.Transport = &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, Proxy: http.ProxyFromEnvironment}
	} else if *f.tls.ca != "" {
		return nil, &usageError{msg: "-ca-file is for an https:// -url"}
	}
	return &apiClient{base: strings.TrimRight(u.String(), "/"), key: *f.key, http: client}, nil
}

// apiClient calls the management API's REST surface (PostHog's JSON) with
// a personal API key.
type apiClient struct {
	base string
	key  string
	http *http.Client
}

// maxAPIResponse bounds a response body the client reads.
const maxAPIResponse = 16 << 20

// apiError is an error answer of the management API.
type apiError struct {
	Status  int
	Message string
	Reason  string // the stable code (errcode)
	Field   string
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("management API: %d %s", e.Status, e.Message)
	if e.Reason != "" {
		s += " (" + e.Reason
		if e.Field != "" {
			s += ", field " + e.Field
		}
		s += ")"
	}
	return s
}

// do sends body (JSON, when not nil) and decodes the answer into out.
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIResponse))
	if err != nil {
		return fmt.Errorf("management API: %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var st struct {
			Message string `json:"message"`
			Details []struct {
				Reason   string            `json:"reason"`
				Metadata map[string]string `json:"metadata"`
			} `json:"details"`
		}
		e := &apiError{Status: resp.StatusCode, Message: strings.TrimSpace(string(data))}
		if json.Unmarshal(data, &st) == nil && st.Message != "" {
			e.Message = st.Message
			for _, d := range st.Details {
				if d.Reason != "" {
					e.Reason, e.Field = d.Reason, d.Metadata["field"]
				}
			}
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("management API: %s %s: %w", method, path, err)
	}
	return nil
}

// apiKeyJSON is a key as the REST API shows it.
type apiKeyJSON struct {
	ID      string   `json:"id"`
	Kind    string   `json:"kind"`
	Prefix  string   `json:"prefix"`
	Teams   []int64  `json:"teams"`
	Scopes  []string `json:"scopes"`
	Label   string   `json:"label"`
	Revoked bool     `json:"revoked"`
}

// apiTeamJSON is a team as the REST API shows it.
type apiTeamJSON struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Timezone string `json:"timezone"`
	APIToken string `json:"api_token"`
	Version  int64  `json:"version"`
}
