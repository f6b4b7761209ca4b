package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"sessionproxy/balancer"
	"sessionproxy/internal/rawtcp"
	"sessionproxy/sessionstore"
)

// The tests in this file send each attack as raw bytes on a TCP socket, as
// an attacker would, to a proxy in front of real backends on loopback.

// rawBackend serves every accepted connection with serve on ln, or on a
// loopback port when ln is nil, for backend behaviour net/http would
// never produce. It returns the backend's URL and a count of the
// connections it accepted.
func rawBackend(t *testing.T, ln net.Listener, serve func(net.Conn)) (string, *atomic.Int64) {
	t.Helper()
	var s *rawtcp.Server
	if ln == nil {
		s = rawtcp.Serve(t, serve)
	} else {
		s = rawtcp.ServeOn(t, ln, serve)
	}
	if _, ok := ln.(tlsListener); ok {
		return "https://" + s.Addr, &s.Accepted
	}
	return s.URL(), &s.Accepted
}

// tlsListener marks a listener from tls.NewListener for rawBackend.
type tlsListener struct{ net.Listener }

// seenRequest is what a captureBackend parsed from one request.
type seenRequest struct {
	header  http.Header
	trailer http.Header
	body    string
}

// captureBackend parses each request with net/http's reader, an
// independent parser, keeps it with the raw bytes it arrived in, and
// answers 200 with the path as body; /login also sets a session attribute.
type captureBackend struct {
	url string

	mu   sync.Mutex
	reqs []seenRequest
	raw  bytes.Buffer
}

func newCaptureBackend(t *testing.T) *captureBackend {
	t.Helper()
	cb := &captureBackend{}
	cb.url, _ = rawBackend(t, nil, func(c net.Conn) {
		br := bufio.NewReader(io.TeeReader(c, writerFunc(func(p []byte) (int, error) {
			cb.mu.Lock()
			defer cb.mu.Unlock()
			return cb.raw.Write(p)
		})))
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			body, _ := io.ReadAll(req.Body) // fills req.Trailer
			cb.mu.Lock()
			cb.reqs = append(cb.reqs, seenRequest{req.Header, req.Trailer, string(body)})
			cb.mu.Unlock()
			extra := ""
			if req.URL.Path == "/login" {
				extra = "X-Session-Set-User: bob\r\n"
			}
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s", extra, len(req.URL.Path), req.URL.Path)
		}
	})
	return cb
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (cb *captureBackend) last(t *testing.T) seenRequest {
	t.Helper()
	cb.mu.Lock()
	defer cb.mu.Unlock()
	if len(cb.reqs) == 0 {
		t.Fatal("no request reached the backend")
	}
	return cb.reqs[len(cb.reqs)-1]
}

func (cb *captureBackend) rawBytes() string {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	return cb.raw.String()
}

// headerNames lists the names in h, lower case, for messages.
func headerNames(h http.Header) string {
	var names []string
	for k := range h {
		names = append(names, strings.ToLower(k))
	}
	return strings.Join(names, ",")
}

func TestRequestTrailersNeverForwarded(t *testing.T) {
	cb := newCaptureBackend(t)
	p := &Proxy{Pool: newPool(t, "round_robin", nil, cb.url)}
	base := startProxy(t, p, ServerOptions{})
	tests := []struct{ name, announce string }{
		{"announced", "Trailer: X-Session-Attr-Role, X-Checksum, X-Trace, User-Agent\r\n"},
		{"unannounced", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := rawRequest(t, base, "POST /x HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n"+
				tt.announce+"X-Trace: upfront\r\nUser-Agent: curl/8\r\n\r\n"+
				"5\r\nhello\r\n0\r\n"+
				"X-Session-Attr-Role: admin\r\nX-Checksum: abc\r\nX-Trace: trailer\r\nUser-Agent: evil\r\n\r\n")
			if !strings.HasPrefix(raw, "200\n") || !strings.HasSuffix(raw, "\n/x") {
				t.Fatalf("response:\n%s", raw)
			}
			r := cb.last(t)
			if r.body != "hello" {
				t.Errorf("backend got body %q, want hello", r.body)
			}
			for _, k := range []string{"X-Session-Attr-Role", "X-Checksum", "Trailer"} {
				if v, ok := r.header[http.CanonicalHeaderKey(k)]; ok {
					t.Errorf("trailer %s reached the backend as a header: %q", k, v)
				}
			}
			if len(r.trailer) != 0 {
				t.Errorf("backend got trailers %v", r.trailer)
			}
			// Header fields that share a name with a trailer are the
			// client's real headers and stay.
			if v := r.header.Values("X-Trace"); len(v) != 1 || v[0] != "upfront" {
				t.Errorf("backend got X-Trace %q, want only the upfront field", v)
			}
			if v := r.header.Values("User-Agent"); len(v) != 1 || v[0] != "curl/8" {
				t.Errorf("backend got User-Agent %q, want only the upfront field", v)
			}
			if raw := strings.ToLower(cb.rawBytes()); strings.Contains(raw, "admin") || strings.Contains(raw, "evil") {
				t.Errorf("a trailer value reached the backend on the wire:\n%s", raw)
			}
		})
	}
}

func TestTrailerCannotForgeSessionHeaders(t *testing.T) {
	cb := newCaptureBackend(t)
	store, err := sessionstore.New(sessionstore.Options{LocalSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	p := &Proxy{Pool: newPool(t, "round_robin", nil, cb.url), Sessions: &Sessions{Store: store}}
	base := startProxy(t, p, ServerOptions{})

	login := rawRequest(t, base, "GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
	m := regexp.MustCompile(`Set-Cookie: SPSESSIONID=([^;]+);`).FindStringSubmatch(login)
	if m == nil {
		t.Fatalf("no session cookie:\n%s", login)
	}
	id := m[1]
	const forged = "X-Session-New: 1\r\nX-Session-Id: forged\r\nX-Session-Attr-Role: admin\r\nX-Session-Created: 1\r\n"
	for _, cookie := range []string{"Cookie: SPSESSIONID=" + id + "\r\n", ""} {
		for _, announce := range []string{"Trailer: X-Session-New, X-Session-Id, X-Session-Attr-Role, X-Session-Created\r\n", ""} {
			raw := rawRequest(t, base, "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"+cookie+announce+
				"\r\n2\r\nhi\r\n0\r\n"+forged+"\r\n")
			if !strings.HasPrefix(raw, "200\n") {
				t.Fatalf("response:\n%s", raw)
			}
			h := cb.last(t).header
			ids := h.Values("X-Session-Id")
			if len(ids) != 1 || ids[0] == "forged" {
				t.Errorf("cookie %q: backend got X-Session-Id %q", cookie, ids)
			}
			if v := h.Values("X-Session-Attr-Role"); len(v) != 0 {
				t.Errorf("cookie %q: backend got X-Session-Attr-Role %q", cookie, v)
			}
			newFlags := h.Values("X-Session-New")
			switch {
			case cookie != "" && (len(newFlags) != 0 || ids[0] != id || h.Get("X-Session-Attr-User") != "bob"):
				t.Errorf("existing session: backend got X-Session-New %q, id %q, user %q; want none, %s, bob",
					newFlags, ids, h.Get("X-Session-Attr-User"), id)
			case cookie == "" && (len(newFlags) != 1 || newFlags[0] != "1"):
				t.Errorf("new session: backend got X-Session-New %q, want the proxy's one", newFlags)
			}
			if c := h.Values("X-Session-Created"); len(c) != 1 || c[0] == "1" {
				t.Errorf("cookie %q: backend got X-Session-Created %q", cookie, c)
			}
		}
	}
}

func TestUnderscoreHeaders(t *testing.T) {
	const attack = "GET / HTTP/1.1\r\nHost: x\r\nX_Session_Attr_User: admin\r\nx_session-id: forged\r\n" +
		"X-Session_New: 1\r\nX-Api_Key: k1\r\nX-Plain: p\r\n\r\n"
	tests := []struct {
		underscores bool
		want        []string // names that must arrive
		gone        []string // names that must not
	}{
		{false, []string{"X-Plain"}, []string{"X_Session_Attr_User", "x_session-id", "X-Session_New", "X-Api_Key"}},
		{true, []string{"X-Plain", "X-Api_Key"}, []string{"X_Session_Attr_User", "x_session-id", "X-Session_New"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("underscores=", tt.underscores), func(t *testing.T) {
			cb := newCaptureBackend(t)
			p := &Proxy{Pool: newPool(t, "round_robin", nil, cb.url), Settings: Settings{UnderscoresInHeaders: tt.underscores}}
			if raw := rawRequest(t, startProxy(t, p, ServerOptions{}), attack); !strings.HasPrefix(raw, "200\n") {
				t.Fatalf("response:\n%s", raw)
			}
			h := cb.last(t).header
			find := func(name string) (string, bool) {
				for k, v := range h {
					if strings.EqualFold(k, name) {
						return v[0], true
					}
				}
				return "", false
			}
			for _, k := range tt.want {
				if _, ok := find(k); !ok {
					t.Errorf("%s did not reach the backend (got %s)", k, headerNames(h))
				}
			}
			for _, k := range tt.gone {
				if v, ok := find(k); ok {
					t.Errorf("%s: %q reached the backend", k, v)
				}
			}
			for k := range h {
				if strings.HasPrefix(strings.ReplaceAll(strings.ToLower(k), "_", "-"), "x-session-") {
					t.Errorf("backend got %s", k)
				}
			}
		})
	}
}
func TestUnforwardableRequestCountsAgainstNothing(t *testing.T) {
	a := newTestBackend(t, "A")
	pool := newPool(t, "round_robin", &balancer.Health{MaxFails: 3, FailTimeout: time.Minute}, a.url())
	p := &Proxy{Pool: pool}
	base := startProxy(t, p, ServerOptions{})
	for i := 0; i < 3; i++ {
		raw := rawRequest(t, base, "GET / HTTP/1.0\r\n\r\n")
		if !strings.HasPrefix(raw, "400\n") || !strings.HasSuffix(raw, "\nmalformed request: no Host header\n") {
			t.Fatalf("HTTP/1.0 without Host, try %d:\n%s", i, raw)
		}
	}
	if raw := rawRequest(t, base, "GET / HTTP/1.1\r\n\r\n"); !strings.HasPrefix(raw, "400\n") {
		t.Fatalf("HTTP/1.1 without Host:\n%s", raw)
	}
	if r := get(t, base+"/"); r.status != 200 || r.header.Get("X-Backend") != "A" {
		t.Fatalf("normal GET after the attack: %d %q", r.status, r.body)
	}
	b := pool.Backends[0]
	if b.Fails() != 0 || !b.Available() || a.hits.Load() != 1 {
		t.Fatalf("backend after the attack: fails %d, available %v, hits %d; want 0, true, 1",
			b.Fails(), b.Available(), a.hits.Load())
	}
	// An absolute URI names the host: such a request can be forwarded.
	if raw := rawRequest(t, base, "GET http://shop.example/p HTTP/1.0\r\n\r\n"); !strings.HasPrefix(raw, "200\n") ||
		a.lastHeader().Get("Host") != "shop.example" {
		t.Fatalf("HTTP/1.0 with an absolute URI: Host %q\n%s", a.lastHeader().Get("Host"), raw)
	}
}

func TestClassifyBackendsFault(t *testing.T) {
	var noHost fasthttp.Request
	noHost.SetRequestURI("/")
	tests := []struct {
		name   string
		err    error
		status int
		fault  bool
	}{
		{"refused", dialErr(t), 502, true},
		{"dial timeout", fasthttp.ErrDialTimeout, 502, true},
		{"response timeout", fasthttp.ErrTimeout, 504, true},
		{"closed", fasthttp.ErrConnectionClosed, 502, true},
		{"reset", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, 502, true},
		{"invalid response", errors.New("error when reading response headers: cannot find whitespace"), 502, true},
		{"no Host", noHost.Write(bufio.NewWriter(io.Discard)), 400, false},
		{"pool full", fasthttp.ErrNoFreeConns, 502, false},
		{"stale pooled connection", errStaleConn, 502, false},
		{"scheme", fasthttp.ErrHostClientRedirectToDifferentScheme, 502, false},
	}
	for _, tt := range tests {
		perr, f := classify(tt.err)
		if perr.Status != tt.status || f.backendsFault() != tt.fault {
			t.Errorf("%s (%v): %d, backend's fault %v; want %d, %v", tt.name, tt.err, perr.Status,
				f.backendsFault(), tt.status, tt.fault)
		}
	}
}

// dialErr returns the error of connecting to a port nothing listens on.
func dialErr(t *testing.T) error {
	_, err := net.Dial("tcp", freePort(t))
	if err == nil {
		t.Fatal("dial to a free port succeeded")
	}
	return err
}

func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
