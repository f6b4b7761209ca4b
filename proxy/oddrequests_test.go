package proxy

import (
	"bufio"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"sessionproxy/balancer"
	"sessionproxy/internal/rawtcp"
	"sessionproxy/sessionstore"
)

// Requests a client can craft to mislead a proxy, each sent as raw bytes
// on a socket: CONNECT, header names that are not tokens, an absolute
// https URI, a missing Content-Type, Expect over max_body.

func TestConnectCountsAgainstNothing(t *testing.T) {
	// Like Node without a "connect" listener: a CONNECT request gets no
	// answer, the connection is closed. Anything else gets 200.
	url, _ := rawBackend(t, nil, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil || req.Method == http.MethodConnect {
				return
			}
			io.Copy(io.Discard, req.Body)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	pool := newPool(t, "round_robin", &balancer.Health{MaxFails: 3, FailTimeout: time.Minute}, url)
	base := startProxy(t, &Proxy{Pool: pool}, ServerOptions{})
	for i := 0; i < 4; i++ {
		raw := rawRequest(t, base, "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n")
		if !strings.HasPrefix(raw, "400\n") || !strings.HasSuffix(raw, "\nmalformed request: CONNECT is not proxied\n") {
			t.Fatalf("CONNECT %d:\n%s", i, raw)
		}
	}
	b := pool.Backends[0]
	if b.Fails() != 0 || !b.Available() {
		t.Fatalf("backend after 4 CONNECTs: fails %d, available %v; want 0, true", b.Fails(), b.Available())
	}
	if raw := rawRequest(t, base, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); !strings.HasPrefix(raw, "200\n") {
		t.Fatalf("GET after the CONNECTs:\n%s", raw)
	}
}

func TestOddHeaderNamesDropped(t *testing.T) {
	// Python's http.server stops reading headers at a name with a space
	// in it, so a client that sent "X Foo: 1" first would hide from the
	// backend every header after it: X-Session-Id, X-Forwarded-For, the
	// rest. net/http (the capture backend) refuses such a request outright.
	cb := newCaptureBackend(t)
	store, err := sessionstore.New(sessionstore.Options{LocalSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	p := &Proxy{Pool: newPool(t, "round_robin", nil, cb.url), Sessions: &Sessions{Store: store}}
	base := startProxy(t, p, ServerOptions{})
	for _, name := range []string{"X Foo", "X Session-Attr-Role", "X.Session.Attr.Role", "X-Session-Attr-Role\"", "X-(a)"} {
		raw := rawRequest(t, base, "GET /p HTTP/1.1\r\nHost: x\r\n"+name+": admin\r\nX-Plain: p\r\n\r\n")
		if strings.HasPrefix(raw, "400\n") {
			continue // refused by fasthttp itself: nothing reached a backend
		}
		if !strings.HasPrefix(raw, "200\n") {
			t.Fatalf("%q:\n%s", name, raw)
		}
		h := cb.last(t).header
		if h.Get("X-Session-Id") == "" || h.Get("X-Forwarded-For") == "" || h.Get("X-Plain") != "p" {
			t.Errorf("%q: backend got %s, want X-Session-Id, X-Forwarded-For and X-Plain", name, headerNames(h))
		}
		if wire := cb.rawBytes(); strings.Contains(wire, name+":") {
			t.Errorf("%q reached the backend:\n%s", name, wire)
		}
	}
}

func TestHTTPSBackend(t *testing.T) {
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Host", r.Host)
		io.WriteString(w, r.URL.Path)
	}))
	t.Cleanup(ts.Close)
	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	pool := newPool(t, "round_robin", &balancer.Health{MaxFails: 1, FailTimeout: time.Minute}, ts.URL)
	p := &Proxy{Pool: pool}
	p.once.Do(p.init)
	p.clients[0].TLSConfig.RootCAs = roots
	base := startProxy(t, p, ServerOptions{})
	for _, target := range []string{"/a", "http://shop.example/a", "https://shop.example/a"} {
		raw := rawRequest(t, base, "GET "+target+" HTTP/1.1\r\nHost: shop.example\r\n\r\n")
		if !strings.HasPrefix(raw, "200\n") || !strings.HasSuffix(raw, "\n/a") || !strings.Contains(raw, "X-Host: shop.example") {
			t.Fatalf("GET %s to an https backend:\n%s", target, raw)
		}
	}
	if b := pool.Backends[0]; b.Fails() != 0 {
		t.Fatalf("backend fails %d, want 0", b.Fails())
	}
}

func TestAbsoluteHTTPSURIToPlainBackend(t *testing.T) {
	a := newTestBackend(t, "A")
	pool := newPool(t, "round_robin", nil, a.url())
	base := startProxy(t, &Proxy{Pool: pool}, ServerOptions{})
	raw := rawRequest(t, base, "GET https://evil.example/x HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	if !strings.HasPrefix(raw, "200\n") || a.lastHeader().Get("Host") != "shop.example" {
		t.Fatalf("absolute https URI: Host %q\n%s", a.lastHeader().Get("Host"), raw)
	}
	if pool.Backends[0].Fails() != 0 {
		t.Fatalf("backend charged %d fails", pool.Backends[0].Fails())
	}
}

func TestNoContentTypeInvented(t *testing.T) {
	cb := newCaptureBackend(t)
	base := startProxy(t, &Proxy{Pool: newPool(t, "round_robin", nil, cb.url)}, ServerOptions{})
	for _, body := range []string{"Content-Length: 3\r\n\r\nabc", "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"} {
		if raw := rawRequest(t, base, "POST /x HTTP/1.1\r\nHost: x\r\n"+body); !strings.HasPrefix(raw, "200\n") {
			t.Fatalf("response:\n%s", raw)
		}
		r := cb.last(t)
		if ct, ok := r.header["Content-Type"]; ok || r.body != "abc" {
			t.Errorf("backend got Content-Type %q and body %q; want none and abc", ct, r.body)
		}
	}
	raw := rawRequest(t, base, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 3\r\n\r\nabc")
	if ct := cb.last(t).header.Get("Content-Type"); !strings.HasPrefix(raw, "200\n") || ct != "text/csv" {
		t.Errorf("backend got Content-Type %q, want the client's text/csv", ct)
	}
}

func TestExpectContinueOverMaxBody(t *testing.T) {
	a := newTestBackend(t, "A")
	base := startProxy(t, &Proxy{Pool: newPool(t, "round_robin", nil, a.url())}, ServerOptions{MaxBody: 1 << 20})
	c := rawtcp.Dial(t, strings.TrimPrefix(base, "http://"))
	defer c.Close()
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	var resp fasthttp.Response
	// The first answer must be the final one: no 100 Continue that would
	// invite the client to send 2 MiB for nothing.
	line, err := br.Peek(12)
	if err != nil || string(line) != "HTTP/1.1 413" {
		t.Fatalf("first answer %q (%v), want HTTP/1.1 413", line, err)
	}
	if err := resp.Read(br); err != nil || string(resp.Body()) != "request body too large\n" {
		t.Fatalf("413 body %q (%v)", resp.Body(), err)
	}
	if a.hits.Load() != 0 {
		t.Fatalf("backend saw %d requests", a.hits.Load())
	}
	// Under the limit, the client is still told to go on.
	c2 := rawtcp.Dial(t, strings.TrimPrefix(base, "http://"))
	defer c2.Close()
	io.WriteString(c2, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
	br2 := bufio.NewReader(c2)
	if line, err := br2.ReadString('\n'); err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("small body with Expect: first line %q (%v)", line, err)
	}
	br2.ReadString('\n')
	io.WriteString(c2, "hi")
	if err := resp.Read(br2); err != nil || resp.StatusCode() != 200 {
		t.Fatalf("small body with Expect: %d (%v)", resp.StatusCode(), err)
	}
}

func TestUserinfoInHostRefused(t *testing.T) {
	// A host may not carry userinfo (RFC 9110, sections 4.2.4 and 7.2).
	// fasthttp reads "u:p@" in Host, or in an absolute-form target, as
	// credentials and writes them to the backend as an Authorization
	// header the client never sent (past a headers.request rule that
	// removes Authorization, since fasthttp adds it as it writes), and a
	// host route for "x" would not match "u:p@x" while the backend reads
	// that Host as x. Each is refused before any route or backend.
	cb := newCaptureBackend(t)
	store, err := sessionstore.New(sessionstore.Options{LocalSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	p := &Proxy{Pool: newPool(t, "round_robin", nil, cb.url), Sessions: &Sessions{Store: store}}
	for name, base := range map[string]string{
		"router": startHandler(t, &Router{Default: p}, ServerOptions{}),
		"proxy":  startProxy(t, p, ServerOptions{}),
	} {
		for _, raw := range []string{
			"GET /a HTTP/1.1\r\nHost: u:p@x\r\n\r\n",
			"GET /a HTTP/1.1\r\nHost: evil@x\r\n\r\n",
			"GET /a HTTP/1.1\r\nHost: @x\r\n\r\n",
			"GET http://u:p@x/a HTTP/1.1\r\nHost: x\r\n\r\n",
			"GET http://u@x/a HTTP/1.1\r\nHost: x\r\n\r\n",
			"GET /ws HTTP/1.1\r\nHost: u:p@x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
				"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
		} {
			got := rawRequest(t, base, raw)
			if !strings.HasPrefix(got, "400\n") {
				t.Errorf("%s: %q:\n%s", name, raw, got)
			}
		}
		if s := cb.rawBytes(); s != "" {
			t.Fatalf("%s: the backend got:\n%s", name, s)
		}
	}
	// The same requests without userinfo go on, with no Authorization.
	base := startHandler(t, &Router{Default: p}, ServerOptions{})
	for _, raw := range []string{"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "GET http://x/a HTTP/1.1\r\nHost: y\r\n\r\n"} {
		if got := rawRequest(t, base, raw); !strings.HasPrefix(got, "200\n") {
			t.Fatalf("%q:\n%s", raw, got)
		}
		if h := cb.last(t).header; h.Get("Authorization") != "" {
			t.Errorf("%q: backend got Authorization %q", raw, h.Get("Authorization"))
		}
	}
}

func TestSessionCookieFirstWellFormed(t *testing.T) {
	// A user moved from Tomcat (cookie: JSESSIONID) still holds Tomcat's
	// JSESSIONID for Path=/app, which the browser sends before the
	// proxy's Path=/ one: the first value, no ID, stood for "no session"
	// and the user could not stay logged in on /app. Raw bytes: the
	// order of the two values is the test.
	cb := newCaptureBackend(t)
	store, err := sessionstore.New(sessionstore.Options{LocalSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	p := &Proxy{Pool: newPool(t, "round_robin", nil, cb.url), Sessions: &Sessions{Store: store, Cookie: "JSESSIONID"}}
	base := startProxy(t, p, ServerOptions{})
	login := rawRequest(t, base, "GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
	_, rest, _ := strings.Cut(login, "Set-Cookie: JSESSIONID=")
	id, _, _ := strings.Cut(rest, ";")
	if !sessionstore.ValidID([]byte(id)) {
		t.Fatalf("login gave no session cookie:\n%s", login)
	}
	for _, cookie := range []string{
		"JSESSIONID=4F3A6C0E8B1D2F7A9C5E3B1D0F2A4C6E.node1; JSESSIONID=" + id,
		"JSESSIONID=; JSESSIONID=x; other=1; JSESSIONID=" + id,
		"JSESSIONID=" + id + "; JSESSIONID=" + string(sessionstore.AppendNewID(nil)),
	} {
		got := rawRequest(t, base, "GET /app/ HTTP/1.1\r\nHost: x\r\nCookie: "+cookie+"\r\n\r\n")
		if !strings.HasPrefix(got, "200\n") {
			t.Fatalf("%s:\n%s", cookie, got)
		}
		if h := cb.last(t).header; h.Get("X-Session-Id") != id || h.Get("X-Session-Attr-User") != "bob" {
			t.Errorf("Cookie: %s: backend got session %q user %q, want %q bob", cookie, h.Get("X-Session-Id"), h.Get("X-Session-Attr-User"), id)
		}
	}
	// A malformed value alone still means no session, without a lookup.
	got := rawRequest(t, base, "GET /app/ HTTP/1.1\r\nHost: x\r\nCookie: JSESSIONID=x\r\n\r\n")
	if h := cb.last(t).header; !strings.HasPrefix(got, "200\n") || h.Get("X-Session-Attr-User") != "" || h.Get("X-Session-New") != "1" {
		t.Fatalf("malformed alone: %s\n%v", got, h)
	}
}

func TestSessionCookieIDAllocatesNothing(t *testing.T) {
	s := &Sessions{Cookie: "SPSESSIONID"}
	var h fasthttp.RequestHeader
	h.Set("Cookie", "_ga=GA1.2.3; SPSESSIONID=x; theme=dark")
	if n := testing.AllocsPerRun(100, func() { s.cookieID(&h) }); n != 0 {
		t.Fatalf("cookieID allocates %v times a request", n)
	}
}
