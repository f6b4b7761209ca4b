package proxy

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"sessionproxy/internal/apptest"
)

var normalizePathTests = []struct {
	raw, want string
	err       error
}{
	{"/", "/", nil},
	{"", "/", nil},
	{"/a/b", "/a/b", nil},
	{"/a/b/", "/a/b/", nil},
	{"//a///b//", "/a/b/", nil},
	{"/a/./b/.", "/a/b/", nil},
	{"/a/../b", "/b", nil},
	{"/a/b/..", "/a/", nil},
	{"/a/..", "/", nil},
	{"/..", "", errPathClimbs},
	{"/a/../..", "", errPathClimbs},
	{"/static/%2e%2e/%2e%2e/etc/passwd", "", errPathClimbs},
	{"/static/%2E%2E/x", "/x", nil},
	{"/static/..;x/..;y/etc/passwd", "", errPathClimbs},
	{"/static/..;x/app.css", "/app.css", nil},
	{"/a;jsessionid=1/b;v=2", "/a/b", nil},
	{"/a%3Bx/b", "/a/b", nil}, // an escaped ";" is a ";" once decoded
	{"/;x/a", "/a", nil},
	{"/%252e%252e/x", "/%252e%252e/x", nil}, // decoded once: "%2e%2e" is a name
	{"/caf%C3%A9", "/caf\xc3\xa9", nil},
	{"/a%2Fb", "/a%2Fb", nil}, // an escaped "/" stays inside its segment
	{"/a%2fb", "/a%2Fb", nil},
	{"/a%25b", "/a%25b", nil},
	{"/a%20b?", "/a b?", nil}, // normalizePath sees no query: the caller cut it
	{"/static/..%2F..%2Fetc", "", errPathAmbiguous},
	{"/a/b%2F.%2Fc", "", errPathAmbiguous},
	{"/a%zz", "", errPathEscape},
	{"/a%4", "", errPathEscape},
	{"/a%", "", errPathEscape},
	{"a/b", "/a/b", nil},
	{"/a/.../b", "/a/.../b", nil},
	{"/a/..x/b", "/a/..x/b", nil},
}

func TestNormalizePath(t *testing.T) {
	for _, tc := range normalizePathTests {
		got, err := normalizePath(nil, []byte(tc.raw))
		if err != tc.err || err == nil && string(got) != tc.want {
			t.Errorf("normalizePath(%q) = %q, %v; want %q, %v", tc.raw, got, err, tc.want, tc.err)
		}
	}
}

func TestNormalizePathAllocs(t *testing.T) {
	dst := make([]byte, 0, 256)
	raw := []byte("/static/..;x/a%20b//c/./d")
	if n := testing.AllocsPerRun(100, func() { dst, _ = normalizePath(dst[:0], raw) }); n != 0 {
		t.Errorf("normalizePath allocates %v times", n)
	}
}

var splitTargetTests = []struct {
	target, origin string
	form           targetForm
}{
	{"/a?b", "/a?b", originForm},
	{"//a/b", "//a/b", originForm},
	{"http://evil.com/x?y", "/x?y", absoluteForm},
	{"http://u:p@Evil.com:81", "", absoluteForm},
	{"https://h?q", "?q", absoluteForm},
	{"*", "*", otherForm},
	{"h:443", "h:443", otherForm},
}

func TestSplitTarget(t *testing.T) {
	for _, tc := range splitTargetTests {
		origin, form := splitTarget([]byte(tc.target))
		if string(origin) != tc.origin || form != tc.form {
			t.Errorf("splitTarget(%q) = %q, %d; want %q, %d", tc.target, origin, form, tc.origin, tc.form)
		}
	}
}

// FuzzNormalizePath: never panics; the shortcut for plain paths agrees
// with the segment walk; a result has no "." or ".." segment,
// no empty segment but a trailing one, decodes to itself (idempotent),
// and a path that climbs is an error.
func FuzzNormalizePath(f *testing.F) {
	for _, tc := range normalizePathTests {
		f.Add(tc.raw)
	}
	f.Add("/a/%2e%2E/%2e/..;/b")
	f.Add("/%2F..%2F/x")
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := normalizePath(nil, []byte(raw))
		if slow, serr := normalizeSegments(nil, []byte(raw)); serr != err || !bytes.Equal(slow, got) {
			t.Fatalf("%q: %q, %v; the segment walk gives %q, %v", raw, got, err, slow, serr)
		}
		if err != nil {
			if len(got) != 0 {
				t.Fatalf("%q: error %v with a result %q", raw, err, got)
			}
			return
		}
		if len(got) == 0 || got[0] != '/' {
			t.Fatalf("%q: %q does not start with /", raw, got)
		}
		segs := strings.Split(string(got[1:]), "/")
		for i, s := range segs {
			if s == "." || s == ".." || s == "" && i != len(segs)-1 {
				t.Fatalf("%q: %q has segment %q", raw, got, s)
			}
			if strings.Contains(s, ";") {
				t.Fatalf("%q: %q keeps a parameter in %q", raw, got, s)
			}
		}
		again, err := normalizePath(nil, got)
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("%q: %q normalises again to %q, %v", raw, got, again, err)
		}
		// Climbing: one ".." more than there are segments fails.
		climb := strings.Repeat("/..", len(segs)+1)
		if _, err := normalizePath(nil, append(got, climb...)); err != errPathClimbs {
			t.Fatalf("%q: %q%s gave %v, want errPathClimbs", raw, got, climb, err)
		}
	})
}

// routerProbe records what a route's handler sees.
type routerProbe struct {
	reached bool
	path    string
	host    string
	target  string
}

func (p *routerProbe) ServeHTTP(ctx *fasthttp.RequestCtx) {
	p.reached = true
	path, err := normalPath(ctx)
	if err != nil {
		panic(err)
	}
	p.path = string(path)
	p.host = string(ctx.Request.Header.Host())
	// What HostClient writes: it sets DisablePathNormalizing on the URI.
	u := ctx.Request.URI()
	u.DisablePathNormalizing = true
	p.target = string(u.RequestURI())
}

// FuzzRouterRequestLine runs request lines that fasthttp's server accepts
// through a Router: it never panics; what reaches a handler has a
// normalised path without dot segments, that route's rewrite when it has
// one, and a Host; the rest is answered 400, 505 or 308.
func FuzzRouterRequestLine(f *testing.F) {
	for _, s := range []string{
		"GET /static/%2e%2e/%2e%2e/etc/passwd HTTP/1.1",
		"GET /api/a%2Fb;x/..;y/c HTTP/1.1",
		"GET http://Example.com./api/x HTTP/1.1",
		"GET http://evil.com HTTP/1.0",
		"GET //a//b HTTP/1.1",
		"GET /%252e%252e/ HTTP/1.1",
		"GET /x HTTP/2.0",
		"OPTIONS * HTTP/1.1",
		"GET /a#frag HTTP/1.1",
		"GET //x/http://y/z?q HTTP/1.1",
	} {
		f.Add(s, "example.com", false)
		f.Add(s, "", true)
	}
	f.Fuzz(func(t *testing.T, line, host string, redirect bool) {
		raw := line + "\r\nHost: " + host + "\r\n\r\n"
		var ctx fasthttp.RequestCtx
		if err := ctx.Request.Header.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			return // fasthttp's server answers 400 itself
		}
		// So it does to a target its URI parser refuses, when the server
		// has a HeaderReceived hook, as NewServer's has.
		var u fasthttp.URI
		if u.Parse(ctx.Request.Header.Host(), ctx.Request.Header.RequestURI()) != nil {
			return
		}
		api, def := &routerProbe{}, &routerProbe{}
		rt := &Router{Default: def, Routes: []Route{
			{Path: "/api/", Rewrite: true, RewritePrefix: "/v2/", Handler: api},
			{Host: "example.com", Path: "/static/", Handler: def},
		}}
		if redirect {
			rt.RedirectHTTPSPort = "8443"
		}
		rt.ServeHTTP(&ctx)
		if ctx.UserValue(targetKey{}) != nil {
			t.Fatalf("%q: the target outlives the Router", raw)
		}
		p := api
		if !p.reached {
			p = def
		}
		if !p.reached {
			switch code := ctx.Response.StatusCode(); code {
			case 400, 505, 308:
			default:
				t.Fatalf("%q: no handler and status %d", raw, code)
			}
			return
		}
		if redirect {
			t.Fatalf("%q: reached a handler with redirect on", raw)
		}
		if p.path != "*" && !strings.HasPrefix(p.path, "/") || strings.Contains(p.path+"/", "/../") || strings.Contains(p.path+"/", "/./") {
			t.Fatalf("%q: handler saw path %q", raw, p.path)
		}
		if api.reached && (!strings.HasPrefix(p.path, "/v2/") || !strings.HasPrefix(p.target, "/v2/")) {
			t.Fatalf("%q: rewrite route saw path %q, target %q", raw, p.path, p.target)
		}
		if sent := string(ctx.Request.Header.RequestURI()); def.reached && strings.HasPrefix(sent, "/") && p.target != sent {
			t.Fatalf("%q: target %q goes on as %q", raw, sent, p.target)
		}
	})
}

// TestProxyAloneSpeaksHTTP11: a Proxy served without a Router sends an
// HTTP/1.0 request on as HTTP/1.1, logs it as the client spoke it, and
// answers other versions 505 itself.
func TestProxyAloneSpeaksHTTP11(t *testing.T) {
	be := newTestBackend(t, "a")
	var logged apptest.Output
	al, err := NewAccessLog("combined", &logged)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Pool: newPool(t, "round_robin", nil, be.url()), Settings: Settings{AccessLog: al}}
	url := startProxy(t, p, ServerOptions{})
	raw := rawRequest(t, url, "GET /ten HTTP/1.0\r\nHost: a\r\n\r\n")
	if !strings.HasPrefix(raw, "200\n") {
		t.Fatalf("HTTP/1.0:\n%s", raw)
	}
	be.mu.Lock()
	proto := be.lastReq.Proto
	be.mu.Unlock()
	if proto != "HTTP/1.1" {
		t.Errorf("backend got %s, want HTTP/1.1", proto)
	}
	for _, v := range []string{"HTTP/2.0", "HTTP/9.9", "HTTP/0.9"} {
		// The proxy's own 505, not the one Go's server answers when the
		// request reaches it.
		if raw := rawRequest(t, url, "GET / "+v+"\r\nHost: a\r\n\r\n"); !strings.HasPrefix(raw, "505\n") ||
			!strings.HasSuffix(raw, "\n"+errVersion.Reason+"\n") {
			t.Errorf("%s:\n%s", v, raw)
		}
	}
	al.Close()
	if log := logged.String(); !strings.Contains(log, `"GET /ten HTTP/1.0" 200`) {
		t.Errorf("access log:\n%s\nwant the client's HTTP/1.0", log)
	}
}
