package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"sessionproxy/internal/apptest"
)

// rawTunnel is a WebSocket opened through the proxy with raw bytes on a
// socket, as a client of any library would.
type rawTunnel struct {
	c  net.Conn
	br *bufio.Reader
}

// rawHandshake writes upgradeRequest to the proxy at base and reads the
// answer's head; on a 101 it returns the tunnel, else the answer and its
// body.
func rawHandshake(t *testing.T, base string) (*rawTunnel, *http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, upgradeRequest+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the handshake's answer: %v", err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return &rawTunnel{c: c, br: br}, resp, ""
	}
	body, _ := io.ReadAll(resp.Body)
	return nil, resp, string(body)
}

// send writes msg as one masked text frame, as a client must.
func (r *rawTunnel) send(t *testing.T, msg string) {
	t.Helper()
	if len(msg) > 125 {
		t.Fatal("rawTunnel frames carry at most 125 bytes")
	}
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	frame := append([]byte{0x81, 0x80 | byte(len(msg))}, mask[:]...)
	for i := range len(msg) {
		frame = append(frame, msg[i]^mask[i%4])
	}
	r.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.c.Write(frame); err != nil {
		t.Fatalf("writing a frame through the tunnel: %v", err)
	}
}

// recv reads one unmasked frame from the backend and returns its payload.
func (r *rawTunnel) recv(t *testing.T) string {
	t.Helper()
	r.c.SetDeadline(time.Now().Add(5 * time.Second))
	var head [2]byte
	if _, err := io.ReadFull(r.br, head[:]); err != nil {
		t.Fatalf("reading a frame through the tunnel: %v", err)
	}
	n := int(head[1] & 0x7f)
	if n == 126 {
		var ext [2]byte
		if _, err := io.ReadFull(r.br, ext[:]); err != nil {
			t.Fatal(err)
		}
		n = int(binary.BigEndian.Uint16(ext[:]))
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r.br, payload); err != nil {
		t.Fatalf("reading a frame's payload: %v", err)
	}
	return string(payload)
}

// echo checks that msg comes back through the tunnel.
func (r *rawTunnel) echo(t *testing.T, msg string) {
	t.Helper()
	r.send(t, msg)
	if got := r.recv(t); got != msg {
		t.Fatalf("echo %q, want %q", got, msg)
	}
}

// openRaw opens a tunnel with raw bytes and reads the backend's greeting.
func openRaw(t *testing.T, base string) (*rawTunnel, string) {
	t.Helper()
	rt, resp, body := rawHandshake(t, base)
	if rt == nil {
		t.Fatalf("handshake answered %d %q, want 101", resp.StatusCode, body)
	}
	return rt, rt.recv(t)
}

// defaultLogProxy is p with the shipped default access log (text) on, to
// a buffer the test can read.
func defaultLogProxy(t *testing.T, p *Proxy) *apptest.Output {
	t.Helper()
	out := &apptest.Output{}
	l, err := NewAccessLog("text", out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	p.AccessLog = l
	return out
}

// metric returns the value of one line of p's metrics, or "missing".
func metric(p *Proxy, name string) string {
	var b bytes.Buffer
	writeMetrics(&b, p)
	for _, l := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return v
		}
	}
	return "missing"
}

// handshakes returns how many handshakes the backend has seen.
func (b *wsBackend) handshakeCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.handshakes)
}

// wantRefused checks a refused handshake: 503, Retry-After, and a one-line
// plain-text body naming the limit.
func wantRefused(t *testing.T, resp *http.Response, body, limit string) {
	t.Helper()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("handshake over %s answered %d %q, want 503", limit, resp.StatusCode, body)
	}
	if !strings.HasSuffix(body, "("+limit+")\n") || strings.Count(body, "\n") != 1 ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("503 body %q (%s), want one plain-text line naming %s", body, resp.Header.Get("Content-Type"), limit)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Fatalf("503 without Retry-After: %v", resp.Header)
	}
}

// TestMaxTunnels: with MaxTunnels 3, a fourth handshake gets 503 before
// any backend is dialed while the three keep echoing; closing one frees
// its place.
func TestMaxTunnels(t *testing.T) {
	ws := newWSBackend(t, "W")
	p := &Proxy{Pool: newPool(t, "round_robin", nil, ws.url()), Settings: Settings{MaxTunnels: 3}}
	log := defaultLogProxy(t, p)
	base := startTunnelProxy(t, p)

	var open []*rawTunnel
	for range 3 {
		rt, greeting := openRaw(t, base)
		if greeting != "W: hello " {
			t.Fatalf("greeting %q", greeting)
		}
		open = append(open, rt)
	}
	waitTunnels(t, p, "3")
	_, resp, body := rawHandshake(t, base)
	wantRefused(t, resp, body, "max_tunnels")
	if n := ws.handshakeCount(); n != 3 {
		t.Fatalf("the backend saw %d handshakes, want 3: the refused one was sent on", n)
	}
	if got := metric(p, `sessionproxy_tunnels_refused_total{reason="max_tunnels"}`); got != "1" {
		t.Fatalf(`tunnels_refused_total{reason="max_tunnels"} = %s, want 1`, got)
	}
	for i, rt := range open {
		rt.echo(t, "still here "+string(rune('a'+i)))
	}

	open[0].c.Close()
	waitTunnels(t, p, "2")
	rt, _ := openRaw(t, base)
	rt.echo(t, "in the freed place")
	waitTunnels(t, p, "3")
	if n := ws.handshakeCount(); n != 4 {
		t.Fatalf("the backend saw %d handshakes, want 4", n)
	}
	waitFor(t, "the access log of the 503", func() bool {
		return strings.Contains(log.String(), "status=503")
	})
}

// TestTunnelsSharedByProxies: MaxTunnels counts the tunnels of every
// Proxy that shares one Tunnels registry, as the upstreams of one
// configuration and those of the next do, and the tunnels gauge of their
// shared Metrics counts every registry it was given.
func TestTunnelsSharedByProxies(t *testing.T) {
	ws := newWSBackend(t, "W")
	m, reg := NewMetrics(), new(Tunnels)
	a := &Proxy{Pool: newPool(t, "round_robin", nil, ws.url()), Settings: Settings{MaxTunnels: 1, Metrics: m, Tunnels: reg}}
	b := &Proxy{Pool: newPool(t, "round_robin", nil, ws.url()), Upstream: "b", Settings: Settings{MaxTunnels: 1, Metrics: m, Tunnels: reg}}
	own := &Proxy{Pool: newPool(t, "round_robin", nil, ws.url()), Upstream: "own", Settings: Settings{MaxTunnels: 1, Metrics: m}}
	baseA, baseB, baseOwn := startTunnelProxy(t, a), startTunnelProxy(t, b), startTunnelProxy(t, own)

	openRaw(t, baseA)
	waitTunnels(t, a, "1")
	_, resp, body := rawHandshake(t, baseB)
	wantRefused(t, resp, body, "max_tunnels")
	if reg.Active() != 1 || b.Tunnels != reg {
		t.Fatalf("the shared registry holds %d tunnels, want 1", reg.Active())
	}
	// A Proxy given no registry has one of its own, with its own limit,
	// and the shared gauge counts its tunnel too.
	openRaw(t, baseOwn)
	waitTunnels(t, a, "2")
	if own.Tunnels == reg || own.Tunnels.Active() != 1 {
		t.Fatalf("the Proxy without a registry shares one: %d open in its own", own.Tunnels.Active())
	}
}

// TestMaxTunnelsCountsHandshakesInFlight: handshakes waiting for their
// backend's 101 hold their places, so a burst cannot go past the limit
// together.
func TestMaxTunnelsCountsHandshakesInFlight(t *testing.T) {
	release := make(chan struct{})
	ws := newWSBackend(t, "W")
	slow := newTestBackend(t, "slow")
	slow.setHandler(func(w http.ResponseWriter, r *http.Request) {
		<-release
		ws.srv.Config.Handler.ServeHTTP(w, r)
	})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before the backend's Close, which waits for its handlers
	p := &Proxy{Pool: newPool(t, "round_robin", nil, slow.url()), Settings: Settings{MaxTunnels: 2}}
	defaultLogProxy(t, p)
	base := startTunnelProxy(t, p)

	results := make(chan int, 2)
	for range 2 {
		go func() {
			c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
			if err != nil {
				results <- 0
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, upgradeRequest+"\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				results <- 0
				return
			}
			results <- resp.StatusCode
		}()
	}
	waitFor(t, "two handshakes at the backend", func() bool { return slow.hits.Load() == 2 })
	_, resp, body := rawHandshake(t, base)
	wantRefused(t, resp, body, "max_tunnels")
	free()
	for range 2 {
		if code := <-results; code != http.StatusSwitchingProtocols {
			t.Fatalf("a handshake under the limit got %d", code)
		}
	}
	waitTunnels(t, p, "0")
}

// TestMaxConnsTunnels: a tunnel holds one of its backend's MaxConns. A
// full backend is passed over for another with room, as nginx's max_conns
// makes a server unavailable; with every backend full the handshake gets
// 503, and so does a plain request, without any backend being charged.
func TestMaxConnsTunnels(t *testing.T) {
	a, b := newWSBackend(t, "A"), newWSBackend(t, "B")
	pool := newPool(t, "round_robin", nil, a.url(), b.url())
	pool.Backends[0].MaxConns = 1
	pool.Backends[1].MaxConns = 3
	p := &Proxy{Pool: pool}
	defaultLogProxy(t, p)
	base := startTunnelProxy(t, p)

	on := map[string][]*rawTunnel{}
	for range 4 {
		rt, greeting := openRaw(t, base)
		name := strings.TrimSuffix(greeting, ": hello ")
		on[name] = append(on[name], rt)
	}
	if len(on["A"]) != 1 || len(on["B"]) != 3 {
		t.Fatalf("tunnels on A: %d, on B: %d; want 1 and 3 (A full after one)", len(on["A"]), len(on["B"]))
	}
	_, resp, body := rawHandshake(t, base)
	wantRefused(t, resp, body, "max_conns")
	if n := a.handshakeCount() + b.handshakeCount(); n != 4 {
		t.Fatalf("the backends saw %d handshakes, want 4: the refused one was sent on", n)
	}
	if got := metric(p, `sessionproxy_tunnels_refused_total{reason="max_conns"}`); got != "1" {
		t.Fatalf(`tunnels_refused_total{reason="max_conns"} = %s, want 1`, got)
	}
	r := get(t, base+"/plain")
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "(max_conns)") {
		t.Fatalf("plain request with every backend full: %d %q, want 503", r.status, r.body)
	}
	for _, be := range pool.Backends {
		if be.Fails() != 0 || !be.Available() {
			t.Fatalf("%s charged for being full: fails %d, available %v", be.URL, be.Fails(), be.Available())
		}
	}
	for _, rt := range append(on["A"], on["B"]...) {
		rt.echo(t, "still open")
	}

	// A's place comes free: the next tunnel goes there.
	on["A"][0].c.Close()
	waitFor(t, "A's connection given back", func() bool { return pool.Backends[0].Inflight() == 0 })
	_, greeting := openRaw(t, base)
	if greeting != "A: hello " {
		t.Fatalf("greeting %q, want A's: the backend with room", greeting)
	}
}
