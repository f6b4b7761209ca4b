package balancer

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"sessionproxy/internal/testutil"
)

func TestCheckerTakesOutAndBringsBack(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			t.Errorf("checked path %q, want /health", r.URL.Path)
		}
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	bs := []*Backend{{URL: srv.URL}}
	p, _ := NewPool("round_robin", bs, &Health{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go (&Checker{Path: "/health", Interval: 20 * time.Millisecond}).Run(ctx, p)

	waitFor(t, "stays up", func() bool { return bs[0].Available() })
	healthy.Store(false)
	waitFor(t, "taken out by a failing check", func() bool { return !bs[0].Available() })
	healthy.Store(true)
	waitFor(t, "brought back by a passing check", func() bool { return bs[0].Available() })
	srv.Close()
	waitFor(t, "taken out when unreachable", func() bool { return !bs[0].Available() })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, 3*time.Second, what, cond)
}

// The active check of a unix: backend goes to its socket.
func TestCheckerUnixSocket(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	path := filepath.Join(t.TempDir(), "app.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			t.Errorf("checked path %q, want /health", r.URL.Path)
		}
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	bs := []*Backend{{URL: "unix:" + path, Addr: path, Network: "unix"}}
	p, _ := NewPool("round_robin", bs, &Health{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go (&Checker{Path: "/health", Interval: 20 * time.Millisecond}).Run(ctx, p)
	healthy.Store(false)
	waitFor(t, "taken out by a failing check", func() bool { return !bs[0].Available() })
	healthy.Store(true)
	waitFor(t, "brought back by a passing check", func() bool { return bs[0].Available() })
}
