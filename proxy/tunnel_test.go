package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/valyala/fasthttp"

	"sessionproxy/internal/rawtcp"
)

// wsBackend is a real WebSocket server on a loopback port: it greets each
// connection with its name and the session's user attribute, then echoes
// every message. It records the handshakes it saw. Other requests get
// sessionApp.
type wsBackend struct {
	name string
	srv  *httptest.Server

	mu         sync.Mutex
	handshakes []http.Header
	set        http.Header // added to every 101
	closeAfter int         // close after this many echoes; 0: never
	ended      chan struct{}
}

func newWSBackend(t *testing.T, name string) *wsBackend {
	t.Helper()
	b := &wsBackend{name: name, ended: make(chan struct{}, 100)}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *wsBackend) serve(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		sessionApp(b.name)(w, r)
		return
	}
	b.mu.Lock()
	b.handshakes = append(b.handshakes, r.Header.Clone())
	set, closeAfter := b.set, b.closeAfter
	b.mu.Unlock()
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	c, err := up.Upgrade(w, r, set)
	if err != nil {
		return // Upgrade has answered 400
	}
	defer func() { c.Close(); b.ended <- struct{}{} }()
	greeting := b.name + ": hello " + r.Header.Get("X-Session-Attr-User")
	if c.WriteMessage(websocket.TextMessage, []byte(greeting)) != nil {
		return
	}
	for n := 0; closeAfter == 0 || n < closeAfter; n++ {
		kind, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if c.WriteMessage(kind, msg) != nil {
			return
		}
	}
}

func (b *wsBackend) lastHandshake() http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.handshakes) == 0 {
		return nil
	}
	return b.handshakes[len(b.handshakes)-1]
}

func (b *wsBackend) url() string { return b.srv.URL }

// dialWS opens a WebSocket through the proxy at base and reads its
// greeting.
func dialWS(t *testing.T, d *websocket.Dialer, base string, hdr http.Header) (*websocket.Conn, *http.Response, string) {
	t.Helper()
	if d == nil {
		d = &websocket.Dialer{}
	}
	d.HandshakeTimeout = 5 * time.Second
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(base, "http")+"/chat", hdr)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial through the proxy: %v (status %d)", err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c, resp, readMsg(t, c)
}

func readMsg(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("reading through the tunnel: %v", err)
	}
	return string(msg)
}

func echo(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("writing through the tunnel: %v", err)
	}
	if got := readMsg(t, c); got != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

// waitClosed waits until c reports the tunnel closed.
func waitClosed(t *testing.T, c *websocket.Conn, within time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("tunnel still open after %v", within)
		}
		return
	}
}

func tunnelsActive(p *Proxy) string {
	var b bytes.Buffer
	writeMetrics(&b, p)
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(l, "sessionproxy_tunnels_active ") {
			return strings.TrimPrefix(l, "sessionproxy_tunnels_active ")
		}
	}
	return "missing"
}

func waitTunnels(t *testing.T, p *Proxy, want string) {
	t.Helper()
	waitFor(t, "sessionproxy_tunnels_active "+want, func() bool { return tunnelsActive(p) == want })
}

// TestTunnelCarriesSession: the handshake reaches the backend with the
// session's attributes and none a client sent; the 101's X-Session-Set-*
// is applied, stripped, and a new session's cookie comes on the 101.
func TestTunnelCarriesSession(t *testing.T) {
	e := startSessionEnv(t, envOptions{memcached: 1, backends: 1})
	ws := newWSBackend(t, "W")
	ws.set = http.Header{"X-Session-Set-Greeted": {"yes"}}
	e.proxy.Pool = newPool(t, "round_robin", nil, ws.url())

	// A new visitor: the session starts on the 101, which carries its cookie.
	u := newUser(t)
	c, resp, greeting := dialWS(t, &websocket.Dialer{Jar: u.c.Jar}, e.base,
		http.Header{"X-Session-Attr-User": {"mallory"}, "X-Session-Id": {"forged"}})
	if greeting != "W: hello " {
		t.Fatalf("greeting %q: a client's X-Session-Attr-User reached the backend", greeting)
	}
	hs := ws.lastHandshake()
	if hs.Get("X-Session-New") != "1" || hs.Get("X-Session-Id") == "forged" || hs.Get("X-Session-Id") == "" {
		t.Fatalf("handshake session headers: %v", hs)
	}
	if hs.Get("X-Forwarded-For") == "" || hs.Get("X-Request-Id") == "" {
		t.Fatalf("handshake lacks forwarding headers: %v", hs)
	}
	for k := range resp.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-session-") {
			t.Fatalf("101 leaked %s to the client: %v", k, resp.Header)
		}
	}
	id := hs.Get("X-Session-Id")
	if got, want := resp.Header.Get("Set-Cookie"), "SPSESSIONID="+id+"; Path=/; HttpOnly; SameSite=Lax"; got != want {
		t.Fatalf("Set-Cookie on the 101 = %q, want %q", got, want)
	}
	if resp.Header.Get("X-Request-Id") != hs.Get("X-Request-Id") {
		t.Fatalf("X-Request-Id %q on the 101, backend saw %q", resp.Header.Get("X-Request-Id"), hs.Get("X-Request-Id"))
	}
	for i := 0; i < 3; i++ {
		echo(t, c, fmt.Sprintf("message %d", i))
	}
	big := strings.Repeat("0123456789abcdef", 16<<10) // 256 KiB: the bulk buffers
	if err := c.WriteMessage(websocket.BinaryMessage, []byte(big)); err != nil {
		t.Fatal(err)
	}
	if got := readMsg(t, c); got != big {
		t.Fatalf("256 KiB echo came back as %d bytes", len(got))
	}

	// The session holds what the 101 set; the next handshake sees it.
	r := u.get(e.base + "/?set=user:ann")
	if r.view.ID != id || r.view.Attrs["greeted"] != "yes" {
		t.Fatalf("after the tunnel the session is %+v, want %s with greeted=yes", r.view, id)
	}
	c2, resp2, greeting := dialWS(t, &websocket.Dialer{Jar: u.c.Jar}, e.base, nil)
	if greeting != "W: hello ann" {
		t.Fatalf("greeting %q, want the session's user", greeting)
	}
	if hs := ws.lastHandshake(); hs.Get("X-Session-Id") != id || hs.Get("X-Session-New") != "" {
		t.Fatalf("second handshake: %v", hs)
	}
	if sc := resp2.Header.Values("Set-Cookie"); len(sc) != 0 {
		t.Fatalf("an existing session's 101 set the cookie again: %v", sc)
	}
	echo(t, c2, "again")
}

func startTunnelProxy(t *testing.T, p *Proxy) string {
	t.Helper()
	return startProxy(t, p, ServerOptions{})
}

// TestTunnelEnds: a tunnel ends when the backend closes, when the client
// closes, and when it has been idle for TunnelIdle; the gauge follows.
func TestTunnelEnds(t *testing.T) {
	ws := newWSBackend(t, "W")
	p := &Proxy{Pool: newPool(t, "round_robin", nil, ws.url()), Settings: Settings{TunnelIdle: time.Second}}
	base := startTunnelProxy(t, p)
	if got := tunnelsActive(p); got != "0" {
		t.Fatalf("sessionproxy_tunnels_active = %s before any tunnel", got)
	}

	t.Run("backend closes", func(t *testing.T) {
		ws.mu.Lock()
		ws.closeAfter = 1
		ws.mu.Unlock()
		defer func() { ws.mu.Lock(); ws.closeAfter = 0; ws.mu.Unlock() }()
		c, _, _ := dialWS(t, nil, base, nil)
		waitTunnels(t, p, "1")
		echo(t, c, "last words")
		waitClosed(t, c, 5*time.Second)
		waitTunnels(t, p, "0")
	})
	t.Run("client closes", func(t *testing.T) {
		c, _, _ := dialWS(t, nil, base, nil)
		echo(t, c, "hi")
		c.Close()
		select {
		case <-ws.ended:
		case <-time.After(5 * time.Second):
			t.Fatal("the backend did not see the client go")
		}
		waitTunnels(t, p, "0")
	})
	t.Run("traffic keeps it open", func(t *testing.T) {
		c, _, _ := dialWS(t, nil, base, nil)
		for start := time.Now(); time.Since(start) < 2500*time.Millisecond; {
			echo(t, c, "tick")
			time.Sleep(100 * time.Millisecond)
		}
		c.Close()
		waitTunnels(t, p, "0")
	})
	t.Run("idle", func(t *testing.T) {
		c, _, _ := dialWS(t, nil, base, nil)
		echo(t, c, "then silence")
		start := time.Now()
		waitClosed(t, c, 10*time.Second)
		if waited := time.Since(start); waited < 900*time.Millisecond {
			t.Fatalf("closed after %v, before tunnel_idle (1s)", waited)
		}
		waitTunnels(t, p, "0")
	})
}

// TestTunnelsActiveCounts opens several tunnels at once.
func TestTunnelsActiveCounts(t *testing.T) {
	ws := newWSBackend(t, "W")
	p := &Proxy{Pool: newPool(t, "round_robin", nil, ws.url())}
	base := startTunnelProxy(t, p)
	var conns []*websocket.Conn
	for i := 0; i < 5; i++ {
		c, _, _ := dialWS(t, nil, base, nil)
		conns = append(conns, c)
	}
	waitTunnels(t, p, "5")
	if n := p.Pool.Backends[0].Inflight(); n != 5 {
		t.Fatalf("backend active = %d with 5 tunnels open, want 5", n)
	}
	for _, c := range conns {
		c.Close()
	}
	waitTunnels(t, p, "0")
	waitFor(t, "backend active back to 0", func() bool { return p.Pool.Backends[0].Inflight() == 0 })
}

// TestTunnelDeadBackend: a backend that cannot be dialed is charged and
// the next one tried; with none left the client gets 502.
func TestTunnelDeadBackend(t *testing.T) {
	ws := newWSBackend(t, "W")
	dead := "http://" + freePort(t)
	p := &Proxy{Pool: newPool(t, "round_robin", nil, dead, ws.url()), Settings: Settings{Retries: 1}}
	base := startTunnelProxy(t, p)
	for i := 0; i < 4; i++ {
		c, _, greeting := dialWS(t, nil, base, nil)
		if greeting != "W: hello " {
			t.Fatalf("greeting %q", greeting)
		}
		c.Close()
	}
	if p.Pool.Backends[0].Fails() == 0 {
		t.Fatal("the dead backend was not charged a failure")
	}

	only := &Proxy{Pool: newPool(t, "round_robin", nil, dead)}
	base = startTunnelProxy(t, only)
	_, resp, err := (&websocket.Dialer{}).Dial("ws"+strings.TrimPrefix(base, "http")+"/chat", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("dead backend: %v, %+v; want 502", err, resp)
	}
}

// upgradeRequest is a browser's WebSocket handshake as raw bytes.
const upgradeRequest = "GET /chat HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
	"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

// rawExchange writes raw to the proxy and returns the response and, if
// askClosed, whether the proxy closed the connection after it.
func rawExchange(t *testing.T, base, raw string, askClosed bool) (*http.Response, string, bool) {
	t.Helper()
	c := rawtcp.Dial(t, strings.TrimPrefix(base, "http://"))
	defer c.Close()
	io.WriteString(c, raw)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if !askClosed {
		return resp, string(body), false
	}
	_, err = br.ReadByte()
	return resp, string(body), err == io.EOF
}

// TestUpgradeNotSwitched: a backend that answers an upgrade with anything
// but 101 has that answer passed on, its session headers applied and
// stripped, and the connection closed.
func TestUpgradeNotSwitched(t *testing.T) {
	for _, status := range []int{200, 400} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			e := startSessionEnv(t, envOptions{memcached: 1, backends: 1})
			app := newTestBackend(t, "plain")
			app.setHandler(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Session-Set-Tried", "ws")
				w.WriteHeader(status)
				io.WriteString(w, strings.Repeat("no tunnel here. ", 1000))
			})
			e.proxy.Pool = newPool(t, "round_robin", nil, app.url())
			resp, body, closed := rawExchange(t, e.base, upgradeRequest+"\r\n", true)
			if resp.StatusCode != status || body != strings.Repeat("no tunnel here. ", 1000) {
				t.Fatalf("got %d with %d bytes, want %d and the backend's body", resp.StatusCode, len(body), status)
			}
			if resp.Header.Get("X-Session-Set-Tried") != "" || !strings.HasPrefix(resp.Header.Get("Set-Cookie"), "SPSESSIONID=") {
				t.Fatalf("session instructions not applied or leaked: %v", resp.Header)
			}
			if !closed {
				t.Fatal("the connection stayed open after an upgrade that did not happen")
			}
			if h := app.lastHeader(); h.Get("Upgrade") != "websocket" || h.Get("X-Session-Id") == "" {
				t.Fatalf("backend saw %v", h)
			}
			waitFor(t, "backend connection released", func() bool { return e.proxy.Pool.Backends[0].Inflight() == 0 })
		})
	}
}

// TestUpgradeAttacks sends handshakes a client may forge, as raw bytes.
func TestUpgradeAttacks(t *testing.T) {
	app := newTestBackend(t, "plain")
	p := &Proxy{Pool: newPool(t, "round_robin", nil, app.url())}
	base := startTunnelProxy(t, p)
	cases := []struct {
		name, raw string
	}{
		{"upgrade without Connection: Upgrade", "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"},
		{"h2c", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"},
		{"websocket on POST", "POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 4\r\n\r\nbody"},
		{"websocket over HTTP/1.0", "GET / HTTP/1.0\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"},
		{"websocket with a body", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 4\r\n\r\nbody"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, _, _ := rawExchange(t, base, tc.raw, false)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d, want the backend's plain 200", resp.StatusCode)
			}
			h := app.lastHeader()
			if h.Get("Upgrade") != "" || h.Get("Connection") != "" || h.Get("Http2-Settings") != "" {
				t.Fatalf("the backend saw an upgrade: %v", h)
			}
		})
	}

	t.Run("session headers on a handshake", func(t *testing.T) {
		ws := newWSBackend(t, "W")
		e := startSessionEnv(t, envOptions{memcached: 1, backends: 1})
		e.proxy.Pool = newPool(t, "round_robin", nil, ws.url())
		raw := upgradeRequest + "X-Session-Attr-User: admin\r\nX_Session_Attr_Role: admin\r\nx-session-id: forged\r\n" +
			"Connection: X-Session-New\r\n\r\n"
		c := rawtcp.Dial(t, strings.TrimPrefix(e.base, "http://"))
		defer c.Close()
		io.WriteString(c, raw)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("handshake: %v %v", err, resp)
		}
		hs := ws.lastHandshake()
		if hs.Get("X-Session-Attr-User") != "" || hs.Get("X-Session-Attr-Role") != "" || hs.Get("X_Session_Attr_Role") != "" ||
			hs.Get("X-Session-Id") == "forged" || hs.Get("X-Session-New") != "1" {
			t.Fatalf("backend handshake carried forged session headers: %v", hs)
		}
	})

	t.Run("backend switches to another protocol", func(t *testing.T) {
		rogue := newTestBackend(t, "rogue")
		rogue.setHandler(func(w http.ResponseWriter, r *http.Request) {
			conn, brw, _ := w.(http.Hijacker).Hijack()
			defer conn.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
			brw.Flush()
			time.Sleep(100 * time.Millisecond)
		})
		q := &Proxy{Pool: newPool(t, "round_robin", nil, rogue.url())}
		resp, _, _ := rawExchange(t, startTunnelProxy(t, q), upgradeRequest+"\r\n", false)
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("status %d, want 502 for a switch to h2c", resp.StatusCode)
		}
	})
}

// TestTunnelPipelinedBytes: frames a client sends right behind its
// handshake, and a backend right behind its 101, are not lost.
func TestTunnelPipelinedBytes(t *testing.T) {
	rogue := newTestBackend(t, "eager")
	rogue.setHandler(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, _ := w.(http.Hijacker).Hijack()
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nfrom-backend;")
		brw.Flush()
		// The client's early bytes, then echo.
		buf := make([]byte, 64)
		n, _ := io.ReadAtLeast(brw, buf, len("from-client;"))
		conn.Write(bytes.ToUpper(buf[:n]))
		time.Sleep(time.Second)
	})
	p := &Proxy{Pool: newPool(t, "round_robin", nil, rogue.url())}
	base := startTunnelProxy(t, p)
	c := rawtcp.Dial(t, strings.TrimPrefix(base, "http://"))
	defer c.Close()
	io.WriteString(c, upgradeRequest+"\r\nfrom-client;")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake: %v %v", err, resp)
	}
	want := "from-backend;FROM-CLIENT;"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
		t.Fatalf("read %q (%v), want %q", got, err, want)
	}
}

// TestTunnelHandshakeTimeout: a backend that takes the upgrade and never
// answers gets 504 after ResponseTimeout and is charged; it is not tried
// again, since it may have acted on the request.
func TestTunnelHandshakeTimeout(t *testing.T) {
	mute := func(c net.Conn) { io.Copy(io.Discard, c) } // reads, never answers
	a, b := rawtcp.Serve(t, mute), rawtcp.Serve(t, mute)
	p := &Proxy{Pool: newPool(t, "round_robin", nil, a.URL(), b.URL()), Settings: Settings{Retries: 1, ResponseTimeout: 300 * time.Millisecond}}
	resp, _, _ := rawExchange(t, startTunnelProxy(t, p), upgradeRequest+"\r\n", false)
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
	if accepted := a.Accepted.Load() + b.Accepted.Load(); accepted != 1 {
		t.Fatalf("the upgrade reached %d backends, want 1", accepted)
	}
	if p.Pool.Backends[0].Fails()+p.Pool.Backends[1].Fails() != 1 {
		t.Fatal("the silent backend was not charged")
	}
}

// TestTunnelsShutdown: Shutdown waits for tunnels until its context ends,
// then closes them, and refuses new ones.
func TestTunnelsShutdown(t *testing.T) {
	ws := newWSBackend(t, "W")
	p := &Proxy{Pool: newPool(t, "round_robin", nil, ws.url())}
	base := startTunnelProxy(t, p)
	c, _, _ := dialWS(t, nil, base, nil)
	waitTunnels(t, p, "1")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Tunnels.Shutdown(ctx) }()
	echo(t, c, "still served during the grace period")
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Shutdown returned nil with a tunnel it had to close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after its context ended")
	}
	waitClosed(t, c, 5*time.Second)
	waitTunnels(t, p, "0")
	_, resp, err := (&websocket.Dialer{}).Dial("ws"+strings.TrimPrefix(base, "http")+"/chat", nil)
	if err == nil {
		t.Fatalf("a tunnel opened after Shutdown: %+v", resp)
	}

	var empty Tunnels
	if err := empty.Shutdown(context.Background()); err != nil || empty.Active() != 0 {
		t.Fatalf("zero Tunnels: %v", err)
	}
}

// TestTunnelHTTPSBackend: an https backend gets its handshake over TLS,
// checked against the same roots as its HostClient.
func TestTunnelHTTPSBackend(t *testing.T) {
	ws := &wsBackend{name: "TLS", ended: make(chan struct{}, 10)}
	ws.srv = httptest.NewTLSServer(http.HandlerFunc(ws.serve))
	t.Cleanup(ws.srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(ws.srv.Certificate())
	p := &Proxy{Pool: newPool(t, "round_robin", nil, ws.url())}
	p.once.Do(p.init)
	p.clients[0].TLSConfig.RootCAs = roots
	base := startTunnelProxy(t, p)
	c, _, greeting := dialWS(t, nil, base, nil)
	if greeting != "TLS: hello " {
		t.Fatalf("greeting %q", greeting)
	}
	echo(t, c, "over TLS")

	// Without the roots the certificate is refused: a dial error, 502.
	q := &Proxy{Pool: newPool(t, "round_robin", nil, ws.url())}
	resp, _, _ := rawExchange(t, startTunnelProxy(t, q), upgradeRequest+"\r\n", false)
	if resp.StatusCode != http.StatusBadGateway || q.Pool.Backends[0].Fails() == 0 {
		t.Fatalf("untrusted certificate: status %d, fails %d; want 502 and a failure", resp.StatusCode, q.Pool.Backends[0].Fails())
	}
}

// BenchmarkIsUpgrade is what the plain path pays for WebSocket support:
// one check of an ordinary GET's headers.
func BenchmarkIsUpgrade(b *testing.B) {
	var req fasthttp.Request
	raw := "GET /index.html HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: bench\r\nAccept: */*\r\n" +
		"Accept-Encoding: gzip\r\nCookie: SPSESSIONID=abc\r\nConnection: keep-alive\r\n\r\n"
	if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if isUpgrade(&req.Header) {
			b.Fatal("an ordinary GET taken for an upgrade")
		}
	}
}

// TestTunnelBadSessionUpdate: a 101 whose session update cannot be applied
// becomes a 502 and no tunnel; the backend's socket is closed.
func TestTunnelBadSessionUpdate(t *testing.T) {
	e := startSessionEnv(t, envOptions{memcached: 1, backends: 1})
	ws := newWSBackend(t, "W")
	ws.set = http.Header{"X-Session-Set-" + strings.Repeat("n", 201): {"x"}} // names are 1..200 characters
	e.proxy.Pool = newPool(t, "round_robin", nil, ws.url())
	resp, body, _ := rawExchange(t, e.base, upgradeRequest+"\r\n", false)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "invalid session update") {
		t.Fatalf("got %d %q, want 502 invalid session update", resp.StatusCode, body)
	}
	select {
	case <-ws.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the backend's side of the refused tunnel stayed open")
	}
	waitTunnels(t, e.proxy, "0")
	waitFor(t, "backend active back to 0", func() bool { return e.proxy.Pool.Backends[0].Inflight() == 0 })
}
