package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sessionproxy/balancer"
	"sessionproxy/internal/rawtcp"
)

func TestRoundRobinAcrossBackends(t *testing.T) {
	a, b := newTestBackend(t, "A"), newTestBackend(t, "B")
	p := &Proxy{Pool: newPool(t, "round_robin", nil, a.url(), b.url())}
	base := startProxy(t, p, ServerOptions{})
	var got []string
	for i := 0; i < 4; i++ {
		r := get(t, base+"/")
		got = append(got, r.header.Get("X-Backend"))
	}
	if strings.Join(got, ",") != "A,B,A,B" {
		t.Fatalf("backends = %v, want A,B,A,B", got)
	}
}

func TestForwardedHeaders(t *testing.T) {
	a := newTestBackend(t, "A")
	p := &Proxy{Pool: newPool(t, "round_robin", nil, a.url())}
	base := startProxy(t, p, ServerOptions{})

	r := get(t, base+"/path?q=1", "Host", "shop.example", "X-Forwarded-For", "203.0.113.7",
		"X-Forwarded-Proto", "https", "X-Real-IP", "198.51.100.1")
	if r.status != 200 || r.body != "A GET /path?q=1 " {
		t.Fatalf("response = %d %q", r.status, r.body)
	}
	h := a.lastHeader()
	want := map[string]string{
		"Host":              "shop.example",
		"X-Forwarded-For":   "203.0.113.7, 127.0.0.1",
		"X-Forwarded-Proto": "http",
		"X-Forwarded-Host":  "shop.example",
		"X-Real-Ip":         "127.0.0.1",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("backend got %s: %q, want %q", k, got, v)
		}
	}
	id := h.Get("X-Request-Id")
	if len(id) != 32 || r.header.Get("X-Request-Id") != id {
		t.Errorf("request id: backend %q, client %q", id, r.header.Get("X-Request-Id"))
	}
	if ua := h.Get("User-Agent"); ua != "Go-http-client/1.1" {
		t.Errorf("User-Agent = %q, want the client's", ua)
	}

	// A client's own request id is kept; fresh ones differ.
	r = get(t, base+"/", "X-Request-Id", "abc-123")
	if a.lastHeader().Get("X-Request-Id") != "abc-123" || r.header.Get("X-Request-Id") != "abc-123" {
		t.Errorf("client request id not kept: %q", r.header.Get("X-Request-Id"))
	}
	r1, r2 := get(t, base+"/"), get(t, base+"/")
	if r1.header.Get("X-Request-Id") == r2.header.Get("X-Request-Id") {
		t.Error("two requests got the same request id")
	}
}

func TestHopByHopHeadersRemoved(t *testing.T) {
	a := newTestBackend(t, "A")
	a.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Backend-Private")
		w.Header().Set("X-Backend-Private", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Proxy-Authenticate", "Basic")
		w.Write([]byte("ok"))
	})
	p := &Proxy{Pool: newPool(t, "round_robin", nil, a.url())}
	base := startProxy(t, p, ServerOptions{})
	raw := rawRequest(t, base, "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Private\r\n"+
		"X-Private: 1\r\nKeep-Alive: 300\r\nProxy-Authorization: Basic eA==\r\nTe: trailers\r\nUpgrade: h2c\r\n"+
		"Proxy-Connection: keep-alive\r\n\r\n")
	h := a.lastHeader()
	for _, k := range []string{"X-Private", "Keep-Alive", "Proxy-Authorization", "Te", "Upgrade", "Proxy-Connection"} {
		if v := h.Get(k); v != "" {
			t.Errorf("backend got hop-by-hop %s: %q", k, v)
		}
	}
	if v := h.Get("Connection"); v != "" && !strings.EqualFold(v, "keep-alive") {
		t.Errorf("backend got Connection: %q", v)
	}
	for _, k := range []string{"X-Backend-Private", "Keep-Alive", "Proxy-Authenticate"} {
		if strings.Contains(strings.ToLower(raw), strings.ToLower(k)+":") {
			t.Errorf("client got hop-by-hop %s:\n%s", k, raw)
		}
	}
}

func TestClientConnectionCloseKeepsBackendPool(t *testing.T) {
	var conns atomic.Int64
	a := newTestBackendWith(t, "A", func(s *http.Server) {
		s.ConnState = func(c net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
	})
	p := &Proxy{Pool: newPool(t, "round_robin", nil, a.url())}
	base := startProxy(t, p, ServerOptions{})
	for i := 0; i < 5; i++ {
		raw := rawRequest(t, base, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !strings.Contains(raw, "Connection: close") {
			t.Fatalf("client asked to close but the response does not say so:\n%s", raw)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("backend saw %d connections for 5 client requests with Connection: close, want 1 kept alive", n)
	}
}

func TestSessionHeadersNeverCross(t *testing.T) {
	a := newTestBackend(t, "A")
	a.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Session-Set-user", "bob")
		w.Header().Set("x-session-invalidate", "1")
		w.Write([]byte("ok"))
	})
	p := &Proxy{Pool: newPool(t, "round_robin", nil, a.url())}
	base := startProxy(t, p, ServerOptions{})
	r := get(t, base+"/", "X-Session-Id", "forged", "x-session-attr-role", "admin", "X-SESSION-NEW", "1")
	for k := range a.lastHeader() {
		if strings.HasPrefix(strings.ToLower(k), "x-session-") {
			t.Errorf("client header %s reached the backend", k)
		}
	}
	for k := range r.header {
		if strings.HasPrefix(strings.ToLower(k), "x-session-") {
			t.Errorf("backend header %s reached the client", k)
		}
	}
}

func TestChunkedRequestBody(t *testing.T) {
	a := newTestBackend(t, "A")
	p := &Proxy{Pool: newPool(t, "round_robin", nil, a.url())}
	base := startProxy(t, p, ServerOptions{})
	raw := rawRequest(t, base, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
	if !strings.HasSuffix(raw, "A POST /up hello world") {
		t.Fatalf("chunked body not forwarded:\n%s", raw)
	}
}

func TestKilledBackendNoErrors(t *testing.T) {
	a, b := newTestBackend(t, "A"), newTestBackend(t, "B")
	h := &balancer.Health{MaxFails: 1, FailTimeout: 300 * time.Millisecond}
	pool := newPool(t, "round_robin", h, a.url(), b.url())
	p := &Proxy{Pool: pool, Settings: Settings{Retries: 1}}
	base := startProxy(t, p, ServerOptions{})
	addr := strings.TrimPrefix(a.url(), "http://")

	a.srv.CloseClientConnections()
	a.srv.Listener.Close()
	for i := 0; i < 50; i++ {
		r := get(t, base+"/")
		if r.status != 200 || r.header.Get("X-Backend") != "B" {
			t.Fatalf("request %d with A dead: %d %q", i, r.status, r.body)
		}
	}
	if pool.Backends[0].Available() {
		t.Fatal("dead backend A still available")
	}
	// A comes back on the same address and gets traffic again once
	// fail_timeout has passed.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("cannot listen again on the killed backend's port %s: %v", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(a.serve)}
	go srv.Serve(ln)
	defer srv.Close()
	waitFor(t, "A back in rotation", func() bool {
		return get(t, base+"/").header.Get("X-Backend") == "A"
	})
}

func TestRetryIdempotentOnTimeoutButNeverPOST(t *testing.T) {
	slow, fast := newTestBackend(t, "slow"), newTestBackend(t, "fast")
	slow.setHandler(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(400 * time.Millisecond)
		w.Write([]byte("late"))
	})
	p := &Proxy{
		Pool:     newPool(t, "round_robin", nil, slow.url(), fast.url()),
		Settings: Settings{Retries: 1, ResponseTimeout: 150 * time.Millisecond},
	}
	base := startProxy(t, p, ServerOptions{})

	// Round robin starts at slow: the GET times out there and is retried.
	r := get(t, base+"/")
	if r.status != 200 || r.header.Get("X-Backend") != "fast" {
		t.Fatalf("GET: %d %q, want 200 from fast after a retry", r.status, r.body)
	}
	// Next pick is fast; then slow again, for the POST.
	get(t, base+"/")
	slowBefore, fastBefore := slow.hits.Load(), fast.hits.Load()
	r = do(t, http.MethodPost, base+"/order", "pay=1")
	if r.status != http.StatusGatewayTimeout || r.body != "backend timeout\n" {
		t.Fatalf("POST: %d %q, want 504 backend timeout", r.status, r.body)
	}
	time.Sleep(500 * time.Millisecond)
	if s, f := slow.hits.Load()-slowBefore, fast.hits.Load()-fastBefore; s != 1 || f != 0 {
		t.Fatalf("POST reached slow %d times and fast %d times, want once and never", s, f)
	}
	// PUT is idempotent, but fasthttp's own retries must not send it again
	// to the same slow backend.
	get(t, base+"/")
	slowBefore = slow.hits.Load()
	do(t, http.MethodPut, base+"/doc", "v=2")
	time.Sleep(500 * time.Millisecond)
	if s := slow.hits.Load() - slowBefore; s != 1 {
		t.Fatalf("PUT reached the slow backend %d times, want 1", s)
	}
}

func TestPOSTRetriedWhenNeverSent(t *testing.T) {
	b := newTestBackend(t, "B")
	p := &Proxy{Pool: newPool(t, "round_robin", nil, "http://"+freePort(t), b.url()), Settings: Settings{Retries: 1}}
	base := startProxy(t, p, ServerOptions{})
	r := do(t, http.MethodPost, base+"/form", "x=1")
	if r.status != 200 || r.body != "B POST /form x=1" {
		t.Fatalf("POST after a refused connection: %d %q, want it sent to B", r.status, r.body)
	}
}

var errorBodyTests = []struct {
	name   string
	status int
	body   string
}{
	{"unreachable", 502, "backend unreachable\n"},
	{"no backend up", 502, "no backend available\n"},
	{"timeout", 504, "backend timeout\n"},
	{"body too large", 413, "request body too large\n"},
	{"malformed", 400, "malformed request\n"},
	{"invalid response", 502, "invalid response from backend\n"},
}

func TestProxyErrors(t *testing.T) {
	for _, tt := range errorBodyTests {
		t.Run(tt.name, func(t *testing.T) {
			var r result
			switch tt.name {
			case "unreachable":
				p := &Proxy{Pool: newPool(t, "round_robin", nil, "http://"+freePort(t)), Settings: Settings{Retries: 1}}
				r = get(t, startProxy(t, p, ServerOptions{})+"/")
			case "no backend up":
				pool := newPool(t, "round_robin", &balancer.Health{MaxFails: 1, FailTimeout: time.Minute}, "http://"+freePort(t))
				pool.Backends[0].Fail()
				r = get(t, startProxy(t, &Proxy{Pool: pool}, ServerOptions{})+"/")
			case "timeout":
				a := newTestBackend(t, "A")
				a.setHandler(func(w http.ResponseWriter, r *http.Request) { time.Sleep(300 * time.Millisecond) })
				p := &Proxy{Pool: newPool(t, "round_robin", nil, a.url()), Settings: Settings{ResponseTimeout: 100 * time.Millisecond}}
				r = get(t, startProxy(t, p, ServerOptions{})+"/")
			case "body too large":
				a := newTestBackend(t, "A")
				p := &Proxy{Pool: newPool(t, "round_robin", nil, a.url())}
				r = do(t, http.MethodPost, startProxy(t, p, ServerOptions{MaxBody: 1000})+"/", strings.Repeat("x", 5000))
				if a.hits.Load() != 0 {
					t.Error("oversized body reached the backend")
				}
			case "malformed":
				a := newTestBackend(t, "A")
				p := &Proxy{Pool: newPool(t, "round_robin", nil, a.url())}
				raw := rawRequest(t, startProxy(t, p, ServerOptions{}), "GET / HTTP/1.1\r\nHost x\r\nbroken\r\n\r\n")
				code, rest, _ := strings.Cut(raw, "\n")
				_, body, _ := strings.Cut(rest, "\n\n")
				r.body = body
				r.status = map[string]int{"400": 400}[code]
			case "invalid response":
				url, _ := rawBackend(t, nil, func(c net.Conn) {
					c.Read(make([]byte, 4096))
					c.Write([]byte("NOT HTTP AT ALL\r\n\r\n"))
				})
				p := &Proxy{Pool: newPool(t, "round_robin", nil, url)}
				r = do(t, http.MethodPost, startProxy(t, p, ServerOptions{})+"/", "x")
			}
			if r.status != tt.status || r.body != tt.body {
				t.Fatalf("got %d %q, want %d %q", r.status, r.body, tt.status, tt.body)
			}
		})
	}
}

func TestBackupBackend(t *testing.T) {
	a, spare := newTestBackend(t, "A"), newTestBackend(t, "spare")
	ba, _ := NewBackend(a.url(), 1, false)
	bs, _ := NewBackend(spare.url(), 1, true)
	pool, _ := balancer.NewPool("round_robin", []*balancer.Backend{ba, bs},
		&balancer.Health{MaxFails: 1, FailTimeout: time.Minute})
	base := startProxy(t, &Proxy{Pool: pool, Settings: Settings{Retries: 1}}, ServerOptions{})
	for i := 0; i < 3; i++ {
		if r := get(t, base+"/"); r.header.Get("X-Backend") != "A" {
			t.Fatalf("request %d went to %q while A is up", i, r.header.Get("X-Backend"))
		}
	}
	a.srv.CloseClientConnections()
	a.srv.Listener.Close()
	for i := 0; i < 3; i++ {
		if r := get(t, base+"/"); r.status != 200 || r.header.Get("X-Backend") != "spare" {
			t.Fatalf("request %d with A down: %d %q", i, r.status, r.body)
		}
	}
}

func TestConcurrentRequests(t *testing.T) {
	a, b := newTestBackend(t, "A"), newTestBackend(t, "B")
	p := &Proxy{Pool: newPool(t, "least_conn", nil, a.url(), b.url())}
	base := startProxy(t, p, ServerOptions{})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				resp, err := client.Get(base + "/")
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of 400 concurrent requests failed", failed.Load())
	}
	if a.hits.Load() == 0 || b.hits.Load() == 0 {
		t.Fatalf("least_conn used only one backend: A %d, B %d", a.hits.Load(), b.hits.Load())
	}
}

// A chunked response is relayed chunked, as it arrives, rather than read
// whole and re-framed with a length.
func TestChunkedResponse(t *testing.T) {
	a := newTestBackend(t, "A")
	a.setHandler(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 3; i++ {
			w.Write([]byte(strings.Repeat("x", 10)))
			w.(http.Flusher).Flush() // forces Transfer-Encoding: chunked
		}
	})
	p := &Proxy{Pool: newPool(t, "round_robin", nil, a.url())}
	base := startProxy(t, p, ServerOptions{})
	// Read the bytes themselves: http.ReadResponse hides Transfer-Encoding.
	c := rawtcp.Dial(t, strings.TrimPrefix(base, "http://"))
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	raw, _ := io.ReadAll(c)
	head, body, ok := strings.Cut(string(raw), "\r\n\r\n")
	if !ok || !strings.Contains(head, "Transfer-Encoding: chunked") || strings.Contains(head, "Content-Length") {
		t.Fatalf("chunked response not relayed chunked:\n%q", raw)
	}
	decoded, err := io.ReadAll(httputil.NewChunkedReader(strings.NewReader(body)))
	if err != nil || string(decoded) != strings.Repeat("x", 30) {
		t.Fatalf("chunked body %q decoded to %q, %v", body, decoded, err)
	}
}
