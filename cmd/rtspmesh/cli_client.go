package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/rtspmesh/rtspmesh/node"
)

// The operator commands (streams, peers, evict, pin, unpin, prefetch,
// status) talk to a running node's admin API (docs/api.md).

const defaultAdmin = "http://127.0.0.1:9554"

// adminFlags are the flags every operator command takes.
type adminFlags struct {
	admin   string
	token   string
	json    bool
	timeout time.Duration
}

func (a *adminFlags) register(fs *flagSet) {
	// The node's own variable for admin.listen: a shell set up for the node
	// reaches it without flags (and no variable the node would refuse).
	admin := defaultAdmin
	if v := os.Getenv(node.EnvName("admin.listen")); v != "" {
		admin = v
	}
	fs.StringVar(&a.admin, "admin", admin, "the node's admin API: URL or host:port (default: env "+node.EnvName("admin.listen")+", else "+defaultAdmin+")")
	fs.StringVar(&a.token, "token", "", "the node's admin.token (default: env "+node.EnvName("admin.token")+")")
	fs.BoolVar(&a.json, "json", false, "print JSON instead of a table")
	fs.DurationVar(&a.timeout, "timeout", 10*time.Second, "time allowed for each request to the node")
}

// parseAll parses flags placed anywhere among the arguments (the flag
// package stops at the first argument) and returns the arguments.
func parseAll(fs *flagSet, args []string, stdout io.Writer) ([]string, error) {
	var pos []string
	for {
		if err := fs.parse(args, stdout); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// adminClient calls one node's admin API.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

func (a *adminFlags) client() (*adminClient, error) {
	base := strings.TrimRight(a.admin, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, &usageError{cmd: "admin", err: fmt.Errorf("--admin %q: want an http(s) URL or host:port, e.g. %s", a.admin, defaultAdmin)}
	}
	token := a.token
	if token == "" {
		token = os.Getenv(node.EnvName("admin.token"))
	}
	return &adminClient{base: base, token: token, http: &http.Client{Timeout: a.timeout}}, nil
}

// apiStatusError is an error answer of the admin API.
type apiStatusError struct {
	Code    int
	Message string
}

func (e *apiStatusError) Error() string { return e.Message }

// do sends one request; out (when not nil) receives the decoded JSON answer.
// It returns the HTTP status of a successful answer.
func (c *adminClient) do(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return 0, c.unreachable(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return 0, fmt.Errorf("read the answer of %s: %w", c.base, err)
	}
	if res.StatusCode == http.StatusUnauthorized {
		if c.token == "" {
			return 0, fmt.Errorf("the node at %s needs its admin token: pass --token or set %s", c.base, node.EnvName("admin.token"))
		}
		return 0, fmt.Errorf("the node at %s refused the token: check --token (or %s) against its admin.token", c.base, node.EnvName("admin.token"))
	}
	if res.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s %s: HTTP %d (is %s an rtspmesh admin API?)", method, path, res.StatusCode, c.base)
		}
		return res.StatusCode, &apiStatusError{Code: res.StatusCode, Message: e.Error}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return res.StatusCode, fmt.Errorf("%s %s: unexpected answer (is %s an rtspmesh admin API?): %w", method, path, c.base, err)
		}
	}
	return res.StatusCode, nil
}

func (c *adminClient) unreachable(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("no node is listening at %s: is rtspmesh node running, and is --admin its admin.listen?", c.base)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("the node at %s did not answer in time: %w", c.base, err)
	case errors.Is(err, context.Canceled):
		return err
	}
	return fmt.Errorf("cannot reach the node's admin API at %s: %w", c.base, err)
}

// findStream resolves what an operator typed to one recording: its full id,
// a unique id prefix (at least 4 digits), its path on the node
// (<origin>/<path>) or its key.
func (c *adminClient) findStream(ctx context.Context, ref string) (node.StreamStatus, error) {
	var list []node.StreamStatus
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/streams", nil, &list); err != nil {
		return node.StreamStatus{}, err
	}
	ref = strings.TrimPrefix(ref, "/")
	var found []node.StreamStatus
	for _, s := range list {
		switch {
		case s.ID == ref || s.Path == ref || s.Key == ref:
			return s, nil
		case len(ref) >= 4 && strings.HasPrefix(s.ID, strings.ToLower(ref)):
			found = append(found, s)
		}
	}
	switch len(found) {
	case 0:
		return node.StreamStatus{}, fmt.Errorf("no stream %q on this node (see rtspmesh streams)", ref)
	case 1:
		return found[0], nil
	}
	return node.StreamStatus{}, fmt.Errorf("%q matches %d streams; give more of the id", ref, len(found))
}
