package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
)

// TestReloadRoutesUnderLoad changes routes and upstreams with SIGHUP while
// clients keep sessions going: the new route and upstream take effect,
// the removed ones stop, a request in flight on the old configuration
// finishes, no request fails and every session keeps counting.
func TestReloadRoutesUnderLoad(t *testing.T) {
	mc := memcachedtest.Start(t)
	app := siteBackend(t, "app", nil)
	old, _ := namedBackend(t, "old", 0)
	var apiHits atomic.Int64
	api := siteBackend(t, "api", &apiHits)
	slow, _ := namedBackend(t, "slow", 0)
	const head = `listen: "{{listen}}"
admin: "{{admin}}"
backends: [{url: "http://%s"}]
session: {memcached: {nodes: ["n1:%s"], replicas: 1}}
`
	before := fmt.Sprintf(head, app, mc.Addr) + fmt.Sprintf(`upstreams:
  old: {backends: [{url: "%s"}]}
  slow: {backends: [{url: "%s"}]}
routes:
  - {match: {path: "/old/"}, upstream: old}
  - {match: {path: "/slow/"}, upstream: slow, session: false}
`, old.URL, slow.URL)
	after := fmt.Sprintf(head, app, mc.Addr) + fmt.Sprintf(`upstreams:
  api: {balancer: least_conn, backends: [{url: "http://%s"}]}
  slow: {backends: [{url: "%s"}]}
routes:
  - {match: {path: "/api/"}, upstream: api, rewrite_prefix: "/"}
  - {match: {path: "/slow/"}, upstream: slow, session: false}
`, api, slow.URL)
	p := startProcess(t, before)
	base := "http://" + p.addr

	if body := mustGet(t, http.DefaultClient, base+"/old/x"); body != "old" {
		t.Fatalf("before the reload, /old/ reached %q", body)
	}

	// Clients with sessions, each checking that its counter climbs by one.
	var failures, total atomic.Int64
	var mu sync.Mutex
	var problems []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jar, _ := cookiejar.New(nil)
			c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
			for want := 1; ; want++ {
				select {
				case <-stop:
					return
				default:
				}
				total.Add(1)
				body, err := getBody(c, base+"/")
				if err != nil || !strings.Contains(body, " visits="+strconv.Itoa(want)+" ") {
					failures.Add(1)
					mu.Lock()
					problems = append(problems, fmt.Sprintf("visit %d: %q %v", want, body, err))
					mu.Unlock()
					return
				}
			}
		}()
	}
	// A request in flight across the reload, on a route both files have.
	// And one on the route the reload removes.
	inflight, inflightOld := make(chan string, 1), make(chan string, 1)
	for url, ch := range map[string]chan string{"/slow/x?sleep=1500ms": inflight, "/old/x?sleep=1500ms": inflightOld} {
		go func() {
			body, err := getBody(http.DefaultClient, base+url)
			if err != nil {
				body = err.Error()
			}
			ch <- body
		}()
	}
	time.Sleep(300 * time.Millisecond)
	p.write(after)
	p.signal(syscall.SIGHUP)
	waitLog(t, p, "config reloaded")

	if body := <-inflight; body != "slow" {
		t.Errorf("the request in flight across the reload got %q", body)
	}
	if body := <-inflightOld; body != "old" {
		t.Errorf("the request in flight on the removed route got %q", body)
	}
	if body := mustGet(t, http.DefaultClient, base+"/api/users?id=1"); !strings.HasPrefix(body, "api /users?id=1 ") {
		t.Errorf("the route added by the reload: %q", body)
	}
	if body := mustGet(t, http.DefaultClient, base+"/old/x"); !strings.HasPrefix(body, "app /old/x ") {
		t.Errorf("the route removed by the reload still answers: %q", body)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of %d session requests failed or lost count across the reload: %v", failures.Load(), total.Load(), problems)
	}
	if total.Load() < 8 {
		t.Fatalf("only %d session requests ran", total.Load())
	}
	var status struct {
		Backends []struct{ Upstream, URL string }
	}
	if err := json.Unmarshal([]byte(mustGet(t, http.DefaultClient, "http://"+p.admin+"/status")), &status); err != nil {
		t.Fatal(err)
	}
	upstreams := map[string]string{}
	for _, b := range status.Backends {
		upstreams[b.Upstream] = b.URL
	}
	if len(upstreams) != 3 || upstreams["api"] != "http://"+api || upstreams["old"] != "" {
		t.Errorf("/status after the reload lists %v, want default, api and slow", upstreams)
	}
	if apiHits.Load() == 0 {
		t.Error("the new upstream got no traffic")
	}
}

func getBody(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), err
}

func mustGet(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	body, err := getBody(c, url)
	if err != nil {
		t.Fatalf("GET %s: %v %q", url, err, body)
	}
	return body
}
