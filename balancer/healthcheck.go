package balancer

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Checker polls each backend of a pool with GET Path every Interval. A
// backend whose check fails (error, timeout or a non-2xx status) is taken
// out until a check passes again.
type Checker struct {
	Path     string        // request path, e.g. /healthz
	Interval time.Duration // between rounds (default 2s)
	Timeout  time.Duration // per check (default Interval)
	Client   *http.Client  // nil: a client with Timeout (and one per unix: backend)
	// Probe, if not nil, checks a backend instead of an HTTP GET: a
	// FastCGI backend is asked through its own client. nil error passes.
	Probe func(ctx context.Context, b *Backend, path string) error
}

// Run checks every backend once at once and then every Interval until ctx
// is done. Checks of one round run in parallel so that one hung backend does
// not delay the others.
func (c *Checker) Run(ctx context.Context, p *Pool) {
	interval := c.Interval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = interval
	}
	client := c.Client
	if client == nil {
		client = &http.Client{Timeout: timeout}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		done := make(chan struct{}, len(p.Backends))
		for _, b := range p.Backends {
			go func() {
				b.setChecked(c.check(ctx, clientFor(client, c.Client == nil, timeout, b), b))
				done <- struct{}{}
			}()
		}
		for range p.Backends {
			<-done
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// clientFor returns the client that checks b: for a unix: backend, one
// whose connections go to its socket (kept on b so that the round's
// connections are reused), unless the Checker was given its own client.
func clientFor(client *http.Client, own bool, timeout time.Duration, b *Backend) *http.Client {
	if b.Network != "unix" || !own {
		return client
	}
	if c := b.checkClient.Load(); c != nil {
		return c
	}
	path := b.Addr
	d := net.Dialer{}
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConnsPerHost: 1,
	}}
	b.checkClient.Store(c)
	return c
}

// checkURL is the URL GET goes to: a unix: backend is asked for
// http://localhost/..., the Host a local app expects.
func checkURL(b *Backend, path string) string {
	if b.Network == "unix" {
		return "http://localhost" + path
	}
	return b.URL + path
}

func (c *Checker) check(ctx context.Context, client *http.Client, b *Backend) (bool, error) {
	if c.Probe != nil {
		pctx, cancel := context.WithTimeout(ctx, client.Timeout)
		err := c.Probe(pctx, b, c.Path)
		cancel()
		if err != nil && ctx.Err() != nil {
			return !b.checkDown.Load(), nil // shutting down: leave the state alone
		}
		return err == nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, checkURL(b, c.Path), nil)
	if err != nil {
		return false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return !b.checkDown.Load(), nil // shutting down: leave the state alone
		}
		return false, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return false, fmt.Errorf("status %d", resp.StatusCode)
	}
	return true, nil
}
