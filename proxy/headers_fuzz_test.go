package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// The fuzz targets parse arbitrary bytes as fasthttp's server and client
// do, clean the headers as the proxy does, and check the result against a
// model written apart from the code under test, in strings: what must be
// gone is gone, what must stay stays, and what goes on the wire, read back
// with net/http's parser, agrees.

// hopByHop are the hop-by-hop header names, RFC 7230 section 6.1 and Go's
// httputil; Transfer-Encoding is left to fasthttp, which frames bodies
// itself when it writes them.
var hopByHop = []string{"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
	"proxy-authorization", "te", "trailer", "upgrade"}

// headerModel is what the model needs to know of one message's headers
// before cleaning.
type headerModel struct {
	pairs     [][2]string         // lower-case name, value, as All yields them
	connNamed map[string]bool     // names listed in any Connection field
	sent      map[string][]string // name to values, for looking up survivors
}

func modelOf(all func(yield func(k, v []byte) bool)) headerModel {
	m := headerModel{connNamed: map[string]bool{}, sent: map[string][]string{}}
	for k, v := range all {
		name := strings.ToLower(string(k))
		m.pairs = append(m.pairs, [2]string{name, string(v)})
		if name == "connection" {
			for _, tok := range strings.Split(string(v), ",") {
				tok = strings.ToLower(strings.Trim(tok, " \t"))
				if tok != "" && tok != "close" && tok != "keep-alive" && tok != "host" {
					m.connNamed[tok] = true
				}
			}
		}
	}
	return m
}

func isHopName(lower string) bool {
	for _, h := range hopByHop {
		if lower == h {
			return true
		}
	}
	return false
}

// sessionLike reports whether a name reads as X-Session-* to a backend that
// takes "_" for "-" (WSGI, CGI, PHP).
func sessionLike(lower string) bool {
	return strings.HasPrefix(strings.ReplaceAll(lower, "_", "-"), "x-session-")
}

// mustGoRequest is the model of cleanRequest: what no backend may see.
// Proxy is a client's claim a CGI-style backend reads as HTTP_PROXY, its
// outgoing proxy (httpoxy).
func (m headerModel) mustGoRequest(lower string, underscores bool) bool {
	return isHopName(lower) || m.connNamed[lower] || sessionLike(lower) || !plainModel(lower, underscores) ||
		forwardingAlias(lower) || clientForwarding(lower) || lower == "proxy"
}

// clientForwarding reports whether a name reads as a forwarding header the
// proxy does not set, which an untrusted peer may not send on.
func clientForwarding(lower string) bool {
	switch strings.ReplaceAll(lower, "_", "-") {
	case "forwarded", "x-forwarded-port", "x-forwarded-prefix", "x-forwarded-ssl", "x-forwarded-scheme":
		return true
	}
	return false
}

// forwardingAlias reports whether a name with "_" reads as one of the
// forwarding headers the proxy sets to a backend that takes "_" for "-".
func forwardingAlias(lower string) bool {
	switch strings.ReplaceAll(lower, "_", "-") {
	case "x-forwarded-for", "x-real-ip", "x-forwarded-proto", "x-forwarded-host":
		return strings.Contains(lower, "_")
	}
	return false
}

// plainModel is the model of plainName: letters, digits, "-", and "_" only
// with underscores.
func plainModel(lower string, underscores bool) bool {
	allowed := "abcdefghijklmnopqrstuvwxyz0123456789-"
	if underscores {
		allowed += "_"
	}
	return !strings.ContainsFunc(lower, func(r rune) bool { return !strings.ContainsRune(allowed, r) })
}

// mustGoResponse is the model of cleanResponse plus stripSessionHeaders.
func (m headerModel) mustGoResponse(lower string) bool {
	return isHopName(lower) || m.connNamed[lower] || strings.HasPrefix(lower, "x-session-")
}

// checkSurvivors fails unless every header field that must not go is still
// there with its value after cleaning.
func checkSurvivors(t *testing.T, before headerModel, after headerModel, mustGo func(string) bool) {
	t.Helper()
	left := map[string][]string{}
	for _, p := range after.pairs {
		left[p[0]] = append(left[p[0]], p[1])
	}
	for _, p := range before.pairs {
		if mustGo(p[0]) {
			continue
		}
		vals, found := left[p[0]], -1
		for i, v := range vals {
			if v == p[1] {
				found = i
				break
			}
		}
		if found < 0 {
			t.Fatalf("header %s: %q was lost; left: %q", p[0], p[1], after.pairs)
		}
		left[p[0]] = append(vals[:found], vals[found+1:]...)
	}
}

var requestSeeds = []string{
	// Names that are no tokens: Python's http.server stops reading
	// headers at the first, dropping the proxy's own after it.
	"GET / HTTP/1.1\r\nHost: a\r\nX Foo: 1\r\nX.Session.Attr.Role: admin\r\nX-Plain: p\r\n\r\n",
	// A chunked body whose trailer section forges session data.
	"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Session-Attr-Role\r\n\r\n" +
		"5\r\nhello\r\n0\r\nX-Session-Attr-Role: admin\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nCookie: SPSESSIONID=abc\r\n\r\n" +
		"2\r\nhi\r\n0\r\nX-Session-New: 1\r\nX-Session-Id: forged\r\nX-Checksum: c\r\n\r\n",
	// Trailers sharing a name with a header, User-Agent included.
	"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Trace, User-Agent\r\n" +
		"X-Trace: up\r\nUser-Agent: curl\r\n\r\n1\r\nx\r\n0\r\nX-Trace: down\r\nUser-Agent: evil\r\n\r\n",
	// Underscore spellings.
	"GET / HTTP/1.1\r\nHost: a\r\nX_Session_Attr_User: admin\r\nx_session-id: f\r\nX-Session_New: 1\r\nX-Api_Key: k\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 6.6.6.6\r\nx_real_ip: 6.6.6.6\r\nX-Forwarded_Proto: https\r\nX_Forwarded-Host: e\r\n\r\n",
	// Forwarding headers the proxy does not set, as a client forges them.
	"GET / HTTP/1.1\r\nHost: a\r\nForwarded: host=evil\r\nX-Forwarded-Port: 1\r\nX_Forwarded_Prefix: /p\r\n" +
		"x-forwarded-ssl: on\r\nX-Forwarded-Scheme: https\r\nX-Forwarded-Server: kept\r\n\r\n",
	// Headers named in Connection, in one field or several.
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Private, X-Session-Foo\r\nX-Private: 1\r\nX-Keep: 2\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nConnection: X-Second\r\nX-Second: s\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: X-Second\r\nX-Second: s\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: Cookie, User-Agent\r\nCookie: a=b\r\nUser-Agent: u\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: Host, X-Forwarded-Host\r\nX-Forwarded-Host: e\r\n\r\n",
	// Mixed case and hop-by-hop headers.
	"GET / HTTP/1.1\r\nHost: a\r\nx-SeSsIoN-aTtR-role: admin\r\nX-SESSION-ID: f\r\nKeep-Alive: 300\r\nTE: trailers\r\n" +
		"Upgrade: h2c\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\nX-Ok: 1\r\n\r\n",
	// Very long names.
	"GET / HTTP/1.1\r\nHost: a\r\nX-Session-" + strings.Repeat("A", 5000) + ": v\r\nX-" + strings.Repeat("b", 5000) + ": w\r\n\r\n",
	// Folded lines and HTTP/1.0 without Host.
	"GET / HTTP/1.1\r\nHost: a\r\nX-Fold: a\r\n X-Session-Id: b\r\n\r\n",
	"GET / HTTP/1.0\r\nX-Session-Id: x\r\n\r\n",
}

func FuzzCleanRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, raw []byte, underscores bool) {
		var req fasthttp.Request
		// A limit, or a declared Content-Length is allocated whole.
		if err := req.ReadLimitBody(bufio.NewReaderSize(bytes.NewReader(raw), 64<<10), 64<<10); err != nil {
			return
		}
		h := &req.Header
		before := modelOf(h.All())
		var e headerEditor
		e.cleanRequest(h, underscores, false) // an untrusted peer, the default
		h.ResetConnectionClose()              // as ServeHTTP does next
		after := modelOf(h.All())
		mustGo := func(name string) bool { return before.mustGoRequest(name, underscores) }
		for _, p := range after.pairs {
			if mustGo(p[0]) {
				t.Fatalf("header %s: %q survived cleaning", p[0], p[1])
			}
		}
		if keys := h.PeekTrailerKeys(); len(keys) != 0 {
			t.Fatalf("trailers %q survived cleaning", keys)
		}
		checkSurvivors(t, before, after, mustGo)

		// On the wire, as a backend's parser reads it.
		if !forwardable(&req) {
			return
		}
		var wire bytes.Buffer
		bw := bufio.NewWriter(&wire)
		if err := req.Write(bw); err != nil {
			t.Fatalf("writing a cleaned request: %v", err)
		}
		bw.Flush()
		r, err := http.ReadRequest(bufio.NewReader(&wire))
		if err != nil {
			return // something net/http refuses is no header a backend sees
		}
		io.Copy(io.Discard, r.Body)
		for k := range r.Header {
			if lower := strings.ToLower(k); mustGo(lower) {
				t.Fatalf("header %s reached the wire:\n%s", k, wire.String())
			}
		}
		if len(r.Trailer) != 0 {
			t.Fatalf("trailers %v reached the wire", r.Trailer)
		}
	})
}

var responseSeeds = []string{
	"HTTP/1.1 200 OK\r\nX-Session-Set-Role: admin\r\nx-SESSION-unset: a\r\nX-Ok: 1\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nConnection: X-Private, close\r\nX-Private: s\r\nKeep-Alive: timeout=5\r\n" +
		"Proxy-Authenticate: Basic\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: X-Second\r\nX-Second: s\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Session-Set-Role, X-Sum\r\n\r\n" +
		"2\r\nok\r\n0\r\nX-Session-Set-Role: admin\r\nX-Sum: 1\r\n\r\n",
	"HTTP/1.1 200 OK\r\nSet-Cookie: a=b\r\nServer: s\r\nX-Session-" + strings.Repeat("A", 5000) + ": v\r\nContent-Length: 0\r\n\r\n",
}

func FuzzCleanResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var resp fasthttp.Response
		if err := resp.ReadLimitBody(bufio.NewReaderSize(bytes.NewReader(raw), 64<<10), 64<<10); err != nil {
			return
		}
		h := &resp.Header
		before := modelOf(h.All())
		var e headerEditor
		e.cleanResponse(h)
		e.stripSessionHeaders(h)
		after := modelOf(h.All())
		for _, p := range after.pairs {
			if before.mustGoResponse(p[0]) {
				t.Fatalf("header %s: %q survived cleaning", p[0], p[1])
			}
		}
		if keys := h.PeekTrailerKeys(); len(keys) != 0 {
			t.Fatalf("trailers %q survived cleaning", keys)
		}
		checkSurvivors(t, before, after, before.mustGoResponse)

		var wire bytes.Buffer
		bw := bufio.NewWriter(&wire)
		if err := resp.Write(bw); err != nil {
			t.Fatalf("writing a cleaned response: %v", err)
		}
		bw.Flush()
		r, err := http.ReadResponse(bufio.NewReader(&wire), nil)
		if err != nil {
			return
		}
		io.Copy(io.Discard, r.Body)
		for k := range r.Header {
			if lower := strings.ToLower(k); before.mustGoResponse(lower) {
				t.Fatalf("header %s reached the wire:\n%s", k, wire.String())
			}
		}
		if len(r.Trailer) != 0 {
			t.Fatalf("trailers %v reached the wire", r.Trailer)
		}
	})
}
