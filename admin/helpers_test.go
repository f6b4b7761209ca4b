package admin

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"sessionproxy/balancer"
	"sessionproxy/proxy"
	"sessionproxy/sessionstore"
)

// testAccessLog is the access log the binary runs with by default: text,
// here to a discarded writer (the end-to-end tests run with it on).
var testAccessLog, _ = proxy.NewAccessLog("text", io.Discard)

// newBackend starts a real HTTP backend that answers with its name (also
// in X-Backend), sets the session attributes of ?set=name:value, and says
// "new" when the proxy started the request's session.
func newBackend(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, kv := range r.URL.Query()["set"] {
			n, v, _ := strings.Cut(kv, ":")
			w.Header().Add("X-Session-Set-"+n, v)
		}
		w.Header().Set("X-Backend", name)
		if r.Header.Get("X-Session-New") == "1" {
			io.WriteString(w, "new ")
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// newUpstream returns the Proxy of one upstream over urls, with sessions
// in store if it is not nil.
func newUpstream(t *testing.T, name string, store *sessionstore.Store, urls ...string) *proxy.Proxy {
	t.Helper()
	var bs []*balancer.Backend
	for _, u := range urls {
		b, err := proxy.NewBackend(u, 1, false)
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
	}
	pool, err := balancer.NewPool("round_robin", bs, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy.Proxy{Pool: pool, Upstream: name, Settings: proxy.Settings{Retries: 1, AccessLog: testAccessLog}}
	if store != nil {
		p.Sessions = &proxy.Sessions{Store: store}
	}
	return p
}

// serve serves h on a free loopback port and returns its base URL.
func serve(t *testing.T, h proxy.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := proxy.NewServer(h.ServeHTTP, proxy.ServerOptions{})
	go srv.Serve(proxy.NewLingerListener(ln))
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

// startAdmin serves the admin pages of target, as cmd/sessionproxy does,
// and returns their base URL.
func startAdmin(t *testing.T, target Target) string {
	t.Helper()
	srv := httptest.NewServer(Handler(func() Target { return target }))
	t.Cleanup(srv.Close)
	return srv.URL
}

type result struct {
	status int
	header http.Header
	body   string
}

var client = &http.Client{Timeout: 10 * time.Second}

func do(t *testing.T, method, url string, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
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
	return do(t, http.MethodGet, url, hdr...)
}

// rawRequest writes raw bytes to the server at baseURL and returns the
// response's status code, a newline, its header and its body.
func rawRequest(t *testing.T, baseURL, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, raw)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sb strings.Builder
	sb.WriteString(resp.Status[:3] + "\n")
	resp.Header.Write(&sb)
	sb.WriteString("\n")
	sb.Write(b)
	return sb.String()
}
