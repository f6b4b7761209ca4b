package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sessionproxy/balancer"
	"sessionproxy/internal/rawtcp"
	"sessionproxy/internal/testutil"
)

// testBackend is a real HTTP server on a loopback port that names itself in
// an X-Backend header and records what it received.
type testBackend struct {
	name string
	srv  *httptest.Server
	hits atomic.Int64

	mu      sync.Mutex
	last    http.Header // headers of the last request
	lastReq *http.Request
	handler http.HandlerFunc // optional extra behaviour
}

func newTestBackend(t *testing.T, name string) *testBackend {
	t.Helper()
	return newTestBackendWith(t, name, nil)
}

// newTestBackendWith lets configure change the server before it starts.
func newTestBackendWith(t *testing.T, name string, configure func(*http.Server)) *testBackend {
	t.Helper()
	b := &testBackend{name: name}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(b.serve))
	if configure != nil {
		configure(b.srv.Config)
	}
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	return b
}

func (b *testBackend) serve(w http.ResponseWriter, r *http.Request) {
	b.hits.Add(1)
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.last = r.Header.Clone()
	b.last.Set("Host", r.Host)
	b.lastReq = r
	h := b.handler
	b.mu.Unlock()
	w.Header().Set("X-Backend", b.name)
	if h != nil {
		h(w, r)
		return
	}
	fmt.Fprintf(w, "%s %s %s %s", b.name, r.Method, r.URL.RequestURI(), body)
}

func (b *testBackend) setHandler(h http.HandlerFunc) {
	b.mu.Lock()
	b.handler = h
	b.mu.Unlock()
}

func (b *testBackend) lastHeader() http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

func (b *testBackend) url() string { return b.srv.URL }

// newPool builds a round-robin pool over URLs with the given health.
func newPool(t *testing.T, policy string, h *balancer.Health, urls ...string) *balancer.Pool {
	t.Helper()
	var bs []*balancer.Backend
	for _, u := range urls {
		b, err := NewBackend(u, 1, false)
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
	}
	p, err := balancer.NewPool(policy, bs, h)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startProxy serves p on a free loopback port and returns its base URL.
func startProxy(t *testing.T, p *Proxy, o ServerOptions) string {
	t.Helper()
	if p.Pipeline == 0 {
		p.Pipeline = testPipeline
	}
	withDefaultLog(p)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(p.ServeHTTP, o)
	go srv.Serve(NewLingerListener(ln))
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

// testAccessLog is the access log the binary runs with by default: text
// (here to a discarded writer, with its flusher running as in the binary).
var testAccessLog, _ = NewAccessLog("text", io.Discard)

// withDefaultLog gives h, and every Proxy, Static and Recorder below it,
// the default access log unless the test set one: the end-to-end tests
// run with the access log on, as users do (CONTRACT section 12).
func withDefaultLog(h Handler) {
	switch h := h.(type) {
	case *Proxy:
		if h.AccessLog == nil {
			h.AccessLog = testAccessLog
		}
	case *Static:
		if h.recorder == nil {
			h.recorder = &Recorder{Metrics: NewMetrics()}
		}
		if h.recorder.AccessLog == nil {
			h.recorder.AccessLog = testAccessLog
		}
	case *Router:
		if h.Recorder == nil {
			h.Recorder = &Recorder{Metrics: NewMetrics()}
		}
		if h.Recorder.AccessLog == nil {
			h.Recorder.AccessLog = testAccessLog
		}
		if h.Default != nil {
			withDefaultLog(h.Default)
		}
		for _, p := range h.Upstreams {
			withDefaultLog(p)
		}
		for _, r := range h.Routes {
			withDefaultLog(r.Handler)
		}
	}
}

// testPipeline, from SESSIONPROXY_TEST_PIPELINE, is the Pipeline every
// proxy of startProxy gets unless it sets its own: `make test` runs this
// package's tests again with 8, so that the pipelined transport passes
// what the ordinary one does.
var testPipeline, _ = strconv.Atoi(os.Getenv("SESSIONPROXY_TEST_PIPELINE"))

// client is an HTTP client with keep-alive, like a browser.
var client = &http.Client{Timeout: 10 * time.Second}

type result struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url string, body string, hdr ...string) result {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, string(b)}
}

func get(t *testing.T, url string, hdr ...string) result {
	t.Helper()
	return do(t, http.MethodGet, url, "", hdr...)
}

// rawRequest writes raw bytes to addr and returns the raw response.
func rawRequest(t *testing.T, baseURL, raw string) string {
	t.Helper()
	c := rawtcp.Dial(t, strings.TrimPrefix(baseURL, "http://"))
	defer c.Close()
	io.WriteString(c, raw)
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d\n", resp.StatusCode)
	if resp.Close {
		// ReadResponse moves Connection: close into resp.Close.
		resp.Header.Set("Connection", "close")
	}
	resp.Header.Write(&sb)
	sb.WriteString("\n")
	sb.Write(b)
	return sb.String()
}

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string { return testutil.FreeAddr(t) }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, what, cond)
}
