package proxy

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestErrorPagesForTheProxysOwnErrors(t *testing.T) {
	dir := t.TempDir()
	page502 := filepath.Join(dir, "502.html")
	page413 := filepath.Join(dir, "413.html")
	os.WriteFile(page502, []byte("<h1>we are down</h1>"), 0o644)
	os.WriteFile(page413, []byte("<h1>too big</h1>"), 0o644)
	pages, err := LoadErrorPages(map[int]string{502: page502, 413: page413})
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Pool: newPool(t, "round_robin", nil, "http://"+freePort(t)), Settings: Settings{ErrorPages: pages}}
	url := startHandler(t, p, ServerOptions{MaxBody: 10, ErrorPages: func() *ErrorPages { return pages }})

	r := get(t, url+"/", "Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	if r.status != 502 || r.body != "<h1>we are down</h1>" || r.header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("browser: %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Error("error page without X-Request-Id")
	}
	r = get(t, url+"/", "Accept", "*/*")
	if r.status != 502 || r.body != "backend unreachable\n" || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Errorf("curl: %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
	}
	// fasthttp's own answer to a body over max_body goes through the pages too.
	raw := rawRequest(t, url, "POST / HTTP/1.1\r\nHost: a\r\nAccept: text/html\r\nContent-Length: 100\r\n\r\n"+strings.Repeat("x", 100))
	if !strings.HasPrefix(raw, "413\n") || !strings.HasSuffix(raw, "<h1>too big</h1>") {
		t.Errorf("413:\n%s", raw)
	}
	raw = rawRequest(t, url, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n"+strings.Repeat("x", 100))
	if !strings.HasPrefix(raw, "413\n") || !strings.HasSuffix(raw, "request body too large\n") {
		t.Errorf("413 plain:\n%s", raw)
	}
}

func TestLoadErrorPagesNamesTheMissingFile(t *testing.T) {
	_, err := LoadErrorPages(map[int]string{503: "/nonexistent/503.html"})
	if err == nil || !strings.Contains(err.Error(), "error_pages.503") || !strings.Contains(err.Error(), "/nonexistent/503.html") {
		t.Fatalf("err = %v", err)
	}
	// Of several missing files, the lowest status is named, every time.
	several := map[int]string{504: "/nonexistent/504.html", 413: "/nonexistent/413.html", 502: "/nonexistent/502.html", 503: "/nonexistent/503.html"}
	for range 20 {
		if _, err := LoadErrorPages(several); err == nil || !strings.HasPrefix(err.Error(), "error_pages.413: ") {
			t.Fatalf("err = %v, want error_pages.413 first", err)
		}
	}
}

func TestRealIP(t *testing.T) {
	app := newTestBackend(t, "app")
	loopback := netip.MustParsePrefix("127.0.0.0/8")
	other := netip.MustParsePrefix("10.0.0.0/8")
	for _, tc := range []struct {
		name          string
		trusted       []netip.Prefix
		xff, realIP   string
		wantXFF, want string
	}{
		// A trusted peer's list is passed on with the peer appended
		// (CONTRACT section 12), as every proxy in the chain does.
		{"trusted peer", []netip.Prefix{loopback}, "203.0.113.7", "", "203.0.113.7, 127.0.0.1", "203.0.113.7"},
		{"trusted chain", []netip.Prefix{loopback, other}, "198.51.100.1, 203.0.113.7, 10.1.2.3", "", "198.51.100.1, 203.0.113.7, 10.1.2.3, 127.0.0.1", "203.0.113.7"},
		{"trusted peer, garbage", []netip.Prefix{loopback}, "not-an-ip", "", "not-an-ip, 127.0.0.1", "127.0.0.1"},
		{"trusted peer, no header", []netip.Prefix{loopback}, "", "", "127.0.0.1", "127.0.0.1"},
		{"untrusted peer", []netip.Prefix{other}, "203.0.113.7", "203.0.113.8", "127.0.0.1", "127.0.0.1"},
	} {
		rt := &Router{
			Default: &Proxy{Pool: newPool(t, "round_robin", nil, app.url())},
			RealIP:  &RealIP{Trusted: tc.trusted},
		}
		url := startHandler(t, rt, ServerOptions{})
		var hdr []string
		if tc.xff != "" {
			hdr = append(hdr, "X-Forwarded-For", tc.xff)
		}
		if tc.realIP != "" {
			hdr = append(hdr, "X-Real-IP", tc.realIP)
		}
		if r := get(t, url+"/", hdr...); r.status != 200 {
			t.Fatalf("%s: %d", tc.name, r.status)
		}
		h := app.lastHeader()
		if h.Get("X-Forwarded-For") != tc.wantXFF || h.Get("X-Real-Ip") != tc.want || len(h.Values("X-Forwarded-For")) != 1 {
			t.Errorf("%s: backend got X-Forwarded-For %q X-Real-IP %q, want %q %q", tc.name, h.Values("X-Forwarded-For"), h.Get("X-Real-Ip"), tc.wantXFF, tc.want)
		}
	}
}

func TestRealIPLeavesForwardingAloneWithoutTrust(t *testing.T) {
	// Without real_ip_from the proxy appends to X-Forwarded-For as nginx's
	// $proxy_add_x_forwarded_for does, and X-Real-IP is the peer.
	app := newTestBackend(t, "app")
	url := startHandler(t, &Router{Default: &Proxy{Pool: newPool(t, "round_robin", nil, app.url())}}, ServerOptions{})
	get(t, url+"/", "X-Forwarded-For", "203.0.113.7")
	if h := app.lastHeader(); h.Get("X-Forwarded-For") != "203.0.113.7, 127.0.0.1" || h.Get("X-Real-Ip") != "127.0.0.1" {
		t.Errorf("got %v", h)
	}
}
