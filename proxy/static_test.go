package proxy

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// staticSite serves a directory tree through a Router: /static/ from
// files, everything else from an app backend, as nginx's root would.
type staticSite struct {
	url, root, outside string
	app                *testBackend
}

func newStaticSite(t *testing.T) *staticSite {
	t.Helper()
	base := t.TempDir()
	s := &staticSite{root: filepath.Join(base, "www"), outside: filepath.Join(base, "secret"), app: newTestBackend(t, "app")}
	write := func(name, body string) {
		t.Helper()
		p := filepath.Join(base, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("www/static/app.css", "body{color:red}\n")
	write("www/static/index.html", "<h1>static</h1>\n")
	write("www/static/docs/index.html", "<h1>docs</h1>\n")
	write("www/static/empty/.keep", "")
	write("www/static/data.bin", strings.Repeat("0123456789", 100))
	write("www/static/a b.txt", "spaced\n")
	write("secret/passwd", "root:x:0:0\n")
	mustSymlink(t, filepath.Join(s.outside, "passwd"), filepath.Join(s.root, "static", "leak.txt"))
	mustSymlink(t, s.outside, filepath.Join(s.root, "static", "outdir"))
	mustSymlink(t, filepath.Join(s.root, "static", "app.css"), filepath.Join(s.root, "static", "alias.css"))
	mustSymlink(t, filepath.Join(s.outside, "passwd"), filepath.Join(s.root, "static", "docs2"))
	rec := &Recorder{Metrics: NewMetrics()}
	st, err := NewStatic(s.root, rec)
	if err != nil {
		t.Fatal(err)
	}
	rt := &Router{
		Default: &Proxy{Pool: newPool(t, "round_robin", nil, s.app.url())},
		Routes:  []Route{{Path: "/static/", Handler: st}},
	}
	s.url = startHandler(t, rt, ServerOptions{})
	return s
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestStaticServesFiles(t *testing.T) {
	s := newStaticSite(t)
	for _, tc := range []struct {
		path, status, ctype, body string
	}{
		{"/static/app.css", "200", "text/css; charset=utf-8", "body{color:red}\n"},
		{"/static/", "200", "text/html; charset=utf-8", "<h1>static</h1>\n"},
		{"/static/docs/", "200", "text/html; charset=utf-8", "<h1>docs</h1>\n"},
		{"/static/alias.css", "200", "text/css; charset=utf-8", "body{color:red}\n"}, // a link inside the root
		{"/static/a%20b.txt", "200", "text/plain; charset=utf-8", "spaced\n"},
		{"/static/missing.css", "404", "", ""},
		{"/static/app.css/x", "404", "", ""},
		{"/static/empty/", "403", "", ""},   // no index.html: not listed
		{"/static/leak.txt", "403", "", ""}, // a link out of the root
		{"/static/outdir/passwd", "403", "", ""},
		{"/static/docs2", "403", "", ""},
	} {
		r := get(t, s.url+tc.path)
		if got := r.status; strconv.Itoa(got) != tc.status {
			t.Errorf("%s: status %d, want %s", tc.path, got, tc.status)
			continue
		}
		if tc.status != "200" {
			if strings.Contains(r.body, "root:") {
				t.Errorf("%s: leaked the file outside the root", tc.path)
			}
			continue
		}
		if r.body != tc.body || r.header.Get("Content-Type") != tc.ctype {
			t.Errorf("%s: %q %q, want %q %q", tc.path, r.header.Get("Content-Type"), r.body, tc.ctype, tc.body)
		}
		if r.header.Get("ETag") == "" || r.header.Get("Last-Modified") == "" || r.header.Get("X-Request-Id") == "" {
			t.Errorf("%s: headers %v", tc.path, r.header)
		}
		if r.header.Get("Set-Cookie") != "" || s.app.hits.Load() != 0 {
			t.Errorf("%s: session work or backend hit on a static route", tc.path)
		}
	}
}

func TestStaticDirectoryRedirectAndMethods(t *testing.T) {
	s := newStaticSite(t)
	raw := rawRequest(t, s.url, "GET /static/docs?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
	if !strings.HasPrefix(raw, "301\n") || !strings.Contains(raw, "Location: /static/docs/?x=1\r\n") {
		t.Errorf("directory without slash:\n%s", raw)
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "OPTIONS"} {
		raw := rawRequest(t, s.url, m+" /static/app.css HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
		if !strings.HasPrefix(raw, "405\n") || !strings.Contains(raw, "Allow: GET, HEAD\r\n") {
			t.Errorf("%s:\n%s", m, raw)
		}
	}
	raw = rawRequest(t, s.url, "HEAD /static/app.css HTTP/1.1\r\nHost: a\r\n\r\n")
	if !strings.HasPrefix(raw, "200\n") || !strings.Contains(raw, "Content-Length: 16\r\n") || !strings.HasSuffix(raw, "\r\n\n") {
		t.Errorf("HEAD:\n%q", raw)
	}
}

// TestStaticTraversal sends attacks as raw bytes: whatever the spelling,
// nothing outside the root is served, and paths that normalise out of
// /static/ are no longer static requests at all.
func TestStaticTraversal(t *testing.T) {
	s := newStaticSite(t)
	for _, target := range []string{
		"/static/../../secret/passwd",
		"/static/%2e%2e/%2e%2e/secret/passwd",
		"/static/%2E%2E%2F%2E%2E%2Fsecret%2Fpasswd",
		"/static/..%2f..%2fsecret/passwd",
		"/static//../../secret/passwd",
		"//static/../../secret/passwd",
		"/static/./../../secret/passwd",
		"/static/docs/../../../secret/passwd",
		"/static/%252e%252e/secret/passwd",
		"/static/..;x/..;y/secret/passwd",
		"/static/..%3B/..%3B/secret/passwd",
		"/static/docs/..;/../../secret/passwd",
		"/static/..%2F..%2Fsecret%2Fpasswd",
		"/static/..\\..\\secret\\passwd",
		"/static/leak.txt",
		"/static/outdir/passwd",
		"/static/app.css%00.html",
		"/static/%00/../app.css",
	} {
		raw := rawRequest(t, s.url, "GET "+target+" HTTP/1.1\r\nHost: a\r\n\r\n")
		if strings.Contains(raw, "root:x") {
			t.Errorf("GET %s served the secret:\n%s", target, raw)
		}
		status := raw[:3]
		fromApp := strings.Contains(raw, "X-Backend: app")
		if status == "200" && !fromApp {
			t.Errorf("GET %s: 200 from the static route:\n%s", target, raw)
		}
	}
}

func TestStaticConditionalAndRange(t *testing.T) {
	s := newStaticSite(t)
	first := get(t, s.url+"/static/data.bin")
	etag, lm := first.header.Get("ETag"), first.header.Get("Last-Modified")
	if first.status != 200 || len(first.body) != 1000 || first.header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("full: %d %d %v", first.status, len(first.body), first.header)
	}
	for _, tc := range []struct {
		hdr    []string
		status int
		body   string
		cr     string
	}{
		{[]string{"If-None-Match", etag}, 304, "", ""},
		{[]string{"If-None-Match", `"other", ` + etag}, 304, "", ""},
		{[]string{"If-None-Match", `"other"`}, 200, strings.Repeat("0123456789", 100), ""},
		{[]string{"If-Modified-Since", lm}, 304, "", ""},
		{[]string{"If-Modified-Since", time.Now().Add(-48 * time.Hour).UTC().Format(http.TimeFormat)}, 200, strings.Repeat("0123456789", 100), ""},
		{[]string{"Range", "bytes=10-14"}, 206, "01234", "bytes 10-14/1000"},
		{[]string{"Range", "bytes=995-"}, 206, "56789", "bytes 995-999/1000"},
		{[]string{"Range", "bytes=-3"}, 206, "789", "bytes 997-999/1000"},
		{[]string{"Range", "bytes=990-5000"}, 206, "0123456789", "bytes 990-999/1000"},
		{[]string{"Range", "bytes=1000-"}, 416, "", "bytes */1000"},
		{[]string{"Range", "bytes=10-14", "If-Range", etag}, 206, "01234", "bytes 10-14/1000"},
		{[]string{"Range", "bytes=10-14", "If-Range", `"stale"`}, 200, strings.Repeat("0123456789", 100), ""},
	} {
		r := get(t, s.url+"/static/data.bin", tc.hdr...)
		if r.status != tc.status || (tc.status != 416 && r.body != tc.body) || r.header.Get("Content-Range") != tc.cr {
			t.Errorf("%v: %d %q Content-Range %q, want %d %q %q", tc.hdr, r.status, r.body, r.header.Get("Content-Range"), tc.status, tc.body, tc.cr)
		}
	}
}

// TestStaticAlias: a static route with an alias serves prefix + rest from
// root + replacement + rest, and redirects a directory to the path the
// client asked for, not the rewritten one.
func TestStaticAlias(t *testing.T) {
	s := newStaticSite(t)
	st, err := NewStatic(filepath.Join(s.root, "static"), nil)
	if err != nil {
		t.Fatal(err)
	}
	st.Alias("/img/", "/")
	rt := &Router{
		Default: &Proxy{Pool: newPool(t, "round_robin", nil, s.app.url())},
		Routes:  []Route{{Path: "/img/", Handler: st}},
	}
	url := startHandler(t, rt, ServerOptions{})
	if r := get(t, url+"/img/app.css"); r.status != 200 || r.body != "body{color:red}\n" {
		t.Errorf("/img/app.css: %d %q", r.status, r.body)
	}
	if r := get(t, url+"/img/docs/"); r.status != 200 || r.body != "<h1>docs</h1>\n" {
		t.Errorf("/img/docs/: %d %q", r.status, r.body)
	}
	raw := rawRequest(t, url, "GET /img/docs?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
	if !strings.HasPrefix(raw, "301\n") || !strings.Contains(raw, "Location: /img/docs/?x=1\r\n") {
		t.Errorf("directory without slash behind an alias:\n%s", raw)
	}
	for _, p := range []string{"/img/leak.txt", "/img/%2e%2e/secret/passwd", "/img/..%2f..%2fsecret/passwd"} {
		// a path that normalises out of /img/ goes to the app instead
		if r := get(t, url+p); strings.Contains(r.body, "root:") {
			t.Errorf("%s: %d %q: served from outside the alias", p, r.status, r.body)
		}
	}
}
