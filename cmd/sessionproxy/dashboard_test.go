package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cdpfetch "github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/redistest"
)

// chromium returns Debian's chromium, or skips the test without one; under
// CI=true a missing browser fails it instead (`make deps` installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH: run `make deps` (Debian's chromium)")
	}
	t.Skip("no chromium on PATH (`make deps` installs Debian's chromium)")
	return ""
}

// dashboardView is what the test reads of the page in the browser.
type dashboardView struct {
	Backends []struct {
		Upstream string `json:"upstream"`
		URL      string `json:"url"`
		State    string `json:"state"`
		Rate     string `json:"rate"`
	} `json:"backends"`
	Nodes []struct {
		Addr  string `json:"addr"`
		State string `json:"state"`
	} `json:"nodes"`
	ReqRate  string `json:"reqrate"`
	Sessions string `json:"sessions"`
	HitRatio string `json:"hitratio"`
	Updated  string `json:"updated"`
}

const readDashboard = `({
  backends: [...document.querySelectorAll("#backends tbody tr[data-url]")].map(tr => ({
    upstream: tr.dataset.upstream, url: tr.dataset.url,
    state: tr.querySelector("[data-state]").dataset.state,
    rate: tr.querySelector("[data-rate]").dataset.rate})),
  nodes: [...document.querySelectorAll("#nodes tbody tr[data-kind]")].map(tr => ({
    addr: tr.children[2].textContent, state: tr.querySelector("[data-state]").dataset.state})),
  reqrate: document.getElementById("reqrate").textContent,
  sessions: document.getElementById("sessions").textContent,
  hitratio: document.getElementById("hitratio").textContent,
  updated: document.getElementById("updated").textContent,
})`

// TestDashboardInChromium runs the binary with the shipped defaults, two
// upstreams and sessions on two memcached nodes, and an admin token;
// sends traffic, and opens the admin's / in headless Chromium, which asks
// for the token through HTTP Basic as a browser does when challenged. The
// page, loading nothing but itself and /dashboard.json, shows every
// backend and both nodes up, req/s above zero, the hot tier's sessions
// and hit ratio; then a node stops and the page, refreshing itself, shows
// it down. A page whose Host is a foreign name gets 403 in the browser
// too. UPDATE_SCREENSHOT=1 writes the page to docs/dashboard.png.
func TestDashboardInChromium(t *testing.T) {
	chromium(t)
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	a, _ := namedBackend(t, "A", 0)
	b, _ := namedBackend(t, "B", 0)
	api, _ := namedBackend(t, "api", 0)
	const token = "dashboard-token"
	cfg := fmt.Sprintf("admin: \"{{admin}}\"\nadmin_token: %q\n", token) + fmt.Sprintf(baseConfig, backendsYAML(a.URL, b.URL)) +
		fmt.Sprintf("upstreams:\n  api:\n    backends: [{url: %q}]\nroutes:\n  - match: {path: \"/api/\"}\n    upstream: api\n", api.URL) +
		fmt.Sprintf("session:\n  memcached:\n    nodes: [%q, %q]\n", n1.Addr, n2.Addr)
	p := startProcess(t, cfg)

	sent, failed := dashboardTraffic(t, p.addr)
	ctx := openDashboard(t, p.admin, token)
	wait := func(what string, ok func(v dashboardView) bool) dashboardView {
		t.Helper()
		return waitDashboard(t, ctx, what, ok)
	}
	rate := func(s string) float64 { f, _ := strconv.ParseFloat(s, 64); return f }
	v := wait("three backends and two nodes up, req/s above zero", func(v dashboardView) bool {
		up := 0
		for _, b := range v.Backends {
			if b.State == "up" {
				up++
			}
		}
		nodesUp := 0
		for _, n := range v.Nodes {
			if n.State == "up" {
				nodesUp++
			}
		}
		return up == 3 && len(v.Backends) == 3 && nodesUp == 2 && len(v.Nodes) == 2 && rate(v.ReqRate) > 0 && rate(v.Sessions) > 0
	})
	want := map[string]string{a.URL: "default", b.URL: "default", api.URL: "api"}
	for _, b := range v.Backends {
		if want[b.URL] != b.Upstream {
			t.Errorf("backend %s shown in upstream %q, want %q", b.URL, b.Upstream, want[b.URL])
		}
		if rate(b.Rate) <= 0 {
			t.Errorf("backend %s of %s: req/s %q, want above zero", b.URL, b.Upstream, b.Rate)
		}
	}
	if v.Nodes[0].Addr != n1.Addr || v.Nodes[1].Addr != n2.Addr {
		t.Errorf("nodes %+v, want %s and %s", v.Nodes, n1.Addr, n2.Addr)
	}
	if !strings.HasSuffix(v.HitRatio, "%") || rate(strings.TrimSuffix(v.HitRatio, "%")) <= 0 {
		t.Errorf("hot-tier hit ratio %q, want a percentage above zero", v.HitRatio)
	}

	// The page refreshes itself: a node that stops shows down without a
	// reload.
	n2.Stop()
	wait("the stopped node down", func(v dashboardView) bool {
		return len(v.Nodes) == 2 && v.Nodes[0].State == "up" && v.Nodes[1].State == "down"
	})
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "dashboard.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// A page whose Host is not the admin's own (DNS rebinding) gets 403,
	// credentials or not.
	_, port, _ := net.SplitHostPort(p.admin)
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate("http://rebind.localhost:"+port+"/"))
	if err != nil || resp == nil || resp.Status != 403 {
		t.Errorf("the dashboard under a foreign Host: %+v %v, want 403", resp, err)
	}
	if f := failed.Load(); f > 0 {
		t.Errorf("%d of %d proxied requests failed", f, sent.Load())
	}
}

// TestDashboardInChromiumRedis: with sessions on Redis and no token (an
// admin listener on loopback), the page shows the Redis server up, then
// down once it stops.
func TestDashboardInChromiumRedis(t *testing.T) {
	chromium(t)
	srv := redistest.Start(t, redistest.Options{})
	app, _ := namedBackend(t, "A", 0)
	cfg := "admin: \"{{admin}}\"\n" + fmt.Sprintf(baseConfig, backendsYAML(app.URL)) +
		fmt.Sprintf("session:\n  redis:\n    addrs: [%q]\n    timeout: 500ms\n", srv.Addr)
	p := startProcess(t, cfg)
	dashboardTraffic(t, p.addr) // its failures once Redis is stopped are not this test's concern
	ctx := openDashboard(t, p.admin, "")
	waitDashboard(t, ctx, "the Redis server up, req/s above zero", func(v dashboardView) bool {
		r, _ := strconv.ParseFloat(v.ReqRate, 64)
		return len(v.Backends) == 1 && v.Backends[0].State == "up" && len(v.Nodes) == 1 &&
			v.Nodes[0].Addr == srv.Addr && v.Nodes[0].State == "up" && r > 0
	})
	srv.Stop()
	waitDashboard(t, ctx, "the Redis server down", func(v dashboardView) bool {
		return len(v.Nodes) == 1 && v.Nodes[0].State == "down"
	})
}

// dashboardTraffic sends requests to the proxy at addr until the test
// ends, from clients that each start a session and come back with it, to
// / and to /api/; it counts the requests sent and those not answered 200.
func dashboardTraffic(t *testing.T, addr string) (sent, failed *atomic.Int64) {
	sent, failed = new(atomic.Int64), new(atomic.Int64)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				jar, _ := cookiejar.New(nil)
				c := &http.Client{Jar: jar, Timeout: 5 * time.Second}
				for _, path := range []string{"/?set=v", "/", "/api/x", "/", "/"} {
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
					resp, err := c.Get("http://" + addr + path)
					sent.Add(1)
					if err != nil || resp.StatusCode != 200 {
						failed.Add(1)
					}
					if resp != nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}
			}
		}()
	}
	t.Cleanup(func() { close(stop); wg.Wait() })
	return sent, failed
}

// openDashboard opens the admin listener's / at adminAddr in a new
// headless Chromium and returns its context. Every request the page makes
// is paused on its way: it must go to the admin listener (nothing from
// outside), and a 401's challenge is answered with token as the Basic
// password, as a user would type it into the browser's prompt. When the
// test ends, a request elsewhere or an exception the page threw fails it.
func openDashboard(t *testing.T, adminAddr, token string) context.Context {
	t.Helper()
	browser := chromium(t)
	dir := t.TempDir()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox refuses to start
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1280, 560),
	)...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelCtx)

	admin := "http://" + adminAddr
	_, port, _ := net.SplitHostPort(adminAddr)
	foreign := "http://rebind.localhost:" + port // Chromium resolves *.localhost to loopback itself

	var challenges atomic.Int64
	var outside sync.Map
	paused, auths := chromedp.Events(ctx, cdpfetch.RequestPaused), chromedp.Events(ctx, cdpfetch.AuthRequired)
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			if u := ev.Request.URL; !strings.HasPrefix(u, admin+"/") && !strings.HasPrefix(u, foreign+"/") {
				outside.Store(u, true)
			}
			chromedp.Call(ctx, cdpfetch.ContinueRequest, cdpfetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	go func() {
		for ev, err := range auths {
			if err != nil {
				return
			}
			resp := &cdpfetch.AuthChallengeResponse{Response: cdpfetch.AuthChallengeResponseResponseCancelAuth}
			if strings.EqualFold(ev.AuthChallenge.Scheme, "basic") && ev.AuthChallenge.Realm == "sessionproxy admin" {
				challenges.Add(1)
				resp = &cdpfetch.AuthChallengeResponse{Response: cdpfetch.AuthChallengeResponseResponseProvideCredentials, Username: "admin", Password: token}
			}
			chromedp.Call(ctx, cdpfetch.ContinueWithAuth, cdpfetch.ContinueWithAuthParams{RequestID: ev.RequestID, AuthChallengeResponse: resp})
		}
	}()
	var pageErrors sync.Map
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			pageErrors.Store((&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error(), true)
		}
	}()
	yes := true
	if _, err := chromedp.Call(ctx, cdpfetch.Enable, cdpfetch.EnableParams{HandleAuthRequests: &yes}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(admin+"/")); err != nil {
		t.Fatal(err)
	}
	if token != "" && challenges.Load() == 0 {
		t.Errorf("the browser was not challenged for Basic credentials")
	}
	// Checked when the test ends, the browser still running.
	t.Cleanup(func() {
		outside.Range(func(k, _ any) bool { t.Errorf("the page requested %s, outside the admin listener", k); return true })
		pageErrors.Range(func(k, _ any) bool { t.Errorf("the page threw: %s", k); return true })
	})

	return ctx
}

// waitDashboard reads the page in ctx until ok holds, for up to 15 s.
func waitDashboard(t *testing.T, ctx context.Context, what string, ok func(v dashboardView) bool) dashboardView {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var v dashboardView
	for {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[dashboardView](readDashboard))
		if err == nil {
			v = got
			if ok(v) {
				return v
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page never showed %s: %+v (%v)", what, v, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
