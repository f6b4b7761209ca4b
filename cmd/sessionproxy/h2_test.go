package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"sessionproxy/internal/testutil"
	"sessionproxy/internal/tlstest"
)

// h2Proxy is a sessionproxy with the default configuration plus a TLS
// listener, and a client that speaks HTTP/2 to it.
type h2Proxy struct {
	p      *process
	tls    string // listen_tls address
	client *http.Client
	ca     *tlstest.CA
}

// startH2 starts the binary bin (the race build when empty) with backend
// as its only backend and extra appended to the configuration.
func startH2(t *testing.T, bin, backend, extra string) *h2Proxy {
	t.Helper()
	ca := tlstest.NewCA(t)
	cert, key := ca.Leaf(t, t.TempDir(), "h2.test")
	tlsAddr := freeAddr(t)
	conf := fmt.Sprintf("listen: '{{listen}}'\nadmin: '{{admin}}'\nlisten_tls: '%s'\ntls:\n  certificates:\n    - {cert: '%s', key: '%s'}\nbackends:\n  - url: '%s'\n%s",
		tlsAddr, cert, key, backend, extra)
	if bin == "" {
		bin = binary
	}
	p := startBinary(t, bin, conf)
	testutil.WaitFor(t, 10*time.Second, "the TLS listener", func() bool {
		c, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: ca.Pool, ServerName: "h2.test"})
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: "h2.test"}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &h2Proxy{p: p, tls: tlsAddr, client: &http.Client{Transport: tr}, ca: ca}
}

func (h *h2Proxy) url(path string) string { return "https://" + h.tls + path }

// do sends a request over h2 and returns the answer with its body read.
func (h *h2Proxy) do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: body: %v", req.Method, req.URL, err)
	}
	if resp.ProtoMajor != 2 {
		t.Fatalf("%s %s: answered over %s, want HTTP/2", req.Method, req.URL, resp.Proto)
	}
	return resp, string(body)
}

func (h *h2Proxy) get(t *testing.T, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url(path), nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	return h.do(t, req)
}

// sessionEcho is a backend that stores ?set=value in the session and
// answers with what it was given: the session attribute, the cookie
// header and the forwarding headers.
func sessionEcho(t *testing.T, seen *atomic.Int64) *httptest.Server {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen != nil {
			seen.Add(1)
		}
		if v := r.URL.Query().Get("set"); v != "" {
			w.Header().Set("X-Session-Set-user", v)
		}
		fmt.Fprintf(w, "user=%s cookie=%s xff=%s realip=%s proto=%s",
			r.Header.Get("X-Session-Attr-user"), strings.Join(r.Header.Values("Cookie"), "|"),
			strings.Join(r.Header.Values("X-Forwarded-For"), "|"), r.Header.Get("X-Real-Ip"), r.Header.Get("X-Forwarded-Proto"))
	}))
	t.Cleanup(be.Close)
	return be
}

// TestH2SessionsAndCookies: over h2 (default http2: true) a session is
// created, its cookie set, and read back; a cookie sent as several
// `cookie` fields (as browsers do over h2) is joined before the lookup;
// X-Session-* from the client never reach the backend.
func TestH2SessionsAndCookies(t *testing.T) {
	be := sessionEcho(t, nil)
	h := startH2(t, "", be.URL, "")
	resp, body := h.get(t, "/?set=ann")
	sc := resp.Header.Get("Set-Cookie")
	if !strings.HasPrefix(sc, "SPSESSIONID=") || !strings.Contains(body, "proto=https") {
		t.Fatalf("first request: cookie %q body %q, want a session cookie and X-Forwarded-Proto https", sc, body)
	}
	cookie := strings.SplitN(sc, ";", 2)[0]
	_, body = h.get(t, "/", "Cookie", cookie, "X-Session-Attr-user", "mallory")
	if !strings.Contains(body, "user=ann ") {
		t.Fatalf("second request: %q, want the session's user=ann", body)
	}

	// Several cookie fields, sent as raw frames so that they stay apart.
	c, fr := h2Dial(t, h.tls, h.ca)
	defer c.Close()
	h2Send(t, fr, 1, true, ":method", "GET", ":scheme", "https", ":authority", "h2.test", ":path", "/",
		"cookie", "a=1", "cookie", cookie, "cookie", "b=2")
	status, body, rst := h2Read(t, fr, 1)
	if status != "200" || rst != 0 {
		t.Fatalf("several cookie fields: status %q reset %v", status, rst)
	}
	if want := "cookie=a=1; " + cookie + "; b=2 "; !strings.Contains(body, "user=ann ") || !strings.Contains(body, want) {
		t.Fatalf("several cookie fields: backend saw %q, want user=ann and one line %q", body, want)
	}
}

// TestH2Hygiene: requests malformed under RFC 9113 §8.2-8.3 are refused
// (a stream error or 400) and never reach the backend: CR, LF or NUL in a
// value, connection-specific fields, Upgrade, a space in :path, an
// upper-case name. A well-formed request on the same connection is then
// answered: the refusals cost nobody else a request.
func TestH2Hygiene(t *testing.T) {
	var seen atomic.Int64
	be := sessionEcho(t, &seen)
	h := startH2(t, "", be.URL, "")
	bad := map[string][]string{
		"CR LF in a value":       {"x-a", "1\r\nX-Injected: 1"},
		"LF in a value":          {"x-a", "1\nX-Injected: 1"},
		"NUL in a value":         {"x-a", "1\x00"},
		"connection":             {"connection", "close"},
		"keep-alive":             {"keep-alive", "300"},
		"proxy-connection":       {"proxy-connection", "keep-alive"},
		"transfer-encoding":      {"transfer-encoding", "chunked"},
		"upgrade":                {"upgrade", "h2c"},
		"upgrade websocket":      {"upgrade", "websocket"},
		"te other than trailers": {"te", "gzip"},
		"upper-case name":        {"X-Upper", "1"},
	}
	c, fr := h2Dial(t, h.tls, h.ca)
	defer c.Close()
	id := uint32(1)
	for name, field := range bad {
		h2Send(t, fr, id, true, ":method", "GET", ":scheme", "https", ":authority", "h2.test", ":path", "/", field[0], field[1])
		status, _, rst := h2Read(t, fr, id)
		if rst == 0 && status != "400" {
			t.Errorf("%s: status %q, want a refusal (RST_STREAM or 400)", name, status)
		}
		id += 2
	}
	for name, path := range map[string]string{"space in :path": "/a b", "CR LF in :path": "/a\r\nX: 1"} {
		h2Send(t, fr, id, true, ":method", "GET", ":scheme", "https", ":authority", "h2.test", ":path", path)
		status, _, rst := h2Read(t, fr, id)
		if rst == 0 && status != "400" {
			t.Errorf("%s: status %q, want a refusal", name, status)
		}
		id += 2
	}
	if n := seen.Load(); n != 0 {
		t.Errorf("the backend got %d of the malformed requests", n)
	}
	h2Send(t, fr, id, true, ":method", "GET", ":scheme", "https", ":authority", "h2.test", ":path", "/ok")
	if status, _, rst := h2Read(t, fr, id); status != "200" {
		t.Fatalf("a good request after the bad ones: status %q reset %v", status, rst)
	}
}

// TestH2RoutesStaticAndLimits: a route to another upstream, a static file
// (with a range) and max_body (413) over h2.
func TestH2RoutesStaticAndLimits(t *testing.T) {
	be := sessionEcho(t, nil)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "api "+r.URL.Path)
	}))
	t.Cleanup(api.Close)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "static"), 0o755)
	os.WriteFile(filepath.Join(dir, "static", "app.css"), []byte("body{color:red}"), 0o644)
	h := startH2(t, "", be.URL, fmt.Sprintf("max_body: 1KiB\nupstreams:\n  api:\n    backends:\n      - url: '%s'\nroutes:\n  - match: {path: '/api/'}\n    upstream: api\n    rewrite_prefix: '/'\n  - match: {path: '/static/'}\n    static: '%s'\n", api.URL, dir))
	if _, body := h.get(t, "/api/users"); body != "api /users" {
		t.Errorf("route: %q, want %q", body, "api /users")
	}
	if resp, body := h.get(t, "/static/app.css"); resp.StatusCode != 200 || body != "body{color:red}" {
		t.Errorf("static: %d %q", resp.StatusCode, body)
	}
	if resp, body := h.get(t, "/static/app.css", "Range", "bytes=0-3"); resp.StatusCode != 206 || body != "body" {
		t.Errorf("static range: %d %q, want 206 %q", resp.StatusCode, body, "body")
	}
	req, _ := http.NewRequest(http.MethodPost, h.url("/upload"), strings.NewReader(strings.Repeat("x", 4096)))
	if resp, _ := h.do(t, req); resp.StatusCode != 413 {
		t.Errorf("a 4 KiB body over max_body 1KiB: %d, want 413", resp.StatusCode)
	}
	// Without a length (streamed): refused once it passes the limit.
	req, _ = http.NewRequest(http.MethodPost, h.url("/upload"), struct{ io.Reader }{strings.NewReader(strings.Repeat("x", 4096))})
	if resp, _ := h.do(t, req); resp.StatusCode != 413 {
		t.Errorf("a streamed 4 KiB body over max_body 1KiB: %d, want 413", resp.StatusCode)
	}
}

// TestH2RealIP: the h2 client's address is what the request path sees:
// without real_ip_from X-Forwarded-For ends with the TCP peer; with it, the
// client named by a trusted peer's X-Forwarded-For is X-Real-IP.
func TestH2RealIP(t *testing.T) {
	be := sessionEcho(t, nil)
	h := startH2(t, "", be.URL, "")
	if _, body := h.get(t, "/", "X-Forwarded-For", "203.0.113.9"); !strings.Contains(body, "xff=203.0.113.9, 127.0.0.1 ") || !strings.Contains(body, "realip=127.0.0.1 ") {
		t.Errorf("without real_ip_from: %q, want xff=203.0.113.9, 127.0.0.1 and realip=127.0.0.1", body)
	}
	h = startH2(t, "", be.URL, "real_ip_from: ['127.0.0.1/32']\n")
	if _, body := h.get(t, "/", "X-Forwarded-For", "203.0.113.9"); !strings.Contains(body, "realip=203.0.113.9 ") {
		t.Errorf("with real_ip_from: %q, want realip=203.0.113.9", body)
	}
	testutil.WaitFor(t, 10*time.Second, "the access log naming the client 203.0.113.9", func() bool {
		return strings.Contains(h.p.stderr(), "203.0.113.9")
	})
}

// TestH2SSE: an event stream over h2 reaches the client event by event.
func TestH2SSE(t *testing.T) {
	next := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-time.After(10 * time.Second):
				return
			}
		}
	}))
	t.Cleanup(be.Close)
	h := startH2(t, "", be.URL, "")
	resp, err := h.client.Get(h.url("/events"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("answered over %s", resp.Proto)
	}
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		got := make(chan string, 1)
		go func() {
			line, _ := br.ReadString('\n')
			br.ReadString('\n')
			got <- line
		}()
		select {
		case line := <-got:
			if want := fmt.Sprintf("data: %d\n", i); line != want {
				t.Fatalf("event %d: %q, want %q", i, line, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d did not arrive while the backend waited: not flushed", i)
		}
		next <- struct{}{}
	}
}

// TestH2StreamingMemory: a 64 MiB download and a 64 MiB upload over h2,
// through the binary built without the race detector, arrive intact and
// grow the proxy's peak RSS by less than 48 MiB.
func TestH2StreamingMemory(t *testing.T) {
	const size, limitKiB = 64 << 20, 48 << 10
	sent := make(chan string, 1)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		switch {
		case r.URL.Path == "/warm":
			io.WriteString(w, "ok")
		case r.Method == http.MethodGet:
			w.Header().Set("Content-Length", fmt.Sprint(size))
			io.Copy(io.MultiWriter(w, h), io.LimitReader(newBlocks(t), size))
			sent <- fmt.Sprintf("%x", h.Sum(nil))
		default:
			n, err := io.Copy(h, r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
		}
	}))
	t.Cleanup(app.Close)
	h := startH2(t, plainBinary(t), app.URL, "max_body: 1GiB\n")
	pid := h.p.cmd.Process.Pid
	h.get(t, "/warm")
	before := procStatusKiB(t, pid, "VmHWM:")

	resp, err := h.client.Get(h.url("/download"))
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	resp.Body.Close()
	if err != nil || n != size || resp.ProtoMajor != 2 {
		t.Fatalf("download: %d of %d bytes over %s, %v", n, size, resp.Proto, err)
	}
	if sum := fmt.Sprintf("%x", got.Sum(nil)); sum != <-sent {
		t.Fatal("download arrived with another checksum than the backend sent")
	}
	sum := sha256.New()
	src := io.TeeReader(io.LimitReader(newBlocks(t), size), sum)
	req, _ := http.NewRequest(http.MethodPut, h.url("/upload"), struct{ io.Reader }{src})
	resp, answer := h.do(t, req)
	if want := fmt.Sprintf("%d %x", size, sum.Sum(nil)); resp.StatusCode != 200 || answer != want {
		t.Fatalf("upload: %d %q, want 200 %q", resp.StatusCode, answer, want)
	}
	after := procStatusKiB(t, pid, "VmHWM:")
	t.Logf("proxy VmHWM %d KiB before, %d KiB after 2 x 64 MiB over h2: +%d KiB", before, after, after-before)
	if after-before >= limitKiB {
		t.Fatalf("peak RSS grew by %d KiB streaming 64 MiB each way, want under %d", after-before, limitKiB)
	}
}

// h2Dial opens a TLS connection that negotiated h2 and exchanges the
// preface and settings.
func h2Dial(t *testing.T, addr string, ca *tlstest.CA) (*tls.Conn, *http2.Framer) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool, ServerName: "h2.test", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN negotiated %q, want h2", p)
	}
	c.Write([]byte(http2.ClientPreface))
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = 1 << 20
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c, fr
}

// h2Block hpack-encodes fields given as name, value pairs.
func h2Block(fields ...string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return buf.Bytes()
}

// h2Send writes one HEADERS frame.
func h2Send(t *testing.T, fr *http2.Framer, id uint32, end bool, fields ...string) {
	t.Helper()
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h2Block(fields...), EndStream: end, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
}

// h2Read reads frames until stream id ends: its :status and body, or the
// code it was reset with. A GOAWAY or a closed connection fails the test.
func h2Read(t *testing.T, fr *http2.Framer, id uint32) (status, body string, rst http2.ErrCode) {
	t.Helper()
	var b strings.Builder
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("stream %d: %v", id, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			fr.WritePing(true, f.Data)
		case *http2.GoAwayFrame:
			t.Fatalf("stream %d: GOAWAY %v", id, f.ErrCode)
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return status, b.String(), f.ErrCode
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				if s := f.PseudoValue("status"); s != "" {
					status = s
				}
				if f.StreamEnded() {
					return status, b.String(), 0
				}
			}
		case *http2.DataFrame:
			if f.StreamID == id {
				b.Write(f.Data())
				if n := len(f.Data()); n > 0 {
					fr.WriteWindowUpdate(0, uint32(n))
					fr.WriteWindowUpdate(id, uint32(n))
				}
				if f.StreamEnded() {
					return status, b.String(), 0
				}
			}
		}
	}
}
