// Package php_test runs a real PHP app (tests/app) under real PHP-FPM with
// sessionproxy.php as auto_prepend_file, behind the real sessionproxy
// binary and two real memcached nodes, with the shipped defaults
// otherwise (CONTRACT.md section 13).
package php_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/apptest"
	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/phpfpmtest"
)

// site is the proxy with both PHP-FPM pools (TCP and unix socket) as its
// default pool, and a Go backend without an adapter under /go/.
type site struct {
	base, admin string
	log         *apptest.Output
	fpm         *phpfpmtest.Server
}

func startSite(t *testing.T) *site {
	t.Helper()
	adapter, _ := filepath.Abs("sessionproxy.php")
	root, _ := filepath.Abs("tests/app")
	fpm := phpfpmtest.Start(t, root, map[string]string{"auto_prepend_file": adapter})
	// A backend in another language without an adapter: it sets typed
	// JSON values and one plain string by hand.
	goApp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Session-Set-score", "3")
		w.Header().Set("X-Session-Set-tags", `["a","b"]`)
		w.Header().Set("X-Session-Set-legacy", "plain text")
		io.WriteString(w, `{"sid":"go"}`)
	}))
	t.Cleanup(goApp.Close)
	// A Flask app with adapters/python: typed values across languages.
	pyDir, _ := filepath.Abs("../python")
	addrs := apptest.FreeAddrs(t, 3) // all drawn before any app starts
	flaskAddr, listen, admin := addrs[0], addrs[1], addrs[2]
	apptest.Run(t, "flask", []string{"PYTHONPATH=" + pyDir, "PYTHONDONTWRITEBYTECODE=1"},
		apptest.Python(t, "flask"), filepath.Join(pyDir, "tests/apps/flask_app.py"), "--listen", flaskAddr, "--name", "flask")
	bin := filepath.Join(t.TempDir(), "sessionproxy")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/sessionproxy").CombinedOutput(); err != nil {
		t.Fatalf("building sessionproxy: %v\n%s", err, out)
	}
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	// Everything not named here is the shipped default.
	conf := fmt.Sprintf(`listen: %q
admin: %q
backends:
  - url: "fastcgi://%s"
  - url: "fastcgi+unix:%s"
fastcgi:
  root: %q
upstreams:
  go:
    backends: [{url: %q}]
  flask:
    backends: [{url: "http://%s"}]
routes:
  - match: {path: "/go/"}
    upstream: go
  - match: {path: "/flask/"}
    upstream: flask
session:
  memcached:
    nodes: ["n1:%s", "n2:%s"]
`, listen, admin, fpm.Addr, fpm.Socket, root, goApp.URL, flaskAddr, n1.Addr, n2.Addr)
	confFile := filepath.Join(t.TempDir(), "sessionproxy.yaml")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	log := apptest.StartProxy(t, bin, confFile, listen)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("php-fpm:\n%s", fpm.Output())
		}
	})
	apptest.WaitListen(t, flaskAddr, "Flask", 20*time.Second)
	return &site{base: "http://" + listen, admin: "http://" + admin, log: log, fpm: fpm}
}

type browser struct {
	t    *testing.T
	c    *http.Client
	site *site
}

func (s *site) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 20 * time.Second}, site: s}
}

type page struct {
	Sid     string         `json:"sid"`
	Count   int            `json:"count"`
	Session map[string]any `json:"session"`
}

func (b *browser) get(path string) page {
	b.t.Helper()
	resp, err := b.c.Get(b.site.base + path)
	if err != nil {
		b.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var p page
	if resp.StatusCode != 200 || json.Unmarshal(body, &p) != nil {
		b.t.Fatalf("GET %s: %d %q", path, resp.StatusCode, body)
	}
	for k := range resp.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-session-") {
			b.t.Fatalf("GET %s: %s reached the client", path, k)
		}
	}
	return p
}

// raw GETs path and returns the body, whatever it is.
func (b *browser) raw(path string) string {
	b.t.Helper()
	resp, err := b.c.Get(b.site.base + path)
	if err != nil {
		b.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		b.t.Fatalf("GET %s: %d %q", path, resp.StatusCode, body)
	}
	return string(body)
}

func (b *browser) cookie() string {
	u, _ := url.Parse(b.site.base)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "SPSESSIONID" {
			return c.Value
		}
	}
	return ""
}

// stored is the store's attributes of id, or nil.
func (s *site) stored(t *testing.T, id string) map[string]string {
	t.Helper()
	return apptest.Stored(t, s.admin, id)
}

func TestPHPAdapterBehindProxy(t *testing.T) {
	s := startSite(t)

	t.Run("session_start and $_SESSION across both pools", func(t *testing.T) {
		b := s.browser(t)
		for i := 1; i <= 6; i++ {
			p := b.get("/count.php")
			if p.Count != i || p.Sid != b.cookie() {
				t.Fatalf("request %d: count %d sid %q, want %d and the cookie %q", i, p.Count, p.Sid, i, b.cookie())
			}
		}
		if got := s.stored(t, b.cookie())["count"]; got != "6" {
			t.Fatalf("the store holds count=%q, want 6", got)
		}
	})

	t.Run("session_regenerate_id(true) rotates, session_destroy() invalidates", func(t *testing.T) {
		b := s.browser(t)
		b.get("/count.php")
		old := b.cookie()
		p := b.get("/login.php?u=ann")
		if p.Sid == old || p.Sid != b.cookie() || len(p.Sid) != 22 {
			t.Fatalf("login: sid %q, cookie %q, old %q: want a new 22-character ID in both", p.Sid, b.cookie(), old)
		}
		if s.stored(t, old) != nil {
			t.Fatal("the old session survived session_regenerate_id(true)")
		}
		attrs := s.stored(t, p.Sid)
		for name, want := range map[string]string{
			"user": `"ann"`, "pojun-2etech": `{"items":[1,2]}`, "greeting": `"Jos%C3%A9 %F0%9F%99%82"`, "ratio": "1.5", "count": "1",
		} {
			if attrs[name] != want {
				t.Errorf("stored %s = %q, want %q (all: %q)", name, attrs[name], want, attrs)
			}
		}
		me := b.get("/me.php")
		if me.Session["user"] != "ann" || me.Session["greeting"] != "José 🙂" || me.Session["ratio"] != 1.5 ||
			fmt.Sprint(me.Session["pojun.tech"]) != "map[items:[1 2]]" {
			t.Fatalf("after login: %#v", me.Session)
		}
		id := b.cookie()
		b.get("/logout.php")
		if s.stored(t, id) != nil {
			t.Fatal("session_destroy() left the session in the store")
		}
		if me := b.get("/me.php"); len(me.Session) != 0 || me.Sid == id {
			t.Fatalf("after logout: %q %#v", me.Sid, me.Session)
		}
	})

	// Section 16: session_start(['cookie_lifetime' => n]) reaches the
	// proxy with the session's write as
	// X-Session-Max-Age: its own ttl in the store and a persistent cookie.
	t.Run("a cookie lifetime is remember me", func(t *testing.T) {
		code, set := apptest.SessionSetCookie(t, s.base+"/remember.php?lifetime=1209600", "", "SPSESSIONID")
		id, _, _ := strings.Cut(strings.TrimPrefix(set, "SPSESSIONID="), ";")
		if code != 200 || !strings.Contains(set, "; Max-Age=1209600;") {
			t.Fatalf("remember me: %d, Set-Cookie %q", code, set)
		}
		if got := apptest.StoredTTL(t, s.admin, id); got != 1209600 {
			t.Fatalf("the store holds ttl %d, want 1209600", got)
		}
		// The same lifetime again without a change: no write, no cookie.
		if _, set := apptest.SessionSetCookie(t, s.base+"/remember.php?lifetime=1209600", "SPSESSIONID="+id, "SPSESSIONID"); set != "" {
			t.Fatalf("unchanged: Set-Cookie %q", set)
		}
		if got := apptest.StoredTTL(t, s.admin, id); got != 1209600 {
			t.Fatalf("unchanged: the store holds ttl %d", got)
		}
	})

	t.Run("session changed after output", func(t *testing.T) {
		b := s.browser(t)
		b.get("/count.php")
		b.get("/late.php")
		me := b.get("/me.php")
		if me.Session["late"] != true || me.Session["count"] != nil {
			t.Fatalf("late.php's changes: %#v", me.Session)
		}
	})

	t.Run("typed values from a backend in another language", func(t *testing.T) {
		b := s.browser(t)
		b.get("/count.php")
		b.get("/go/set")
		me := b.get("/me.php")
		if me.Session["score"] != float64(3) || fmt.Sprint(me.Session["tags"]) != "[a b]" || me.Session["legacy"] != "plain text" {
			t.Fatalf("values set by the Go backend, read by PHP: %#v", me.Session)
		}
	})

	t.Run("typed values between PHP and Flask", func(t *testing.T) {
		b := s.browser(t)
		b.get("/count.php")
		b.raw("/flask/typed")
		me := b.get("/me.php")
		if me.Session["pojun.tech"] != "José 🙂" || me.Session["userId"] != float64(3) ||
			fmt.Sprint(me.Session["cart"]) != "[1 two 3.5 <nil>]" || fmt.Sprint(me.Session["prefs"]) != "map[items:[1 2] name:Zoë ok:true]" {
			t.Fatalf("Flask's values read by PHP: %#v", me.Session)
		}
		b.get("/login.php?u=Zoë")
		dump := b.raw("/flask/dump")
		for _, want := range []string{`"user":["str","Zo\u00eb"]`, `"ratio":["float",1.5]`, `"pojun.tech":["dict",{"items":[1,2]}]`, `"greeting":["str","Jos\u00e9 \ud83d\ude42"]`} {
			if !strings.Contains(dump, want) {
				t.Fatalf("PHP's values read by Flask: want %s in\n%s", want, dump)
			}
		}
	})

	t.Run("a large response takes the session of its first flush", func(t *testing.T) {
		b := s.browser(t)
		b.get("/count.php")
		resp, err := b.c.Get(s.base + "/big.php")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != 200<<10 {
			t.Fatalf("big.php: %d bytes", n)
		}
		me := b.get("/me.php")
		if me.Session["before"] != float64(1) || me.Session["after"] != nil {
			t.Fatalf("after big.php: %#v", me.Session)
		}
	})

	t.Run("a session over max_size fails the session write", func(t *testing.T) {
		b := s.browser(t)
		b.get("/count.php")
		// 15 bytes of overhead, count=1 (1+5+1+1), big with its quoted
		// value (1+3 + 3+n+2).
		atLimit := 64<<10 - 15 - 8 - (1 + 3 + 3 + 2)
		// PHP's way with a save handler that cannot write: a warning, and
		// the page goes out.
		b.raw(fmt.Sprintf("/huge.php?n=%d", atLimit+1))
		// php-fpm writes a worker's messages to its log on its own time:
		// the warning may come a moment after the page.
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(s.fpm.Output(), "Failed to write session data"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no PHP warning in php-fpm's log:\n%s", s.fpm.Output())
			}
		}
		if attrs := s.stored(t, b.cookie()); len(attrs) != 1 || attrs["count"] != "1" {
			t.Fatalf("after the refused write the store holds %v", attrs)
		}
		// At the adapter's limit the proxy's own count (with the expiry)
		// is over: the adapter is never stricter, and between the two the
		// proxy's 502 remains.
		resp, err := b.c.Get(fmt.Sprintf("%s/huge.php?n=%d", s.base, atLimit))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("at the adapter's limit: %d, want the proxy's 502", resp.StatusCode)
		}
		b.raw(fmt.Sprintf("/huge.php?n=%d", atLimit-32))
		if attrs := s.stored(t, b.cookie()); len(attrs["big"]) != atLimit-32+2 {
			t.Fatalf("32 bytes under the adapter's limit the store holds %d bytes of big", len(attrs["big"]))
		}
	})
}

// Every PHP file of the adapter and its tests passes php -l, and the
// codec passes the shared vectors (tests/codec_test.php).
func TestPHPLintAndCodec(t *testing.T) {
	files, _ := filepath.Glob("*.php")
	more, _ := filepath.Glob("tests/*.php")
	app, _ := filepath.Glob("tests/app/*.php")
	for _, f := range append(append(files, more...), app...) {
		if out, err := exec.Command("php", "-l", f).CombinedOutput(); err != nil {
			t.Errorf("php -l %s: %v\n%s", f, err, out)
		}
	}
	if out, err := exec.Command("php", "tests/codec_test.php").CombinedOutput(); err != nil {
		t.Fatalf("codec: %v\n%s", err, out)
	}
}
