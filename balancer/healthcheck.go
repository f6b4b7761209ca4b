package balancer

import (
	"context"
	"fmt"
	"io"
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
	Client   *http.Client  // nil: a client with Timeout
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
				b.setChecked(c.check(ctx, client, b))
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

func (c *Checker) check(ctx context.Context, client *http.Client, b *Backend) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.URL+c.Path, nil)
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
