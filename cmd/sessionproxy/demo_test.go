package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
)

// startDemo runs the demo on a free port and returns its URL; the test's
// cleanup sends it SIGTERM and checks it exits 0.
func startDemo(t *testing.T, memcached string) string {
	t.Helper()
	urls, stop, err := demoBackends()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	c := demoConfig("127.0.0.1:0", memcached, urls)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := newApp(c, runFlags{}, newLogger(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() { done <- a.serveOn(ln) }()
	t.Cleanup(func() {
		a.signals <- syscall.SIGTERM
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("demo exited %d on SIGTERM", code)
			}
		case <-time.After(10 * time.Second):
			t.Error("demo did not stop on SIGTERM")
		}
	})
	return "http://" + ln.Addr().String()
}

func browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

func fetch(t *testing.T, c *http.Client, url, accept string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

func checkDemoJSON(t *testing.T, base string) {
	t.Helper()
	c := browser()
	var first demoJSON
	for i := 1; i <= 6; i++ {
		var got demoJSON
		body := fetch(t, c, base+"/", "application/json")
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("JSON: %q: %v", body, err)
		}
		if i == 1 {
			first = got
		}
		wantBackend := map[bool]string{true: "A", false: "B"}[i%2 == 1]
		if got.Backend != wantBackend || got.Visits != i || got.SessionID != first.SessionID ||
			got.Created != first.Created || len(got.SessionID) < 22 {
			t.Fatalf("visit %d: %+v, want backend %s, visits %d, session %s", i, got, wantBackend, i, first.SessionID)
		}
	}
	for _, key := range []string{`"backend":`, `"session_id":`, `"created":`, `"visits":`} {
		if body := fetch(t, c, base+"/", "application/json"); !strings.Contains(body, key) {
			t.Fatalf("JSON %s lacks %s", body, key)
		}
	}
}

func TestDemoJSON(t *testing.T) {
	checkDemoJSON(t, startDemo(t, ""))
}

func TestDemoWithMemcached(t *testing.T) {
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	checkDemoJSON(t, startDemo(t, "n1:"+n1.Addr+",n2:"+n2.Addr))
}

func TestDemoHTML(t *testing.T) {
	base := startDemo(t, "")
	c := browser()
	a := fetch(t, c, base+"/", "text/html")
	b := fetch(t, c, base+"/", "text/html")
	if !strings.Contains(a, `class="backend">A<`) || !strings.Contains(b, `class="backend">B<`) {
		t.Fatal("HTML pages do not show backends A then B")
	}
	if !strings.Contains(b, "<dd>2</dd>") || !strings.Contains(a, "(new)") || strings.Contains(b, "(new)") {
		t.Fatalf("second page does not show 2 visits of the same session:\n%s", b)
	}
	if !strings.Contains(a, `<link rel="icon" href="data:,">`) {
		t.Fatal("the page lets the browser request /favicon.ico, which would take a turn in the rotation")
	}
	if strings.Contains(a, "#2e7d32") == strings.Contains(b, "#2e7d32") {
		t.Fatal("A and B pages are not visibly different")
	}
}

func TestExampleConfigsAreValid(t *testing.T) {
	if code, _, errOut := run("check", "-config", "../../examples/classic.yaml"); code != 0 {
		t.Fatalf("examples/classic.yaml: %s", errOut)
	}
	if _, err := os.Stat("../../examples/sessionproxy.service"); err != nil {
		t.Fatal(err)
	}
}
