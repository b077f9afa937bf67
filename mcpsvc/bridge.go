package mcpsvc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Bridge relays one stdio MCP session (newline-delimited JSON-RPC on in
// and out) to a node's streamable HTTP endpoint, as authorization (vexil
// mcp --url): each message is POSTed (concurrently, so a long-lived
// subscriptions/listen does not hold the others back), the answers and
// streamed events are written to out, and once a 2025 session is
// initialized the session's GET stream (server-initiated notifications
// and requests) is relayed too. The node does everything else; the
// bridge keeps only the session id and the negotiated revision. It
// returns when in ends (closing the session) or ctx does.
func Bridge(ctx context.Context, endpoint, authorization string, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b := &bridge{endpoint: endpoint, auth: authorization, out: out, client: &http.Client{}}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), MaxBodyBytes)
	var wg sync.WaitGroup
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		msg := bytes.Clone(line)
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.post(ctx, msg)
		}()
	}
	err := sc.Err()
	b.close()
	cancel()
	wg.Wait()
	return err
}

type bridge struct {
	endpoint, auth string
	client         *http.Client
	outMu          sync.Mutex
	out            io.Writer

	mu        sync.Mutex
	session   string
	version   string
	initID    string
	streaming bool
}

// peek reads what the bridge needs of a message.
type peek struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params struct {
		ProtocolVersion string         `json:"protocolVersion"`
		Meta            map[string]any `json:"_meta"`
		Name            string         `json:"name"`
		URI             string         `json:"uri"`
	} `json:"params"`
	Result struct {
		ProtocolVersion string `json:"protocolVersion"`
	} `json:"result"`
}

func (b *bridge) headers(req *http.Request, version string) {
	req.Header.Set("Authorization", b.auth)
	req.Header.Set("Accept", "application/json, text/event-stream")
	b.mu.Lock()
	if b.session != "" {
		req.Header.Set("Mcp-Session-Id", b.session)
	}
	if version == "" {
		version = b.version
	}
	b.mu.Unlock()
	if version != "" {
		req.Header.Set("Mcp-Protocol-Version", version)
	}
}

func (b *bridge) post(ctx context.Context, msg []byte) {
	var p peek
	_ = json.Unmarshal(msg, &p)
	version, _ := p.Params.Meta["io.modelcontextprotocol/protocolVersion"].(string)
	if p.Method == "initialize" {
		b.mu.Lock()
		b.initID = string(p.ID)
		b.mu.Unlock()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.endpoint, bytes.NewReader(msg))
	if err != nil {
		b.fail(p.ID, err.Error())
		return
	}
	req.Header.Set("Content-Type", "application/json")
	b.headers(req, version)
	if req.Header.Get("Mcp-Protocol-Version") >= modern && p.Method != "" {
		// SEP-2243: the method and its principal name mirrored in headers.
		req.Header.Set("Mcp-Method", p.Method)
		switch p.Method {
		case "tools/call", "prompts/get":
			req.Header.Set("Mcp-Name", p.Params.Name)
		case "resources/read":
			req.Header.Set("Mcp-Name", p.Params.URI)
		}
	}
	resp, err := b.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			b.fail(p.ID, err.Error())
		}
		return
	}
	defer resp.Body.Close()
	if s := resp.Header.Get("Mcp-Session-Id"); s != "" {
		b.mu.Lock()
		b.session = s
		b.mu.Unlock()
	}
	b.relay(ctx, resp, p.ID)
}

// relay writes the messages of an HTTP answer to out: a JSON body, or
// the events of a stream.
func (b *bridge) relay(ctx context.Context, resp *http.Response, id json.RawMessage) {
	ct := resp.Header.Get("Content-Type")
	switch {
	case resp.StatusCode == http.StatusAccepted:
	case strings.HasPrefix(ct, "text/event-stream"):
		rd := bufio.NewReaderSize(resp.Body, 64<<10)
		var data bytes.Buffer
		for {
			line, err := rd.ReadBytes('\n')
			line = bytes.TrimRight(line, "\r\n")
			switch {
			case bytes.HasPrefix(line, []byte("data:")):
				if data.Len() > 0 {
					data.WriteByte('\n')
				}
				data.Write(bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" ")))
			case len(line) == 0 && data.Len() > 0:
				b.emit(data.Bytes())
				data.Reset()
			}
			if err != nil {
				return
			}
		}
	case resp.StatusCode/100 == 2 && strings.HasPrefix(ct, "application/json"):
		body, _ := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes))
		b.emit(body)
	default:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		// A JSON-RPC error answer is the server's own; anything else (401
		// before MCP) becomes one for the request.
		var p peek
		if json.Unmarshal(body, &p) == nil && len(p.ID) > 0 {
			b.emit(body)
			return
		}
		b.fail(id, fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body)))
	}
}

// emit writes one message, and starts the GET stream once a 2025
// session is initialized.
func (b *bridge) emit(msg []byte) {
	b.outMu.Lock()
	_, _ = b.out.Write(append(bytes.TrimSpace(msg), '\n'))
	b.outMu.Unlock()
	var p peek
	if json.Unmarshal(msg, &p) != nil || p.Result.ProtocolVersion == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if string(p.ID) != b.initID || b.initID == "" {
		return
	}
	b.version = p.Result.ProtocolVersion
	if b.version < modern && b.session != "" && !b.streaming {
		b.streaming = true
		go b.stream()
	}
}

// stream relays the session's GET stream until the session ends.
func (b *bridge) stream() {
	for {
		req, err := http.NewRequest(http.MethodGet, b.endpoint, nil)
		if err != nil {
			return
		}
		b.headers(req, "")
		resp, err := b.client.Do(req)
		if err == nil {
			if resp.StatusCode != http.StatusOK {
				_ = resp.Body.Close()
				return // the session ended, or the server has no stream
			}
			b.relay(context.Background(), resp, nil)
			_ = resp.Body.Close()
		}
		b.mu.Lock()
		done := !b.streaming
		b.mu.Unlock()
		if done {
			return
		}
		time.Sleep(time.Second)
	}
}

// close ends the session on the node (DELETE), which ends the stream.
func (b *bridge) close() {
	b.mu.Lock()
	session := b.session
	b.streaming = false
	b.mu.Unlock()
	if session == "" {
		return
	}
	req, err := http.NewRequest(http.MethodDelete, b.endpoint, nil)
	if err != nil {
		return
	}
	b.headers(req, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if resp, err := b.client.Do(req.WithContext(ctx)); err == nil {
		_ = resp.Body.Close()
	}
}

// fail answers a request the node could not answer with a JSON-RPC
// error; a notification's failure has nobody to tell.
func (b *bridge) fail(id json.RawMessage, msg string) {
	if len(id) == 0 || string(id) == "null" {
		return
	}
	out, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "error": map[string]any{"code": -32603, "message": msg}})
	if err != nil {
		out = []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"bridge"}}`)
	}
	b.emit(out)
}
