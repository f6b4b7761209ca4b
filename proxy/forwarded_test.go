package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sessionproxy/internal/apptest"
	"sessionproxy/internal/rawtcp"
	"sessionproxy/proxyproto"
)

// headEchoBackend is a real HTTP/1.1 server on a loopback port that
// answers every request with the request's head, byte for byte, so a test
// sees every header line the proxy sent, in order and as spelt, not as a
// parser merged them. It serves bodiless requests on keep-alive
// connections.
func headEchoBackend(t *testing.T) string {
	t.Helper()
	return rawtcp.Serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			c.SetDeadline(time.Now().Add(10 * time.Second))
			head, err := rawtcp.ReadHead(br)
			if err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "+
				strconv.Itoa(len(head))+"\r\n\r\n"+head)
		}
	}).URL()
}

// forwardingLines returns, for each forwarding header, every line of it in
// an echoed request head, by lower-case name.
func forwardingLines(head string) map[string][]string {
	got := map[string][]string{}
	for _, line := range strings.Split(head, "\r\n")[1:] {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		name = strings.ToLower(name)
		// Any spelling a backend might read as one of them.
		switch strings.ReplaceAll(name, "_", "-") {
		case "x-forwarded-for", "x-real-ip", "x-forwarded-proto", "x-forwarded-host":
			got[name] = append(got[name], strings.TrimSpace(value))
		}
	}
	return got
}

// forwardedSetup is a proxy in front of a head-echoing backend, with the
// access log on in its default format (text), as users run it.
type forwardedSetup struct {
	addr  string
	log   *AccessLog
	out   *apptest.Output
	close sync.Once
}

// startForwarded serves a Router with real IP settings ri (nil: no
// real_ip_from) on a loopback port; with proxyProto the listener wants a
// PROXY header, trusted as cmd/sessionproxy trusts it.
func startForwarded(t *testing.T, ri *RealIP, proxyProto bool) *forwardedSetup {
	t.Helper()
	out := &apptest.Output{}
	log, err := NewAccessLog("text", out)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Pool: newPool(t, "round_robin", nil, headEchoBackend(t)), Pipeline: testPipeline, Settings: Settings{AccessLog: log}}
	rt := &Router{Default: p, RealIP: ri}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var l net.Listener = NewLingerListener(ln)
	if proxyProto {
		l = &proxyproto.Listener{Listener: l, Trusted: func(peer netip.Addr) bool { return ri == nil || ri.Trusts(peer) }}
	}
	srv := NewServer(rt.ServeHTTP, ServerOptions{})
	go srv.Serve(l)
	t.Cleanup(func() { srv.Shutdown() })
	s := &forwardedSetup{addr: ln.Addr().String(), log: log, out: out}
	t.Cleanup(func() { s.close.Do(func() { log.Close() }) })
	return s
}

// accessLog flushes the access log and returns what it holds.
func (s *forwardedSetup) accessLog() string {
	s.close.Do(func() { s.log.Close() })
	return s.out.String()
}

// exchange writes each raw request on one connection, in turn, and returns
// the heads the backend echoed.
func exchange(t *testing.T, addr string, raws ...string) []string {
	t.Helper()
	c := rawtcp.Dial(t, addr)
	defer c.Close()
	br := bufio.NewReader(c)
	var heads []string
	for _, raw := range raws {
		io.WriteString(c, raw)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading the response to %q: %v", raw, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%q: status %d %s", raw, resp.StatusCode, body)
		}
		heads = append(heads, string(body))
	}
	return heads
}

// wantForwarding fails unless the backend got exactly these forwarding
// lines, one of each name.
func wantForwarding(t *testing.T, what, head string, xff, realIP, proto, host string) {
	t.Helper()
	got := forwardingLines(head)
	want := map[string][]string{
		"x-forwarded-for":   {xff},
		"x-real-ip":         {realIP},
		"x-forwarded-proto": {proto},
		"x-forwarded-host":  {host},
	}
	for name, w := range want {
		if g := got[name]; len(g) != 1 || g[0] != w[0] {
			t.Errorf("%s: backend got %s %q, want exactly %q", what, name, g, w)
		}
		delete(got, name)
	}
	for name, g := range got {
		t.Errorf("%s: backend got %s %q", what, name, g)
	}
}

// The attack of issue 22: duplicate forwarding lines, in any case, with
// several values or none, each of which reached the backend after the
// proxy's own.
const duplicateForwarding = "GET /dup HTTP/1.1\r\nHost: shop.example\r\n" +
	"X-Forwarded-For: 198.51.100.1, 198.51.100.2\r\n" +
	"x-real-ip: 6.6.6.6\r\n" +
	"X-FORWARDED-FOR: 6.6.6.6\r\n" +
	"X-Forwarded-For:\r\n" +
	"X-Real-IP: 6.6.6.7\r\n" +
	"x-forwarded-proto: https\r\n" +
	"X-Forwarded-Proto: https, http\r\n" +
	"X-Forwarded-Host: evil.example\r\n" +
	"x-FORWARDED-host: evil2.example\r\n" +
	"X-Forwarded-For: 6.6.6.8\r\n\r\n"

func TestForwardingHeadersOneLineEach(t *testing.T) {
	s := startForwarded(t, nil, false)
	heads := exchange(t, s.addr, duplicateForwarding,
		"GET /none HTTP/1.1\r\nHost: shop.example:8080\r\n\r\n",
		"GET /empty HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: \r\nX-Real-Ip:\r\nX-Forwarded-Proto:\r\nX-Forwarded-Host:\r\n\r\n")
	// Without real_ip_from: the client's lines joined in order, then the
	// peer, as nginx's $proxy_add_x_forwarded_for; the rest is the
	// proxy's own view.
	wantForwarding(t, "duplicates", heads[0], "198.51.100.1, 198.51.100.2, 6.6.6.6, 6.6.6.8, 127.0.0.1", "127.0.0.1", "http", "shop.example")
	wantForwarding(t, "none sent", heads[1], "127.0.0.1", "127.0.0.1", "http", "shop.example:8080")
	wantForwarding(t, "empty values", heads[2], "127.0.0.1", "127.0.0.1", "http", "a")
	// A WebSocket handshake goes its own way (tunnel.go) with the same
	// headers; this backend refuses it with its echo.
	ws := exchange(t, s.addr, "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Forwarded-For: 6.6.6.6\r\n"+
		"X-Real-IP: 6.6.6.6\r\nx-forwarded-for: 7.7.7.7\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Host: evil2\r\n\r\n")
	wantForwarding(t, "websocket handshake", ws[0], "6.6.6.6, 7.7.7.7, 127.0.0.1", "127.0.0.1", "http", "a")
	if log := s.accessLog(); strings.Count(log, "client=127.0.0.1 ") < 3 {
		t.Errorf("access log, want client=127.0.0.1 for every request:\n%s", log)
	}
}

func TestForwardingHeadersUnderscoreSpellings(t *testing.T) {
	// underscores_in_headers is off by default (and such names are then
	// dropped anyway); with it on, X_Forwarded_For must not pass for the
	// proxy's X-Forwarded-For at a WSGI, CGI or PHP backend.
	rt := &Router{Default: &Proxy{Pool: newPool(t, "round_robin", nil, headEchoBackend(t)), Settings: Settings{UnderscoresInHeaders: true}}}
	url := startHandler(t, rt, ServerOptions{})
	heads := exchange(t, strings.TrimPrefix(url, "http://"), "GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 6.6.6.6\r\n"+
		"X_Real_IP: 6.6.6.6\r\nx_forwarded_proto: https\r\nX-Forwarded_Host: evil\r\nX_Api_Key: kept\r\n\r\n")
	wantForwarding(t, "underscores", heads[0], "127.0.0.1", "127.0.0.1", "http", "a")
	if !strings.Contains(strings.ToLower(heads[0]), "x_api_key: kept\r\n") {
		t.Errorf("other underscore names must pass with underscores_in_headers:\n%s", heads[0])
	}
}

func TestRealIPUntrustedPeerRaw(t *testing.T) {
	s := startForwarded(t, &RealIP{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, false)
	heads := exchange(t, s.addr, duplicateForwarding)
	// A peer outside real_ip_from: its list is replaced by its address.
	wantForwarding(t, "untrusted peer", heads[0], "127.0.0.1", "127.0.0.1", "http", "shop.example")
	if log := s.accessLog(); !strings.Contains(log, "client=127.0.0.1 ") {
		t.Errorf("access log, want client=127.0.0.1:\n%s", log)
	}
}

// TestRealIPBehindHAProxy is HAProxy's option forwardfor in front: the
// client's own X-Forwarded-For line, forged, then HAProxy's line with the
// address it saw. The first line used to be read alone, so the client
// chose its address.
func TestRealIPBehindHAProxy(t *testing.T) {
	s := startForwarded(t, &RealIP{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, false)
	heads := exchange(t, s.addr,
		"GET /ha HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n"+
			"X-Forwarded-Proto: https\r\nx-forwarded-proto: http\r\nX-Forwarded-Host: www.example\r\nX-Forwarded-Host: evil\r\n"+
			"x-forwarded-for: 203.0.113.7\r\n\r\n",
		// The same connection carries the next client's request: the
		// first one's address must not stick to the connection.
		"GET /ha2 HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 6.6.6.6, 203.0.113.9\r\n\r\n",
		// The balancer's own request (a health check): the peer.
		"GET /ha3 HTTP/1.1\r\nHost: shop.example\r\n\r\n",
		"GET /ha4 HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 203.0.113.10\r\n\r\n")
	wantForwarding(t, "haproxy", heads[0], "6.6.6.6, 203.0.113.7, 127.0.0.1", "203.0.113.7", "https", "www.example")
	wantForwarding(t, "next client", heads[1], "6.6.6.6, 203.0.113.9, 127.0.0.1", "203.0.113.9", "http", "shop.example")
	wantForwarding(t, "balancer itself", heads[2], "127.0.0.1", "127.0.0.1", "http", "shop.example")
	wantForwarding(t, "after it", heads[3], "203.0.113.10, 127.0.0.1", "203.0.113.10", "http", "shop.example")
	log := s.accessLog()
	for _, want := range []string{"client=203.0.113.7 method=GET path=/ha ", "client=203.0.113.9 method=GET path=/ha2 ",
		"client=127.0.0.1 method=GET path=/ha3 ", "client=203.0.113.10 method=GET path=/ha4 "} {
		if !strings.Contains(log, want) {
			t.Errorf("access log lacks %q:\n%s", want, log)
		}
	}
}

// TestRealIPRecursive walks X-Forwarded-For from the right past trusted
// addresses, across lines, as nginx's real_ip_recursive on does.
func TestRealIPRecursive(t *testing.T) {
	s := startForwarded(t, &RealIP{Trusted: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:1::/48"),
	}}, false)
	for _, tc := range []struct {
		name, lines, client string
	}{
		{"chain over lines", "X-Forwarded-For: 6.6.6.6, 203.0.113.7\r\nX-Forwarded-For: 10.0.0.2,10.0.0.1\r\n", "203.0.113.7"},
		{"all trusted: the leftmost", "X-Forwarded-For: 10.0.0.3\r\nX-Forwarded-For: 10.0.0.2, 10.0.0.1\r\n", "10.0.0.3"},
		{"empty entries and lines", "X-Forwarded-For: 203.0.113.7,, ,\r\nX-Forwarded-For:\r\nX-Forwarded-For: ,10.0.0.1 \r\n", "203.0.113.7"},
		// A malformed entry ends the walk where nginx ends it: the
		// client is the last address reached, never the client's text.
		{"malformed right after the peer", "X-Forwarded-For: 6.6.6.6, bogus\r\n", "127.0.0.1"},
		{"malformed behind a trusted proxy", "X-Forwarded-For: 6.6.6.6, 6.6.6.7:x, 10.0.0.1\r\n", "10.0.0.1"},
		{"ports", "X-Forwarded-For: [2001:db8::7]:443, 203.0.113.7:8080\r\nX-Forwarded-For: 10.0.0.1:1\r\n", "203.0.113.7"},
		{"IPv6", "X-Forwarded-For: 2001:db8::7, 2001:db8:1::1\r\n", "2001:db8::7"},
		{"mapped IPv4", "X-Forwarded-For: ::ffff:203.0.113.7, ::ffff:10.0.0.1\r\n", "203.0.113.7"},
		{"zone", "X-Forwarded-For: 6.6.6.6, fe80::1%eth0\r\n", "127.0.0.1"},
	} {
		heads := exchange(t, s.addr, "GET / HTTP/1.1\r\nHost: a\r\n"+tc.lines+"\r\n")
		if got := forwardingLines(heads[0])["x-real-ip"]; len(got) != 1 || got[0] != tc.client {
			t.Errorf("%s: X-Real-IP %q, want %s", tc.name, got, tc.client)
		}
		if got := forwardingLines(heads[0])["x-forwarded-for"]; len(got) != 1 || !strings.HasSuffix(got[0], ", 127.0.0.1") {
			t.Errorf("%s: X-Forwarded-For %q, want one line ending with the peer", tc.name, got)
		}
	}
}

// TestProxyProtocolFromUntrustedPeer: a PROXY header names the client only
// from a peer in real_ip_from; anyone else who reaches the port could
// claim any address, and real_ip_from was then checked against the claim.
func TestProxyProtocolFromUntrustedPeer(t *testing.T) {
	const req = "PROXY TCP4 10.9.9.9 192.0.2.1 5555 80\r\n" +
		"GET /pp HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n"
	for _, tc := range []struct {
		name           string
		trusted        string // real_ip_from; "" for none
		xff, client    string
		proto, logLine string
	}{
		// 10.9.9.9 claims to be a trusted balancer; the TCP peer,
		// 127.0.0.1, is not one.
		{"untrusted peer", "10.0.0.0/8", "127.0.0.1", "127.0.0.1", "http", "client=127.0.0.1 "},
		// The balancer's connection: the header's source replaces the
		// peer, and as it is no trusted proxy its list is replaced.
		{"trusted peer", "127.0.0.0/8", "10.9.9.9", "10.9.9.9", "http", "client=10.9.9.9 "},
		// Without real_ip_from every PROXY header names the client.
		{"no real_ip_from", "", "6.6.6.6, 203.0.113.7, 10.9.9.9", "10.9.9.9", "http", "client=10.9.9.9 "},
	} {
		var ri *RealIP
		if tc.trusted != "" {
			ri = &RealIP{Trusted: []netip.Prefix{netip.MustParsePrefix(tc.trusted)}}
		}
		s := startForwarded(t, ri, true)
		heads := exchange(t, s.addr, req)
		wantForwarding(t, tc.name, heads[0], tc.xff, tc.client, tc.proto, "a")
		if log := s.accessLog(); !strings.Contains(log, tc.logLine) {
			t.Errorf("%s: access log lacks %q:\n%s", tc.name, tc.logLine, log)
		}
	}
}

// TestForwardingOrderSurvivesCleaning: deleting a header in fasthttp moves
// the last field into its place, so lines read after the proxy drops a
// header (here one whose name is no token) came in another order: a
// balancer's X-Forwarded-For line could end up before the client's forged
// one, and the forged X-Forwarded-Proto first.
func TestForwardingOrderSurvivesCleaning(t *testing.T) {
	const req = "GET / HTTP/1.1\r\nHost: a\r\nX Bad: 1\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n" +
		"X-Forwarded-Host: www.example\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: http\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n"
	s := startForwarded(t, nil, false)
	heads := exchange(t, s.addr, req)
	wantForwarding(t, "no real_ip_from", heads[0], "6.6.6.6, 203.0.113.7, 127.0.0.1", "127.0.0.1", "http", "a")
	s = startForwarded(t, &RealIP{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, false)
	heads = exchange(t, s.addr, req)
	wantForwarding(t, "trusted peer", heads[0], "6.6.6.6, 203.0.113.7, 127.0.0.1", "203.0.113.7", "https", "www.example")
}

// clientForwardingHeaders are forwarding headers the proxy does not set,
// each as a client forges it, with "_" spellings.
const clientForwardingHeaders = "Forwarded: for=6.6.6.6;host=evil.example;proto=https\r\n" +
	"X-Forwarded-Port: 443\r\nx-forwarded-prefix: //evil.example\r\nX-Forwarded-Ssl: on\r\n" +
	"X-Forwarded-Scheme: https\r\nX_Forwarded_Port: 444\r\nX-Forwarded_Prefix: /p\r\nX-Other: kept\r\n"

func TestClientForwardingHeadersDropped(t *testing.T) {
	// Spring's ForwardedHeaderFilter and Rack read Forwarded before
	// X-Forwarded-*, so a client's host=evil.example would undo the
	// X-Forwarded-Host the proxy set; X-Forwarded-Port and -Prefix go into
	// the links and redirects of Spring, Tomcat's RemoteIpValve and
	// Werkzeug's ProxyFix. From an untrusted peer none reaches a backend,
	// in either spelling (underscores_in_headers on: off drops "_" names
	// anyway), on the plain and the WebSocket path.
	rt := &Router{Default: &Proxy{Pool: newPool(t, "round_robin", nil, headEchoBackend(t)), Settings: Settings{UnderscoresInHeaders: true}}}
	url := startHandler(t, rt, ServerOptions{})
	heads := exchange(t, strings.TrimPrefix(url, "http://"),
		"GET / HTTP/1.1\r\nHost: a\r\n"+clientForwardingHeaders+"\r\n",
		"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"+clientForwardingHeaders+"\r\n")
	for i, head := range heads {
		lower := strings.ToLower(head)
		for _, name := range []string{"forwarded:", "x-forwarded-port:", "x-forwarded-prefix:", "x-forwarded-ssl:",
			"x-forwarded-scheme:", "x_forwarded_port:", "x-forwarded_prefix:"} {
			if strings.Contains(lower, "\n"+name) {
				t.Errorf("request %d: the backend got %s from an untrusted client:\n%s", i, name, head)
			}
		}
		if !strings.Contains(lower, "\nx-other: kept\r\n") {
			t.Errorf("request %d: X-Other must pass:\n%s", i, head)
		}
	}
	// A trusted balancer's are its own, kept as its X-Forwarded-Proto is.
	s := startForwarded(t, &RealIP{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, false)
	heads = exchange(t, s.addr, "GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=192.0.2.1\r\nX-Forwarded-Port: 443\r\n\r\n")
	if lower := strings.ToLower(heads[0]); !strings.Contains(lower, "\nforwarded: for=192.0.2.1\r\n") ||
		!strings.Contains(lower, "\nx-forwarded-port: 443\r\n") {
		t.Errorf("trusted peer: Forwarded and X-Forwarded-Port must pass:\n%s", heads[0])
	}
}

func TestConnectionHostKeepsHost(t *testing.T) {
	// "Connection: Host" named Host as hop-by-hop: it was deleted before
	// X-Forwarded-Host was set from it, and the backend got an empty
	// X-Forwarded-Host beside the Host line fasthttp wrote anyway.
	s := startForwarded(t, nil, false)
	heads := exchange(t, s.addr, "GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: Host\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: keep-alive, HOST , X-Forwarded-Host\r\nX-Forwarded-Host: evil\r\n\r\n")
	for i, head := range heads {
		wantForwarding(t, fmt.Sprintf("request %d", i), head, "127.0.0.1", "127.0.0.1", "http", "shop.example")
		if !strings.Contains(head, "\r\nHost: shop.example\r\n") {
			t.Errorf("request %d: Host lost:\n%s", i, head)
		}
	}
}
