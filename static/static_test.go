package static

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// site is a directory tree to serve, beside a secret that must never be
// served.
type site struct {
	root, outside string
	files         *Files
}

func newSite(t testing.TB) *site {
	t.Helper()
	base := t.TempDir()
	s := &site{root: filepath.Join(base, "www"), outside: filepath.Join(base, "secret")}
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
	write("www/app.css", "body{color:red}\n")
	write("www/sub/index.html", "<h1>sub</h1>\n")
	write("www/run.php", "<?php secret();\n")
	write("secret/passwd", "root:x:0:0\n")
	symlink(t, filepath.Join(s.outside, "passwd"), filepath.Join(s.root, "abs-out.txt"))
	symlink(t, "../secret/passwd", filepath.Join(s.root, "rel-out.txt"))
	symlink(t, s.outside, filepath.Join(s.root, "outdir"))
	symlink(t, "..", filepath.Join(s.root, "up"))
	symlink(t, filepath.Join(s.root, "app.css"), filepath.Join(s.root, "abs-in.css"))
	symlink(t, "app.css", filepath.Join(s.root, "rel-in.css"))
	symlink(t, "sub/../app.css", filepath.Join(s.root, "dotdot-in.css"))
	symlink(t, filepath.Join(s.root, "sub"), filepath.Join(s.root, "subdir"))
	symlink(t, "run.php", filepath.Join(s.root, "script.txt"))
	symlink(t, "loop", filepath.Join(s.root, "loop"))
	mkfifo(t, filepath.Join(s.root, "fifo"))
	f, err := New(s.root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	s.files = f
	return s
}

func symlink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// get serves a GET for path (already normalised) and returns the status
// and body.
func (s *site) get(path string) (int, string) {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI(path)
	s.files.Serve(&ctx, []byte(path))
	body := string(ctx.Response.Body()) // reads and closes a file's body stream
	return ctx.Response.StatusCode(), body
}

// TestSymlinks: a link that stays inside the root is served, whether its
// target is relative or absolute (os.Root alone refuses every absolute
// link); one that leads out, by any spelling, is 403; one to a name
// never served is 404, as that name is.
func TestSymlinks(t *testing.T) {
	s := newSite(t)
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{
		{"/app.css", 200, "body{color:red}\n"},
		{"/abs-in.css", 200, "body{color:red}\n"},
		{"/rel-in.css", 200, "body{color:red}\n"},
		{"/dotdot-in.css", 200, "body{color:red}\n"},
		{"/subdir/", 200, "<h1>sub</h1>\n"},
		{"/subdir/index.html", 200, "<h1>sub</h1>\n"},
		{"/abs-out.txt", 403, ""},
		{"/rel-out.txt", 403, ""},
		{"/outdir/passwd", 403, ""},
		{"/up/secret/passwd", 403, ""},
		{"/loop", 403, ""},
		{"/fifo", 403, ""},
		{"/script.txt", 404, ""},
		{"/run.php", 404, ""},
		{"/missing", 404, ""},
		{"/app.css/x", 404, ""},
	} {
		status, body := s.get(tc.path)
		if strings.Contains(body, "root:") || strings.Contains(body, "secret()") {
			t.Errorf("%s: leaked %q", tc.path, body)
		}
		if status != tc.status || (tc.status == 200 && body != tc.body) {
			t.Errorf("%s: %d %q, want %d %q", tc.path, status, body, tc.status, tc.body)
		}
	}
}

// TestFileWithTrailingSlash: "/app.css/" names no file (nginx: ENOTDIR,
// 404), through a link as well. Served, a file would get past a route
// that matches its name only without the slash, as import-nginx's
// "location ~ \.json$ { deny all; }" before a static root
// (TestImportNginxSideBySide/two-sites.conf).
func TestFileWithTrailingSlash(t *testing.T) {
	s := newSite(t)
	for _, p := range []string{"/app.css/", "/rel-in.css/", "/sub/index.html/"} {
		if status, body := s.get(p); status != 404 {
			t.Errorf("%s: %d %q, want 404", p, status, body)
		}
		if s.files.Exists([]byte(p)) {
			t.Errorf("%s: Exists, want not", p)
		}
	}
	if status, _ := s.get("/sub/"); status != 200 {
		t.Errorf("/sub/: %d, want 200 (a directory's index)", status)
	}
}

// TestSymlinkSwappedIn replaces a file inside the root by a link to the
// secret outside it after its name was checked and before it is opened:
// the open itself refuses it. A check of the name before an open by name
// (filepath.EvalSymlinks, then os.Open) serves the secret here.
func TestSymlinkSwappedIn(t *testing.T) {
	s := newSite(t)
	victim := filepath.Join(s.root, "victim.css")
	if err := os.WriteFile(victim, []byte("ok\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testHookResolved = func() {
		if err := os.Remove(victim); err != nil {
			t.Error(err)
		}
		symlink(t, filepath.Join(s.outside, "passwd"), victim)
	}
	defer func() { testHookResolved = nil }()
	status, body := s.get("/victim.css")
	if strings.Contains(body, "root:") || status != 403 {
		t.Errorf("a link swapped to the outside: %d %q, want 403", status, body)
	}
}

func TestRefusedName(t *testing.T) {
	for path, want := range map[string]bool{
		"/app.css": false, "/.well-known/acme-challenge/x": false, "/a/b.txt": false,
		"/index.php": true, "/INDEX.PHP": true, "/a.php.bak": true, "/x.phps": true,
		"/.env": true, "/.git/config": true, "/a/.htpasswd": true, "/a/..b": true,
		".": false, "./a": false,
	} {
		if got := RefusedName(path); got != want {
			t.Errorf("%s: %v, want %v", path, got, want)
		}
	}
}

var parseRangeTests = []struct {
	spec          string
	size          int64
	start, length int64
	ok            bool
}{
	{"bytes=0-0", 10, 0, 1, true},
	{"bytes=0-", 10, 0, 10, true},
	{"bytes=-20", 10, 0, 10, true},
	{"bytes=-0", 10, 0, 0, false},
	{"bytes=5-4", 10, 0, 0, false},
	{"bytes=10-", 10, 0, 0, false},
	{"bytes=0-1,3-4", 10, 0, 10, true}, // several ranges: the whole file
	{"items=0-1", 10, 0, 10, true},     // another unit: ignored
	{"bytes=x-1", 10, 0, 0, false},
	{"bytes=-", 10, 0, 0, false},
}

func TestParseRange(t *testing.T) {
	for _, tc := range parseRangeTests {
		s, n, ok := parseRange([]byte(tc.spec), tc.size)
		if s != tc.start || n != tc.length || ok != tc.ok {
			t.Errorf("parseRange(%q, %d) = %d, %d, %v; want %d, %d, %v", tc.spec, tc.size, s, n, ok, tc.start, tc.length, tc.ok)
		}
	}
}

// FuzzServe: whatever path a request names (the proxy hands over only
// normalised ones; this takes any), the secret beside the root is never
// sent, and the answer is one Files gives.
func FuzzServe(f *testing.F) {
	for _, p := range []string{"/app.css", "/abs-in.css", "/abs-out.txt", "/up/secret/passwd", "/outdir/passwd",
		"/sub", "/subdir/", "/../secret/passwd", "/sub/../../secret/passwd", "/script.txt", "/loop", "/%2F", "/a%25b", "//app.css"} {
		f.Add(p)
	}
	s := newSite(f)
	f.Fuzz(func(t *testing.T, path string) {
		status, body := s.get(path)
		if strings.Contains(body, "root:") || strings.Contains(body, "secret()") {
			t.Fatalf("%q: %d %q", path, status, body)
		}
		switch status {
		case 200, 301, 403, 404:
		default:
			t.Fatalf("%q: status %d", path, status)
		}
	})
}
