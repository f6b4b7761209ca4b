package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/membudget"
)

// TestHotTierMemoryBudget: with a full hot tier of 32 KiB sessions that
// evicts (so reads keep going to memcached and back), the proxy's peak
// RSS stays within local_cache.size + 64 MiB + the connections' cost.
// Left to GOGC alone, the heap grew to about twice the hot tier.
func TestHotTierMemoryBudget(t *testing.T) {
	const (
		cache    = 64 << 20
		session  = 32 << 10
		sessions = 3000 // about 94 MiB of sessions: more than the tier keeps
		clients  = 32
	)
	pad := strings.Repeat("x", session)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Session-Pad") == "" {
			w.Header().Set("X-Session-Set-Pad", pad)
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(app.Close)
	n1, n2 := memcachedtest.StartMB(t, 256), memcachedtest.StartMB(t, 256) // they keep every session
	p := startBinary(t, plainBinary(t), fmt.Sprintf(`listen: "{{listen}}"
admin: "{{admin}}"
backends:
  - url: %q
session:
  local_cache:
    size: %d
  memcached:
    nodes: ["n1:%s", "n2:%s"]
    timeout: 2s
`, app.URL, cache, n1.Addr, n2.Addr))
	pid := p.cmd.Process.Pid
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: 10 * time.Second}
	get := func(cookie string) (string, error) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+p.addr+"/", nil)
		if cookie != "" {
			req.Header.Set("Cookie", "SPSESSIONID="+cookie)
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("status %d", resp.StatusCode)
		}
		for _, c := range resp.Cookies() {
			if c.Name == "SPSESSIONID" {
				return c.Value, nil
			}
		}
		return cookie, nil
	}

	ids := make([]string, sessions)
	run := func(work func(i int) error, n int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for c := range clients {
			wg.Go(func() {
				for i := c; i < n; i += clients {
					if err := work(i); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	run(func(i int) (err error) {
		ids[i], err = get("")
		if err == nil && ids[i] == "" {
			err = fmt.Errorf("session %d got no cookie", i)
		}
		return err
	}, sessions)
	reads := 0
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); reads += sessions {
		run(func(int) error {
			_, err := get(ids[rand.N(sessions)])
			return err
		}, sessions)
	}

	peak := int64(procStatusKiB(t, pid, "VmHWM:")) << 10
	budget := int64(cache + 64<<20 + clients*membudget.PerConn)
	t.Logf("%d sessions of %d KiB, %d reads: peak RSS %d MiB, budget %d MiB", sessions, session>>10, reads, peak>>20, budget>>20)
	if peak > budget {
		t.Fatalf("peak RSS %d MiB over the budget of %d MiB (hot tier %d MiB + 64 MiB + %d connections)",
			peak>>20, budget>>20, cache>>20, clients)
	}
	if misses := metric(t, p.admin, `sessionproxy_session_lookups_total{result="memcached"}`); misses < 500 {
		t.Fatalf("only %.0f reads went to memcached: the hot tier did not evict, the test measures nothing", misses)
	}
}

// metric reads one counter or gauge from the admin listener's /metrics.
func metric(t *testing.T, admin, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatalf("%s: %q: %v", name, line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}
