// Package python_test runs real Flask and Django apps (tests/apps), two
// processes of each, with sessionproxy_adapters behind the real
// sessionproxy binary and two real memcached nodes, with the shipped
// defaults otherwise, as a user would (CONTRACT.md section 13).
package python_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/apptest"
	"sessionproxy/internal/memcachedtest"
)

// site is the proxy with two Flask apps as its default pool (/flask/…)
// and two Django apps as the upstream "django" (/django/…).
type site struct {
	base, admin string
}

func startSite(t *testing.T) *site {
	t.Helper()
	py := apptest.Python(t, "flask", "django")
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"PYTHONPATH=" + dir, "PYTHONDONTWRITEBYTECODE=1"}
	db := filepath.Join(t.TempDir(), "django.sqlite3")
	if out, err := exec.Command(py, "tests/apps/django_app.py", "--db", db, "--setup").CombinedOutput(); err != nil {
		t.Fatalf("django setup: %v\n%s", err, out)
	}
	// Every address drawn before any app starts: one drawn after an app
	// was handed the one before could be that same port while Python is
	// still starting.
	addrs := apptest.FreeAddrs(t, 6)
	listen, admin := addrs[4], addrs[5]
	var flask, django []string
	for i := 1; i <= 2; i++ {
		fa, da := addrs[2*i-2], addrs[2*i-1]
		apptest.Run(t, fmt.Sprintf("flask-%d", i), env, py, "tests/apps/flask_app.py", "--listen", fa, "--name", fmt.Sprintf("flask-%d", i))
		apptest.Run(t, fmt.Sprintf("django-%d", i), env, py, "tests/apps/django_app.py", "--db", db, "--listen", da, "--name", fmt.Sprintf("django-%d", i))
		flask, django = append(flask, fa), append(django, da)
	}
	bin := filepath.Join(t.TempDir(), "sessionproxy")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/sessionproxy").CombinedOutput(); err != nil {
		t.Fatalf("building sessionproxy: %v\n%s", err, out)
	}
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	// Everything not named here is the shipped default (access log on,
	// create on write, sync writes, the local tier).
	conf := fmt.Sprintf(`listen: %q
admin: %q
backends:
  - url: "http://%s"
  - url: "http://%s"
upstreams:
  django:
    backends: [{url: "http://%s"}, {url: "http://%s"}]
routes:
  - match: {path: "/django/"}
    upstream: django
session:
  memcached:
    nodes: ["n1:%s", "n2:%s"]
`, listen, admin, flask[0], flask[1], django[0], django[1], n1.Addr, n2.Addr)
	confFile := filepath.Join(t.TempDir(), "sessionproxy.yaml")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	apptest.StartProxy(t, bin, confFile, listen)
	for _, a := range append(flask, django...) {
		apptest.WaitListen(t, a, "an app", 30*time.Second)
	}
	return &site{base: "http://" + listen, admin: "http://" + admin}
}

// browser is a client with its own cookie jar.
type browser struct {
	t    *testing.T
	c    *http.Client
	site *site
}

func (s *site) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 20 * time.Second}, site: s}
}

// page is what the test apps answer.
type page struct {
	Backend string                     `json:"backend"`
	Sid     string                     `json:"sid"` // Flask
	Key     string                     `json:"key"` // Django
	New     bool                       `json:"new"`
	User    string                     `json:"user"`
	Counter int                        `json:"counter"`
	Visits  int                        `json:"visits"`
	Message *string                    `json:"message"`
	Attrs   map[string]json.RawMessage `json:"attrs"`
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var p page
	if resp.StatusCode != 200 || json.Unmarshal(body, &p) != nil {
		b.t.Fatalf("%s %s: %d %q", req.Method, req.URL.Path, resp.StatusCode, body)
	}
	for k := range resp.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-session-") {
			b.t.Fatalf("%s %s: %s reached the client", req.Method, req.URL.Path, k)
		}
	}
	return p
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.site.base+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.site.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
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

// send does a GET of path and returns the answer's status and body.
func (b *browser) send(path string) (int, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.site.base + path)
	if err != nil {
		b.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// stored returns the attributes the store holds for id, or nil.
func (s *site) stored(t *testing.T, id string) map[string]string {
	t.Helper()
	return apptest.Stored(t, s.admin, id)
}

func TestPythonAdaptersBehindProxy(t *testing.T) {
	s := startSite(t)

	// Each framework: its first-visit page and the attribute it sets to 1
	// (name and value take 1+len(name)+1+1 bytes in the proxy's store).
	for _, fw := range []struct{ name, visit, attr string }{{"flask", "count", "counter"}, {"django", "visit", "visits"}} {
		t.Run(fw.name+" changes after the page is written are saved", func(t *testing.T) {
			b := s.browser(t)
			b.get("/" + fw.name + "/" + fw.visit)
			if code, body := b.send("/" + fw.name + "/late"); code != 200 || body != "written\n" {
				t.Fatalf("late: %d %q", code, body)
			}
			if attrs := s.stored(t, b.cookie()); attrs["late"] != "1" {
				t.Fatalf("the store holds %v: want late", attrs)
			}
			// A streamed body runs after the session went out (README).
			if code, body := b.send("/" + fw.name + "/stream"); code != 200 || body != "first\nlast\n" {
				t.Fatalf("stream: %d %q", code, body)
			}
			if attrs := s.stored(t, b.cookie()); attrs["early"] != "1" {
				t.Fatalf("the store holds %v: want early", attrs)
			}
		})

		t.Run(fw.name+" a session over max_size is the framework's 500", func(t *testing.T) {
			b := s.browser(t)
			b.get("/" + fw.name + "/" + fw.visit)
			// 15 bytes of overhead, the visit's attribute, and big with
			// its quoted value (1+3 + 3+n+2).
			atLimit := 64<<10 - 15 - (3 + len(fw.attr)) - (1 + 3 + 3 + 2)
			code, body := b.send(fmt.Sprintf("/%s/big?n=%d", fw.name, atLimit+1))
			if code != 500 || !strings.Contains(body, "SessionTooLarge") || !strings.Contains(body, "max_size of 65536") {
				t.Fatalf("over max_size: %d %q, want the app's 500 handler with SessionTooLarge", code, body)
			}
			if attrs := s.stored(t, b.cookie()); len(attrs) != 1 || attrs[fw.attr] != "1" {
				t.Fatalf("after the refused update the store holds %v", attrs)
			}
			// At the adapter's limit the proxy's own count (with the
			// expiry) is over: the adapter is never stricter, and
			// between the two the proxy's 502 remains.
			if code, body := b.send(fmt.Sprintf("/%s/big?n=%d", fw.name, atLimit)); code != http.StatusBadGateway {
				t.Fatalf("at the adapter's limit: %d %q, want the proxy's 502", code, body)
			}
			if code, body := b.send(fmt.Sprintf("/%s/big?n=%d", fw.name, atLimit-32)); code != 200 {
				t.Fatalf("32 bytes under the adapter's limit: %d %q", code, body)
			}
			if attrs := s.stored(t, b.cookie()); len(attrs["big"]) != atLimit-32+2 {
				t.Fatalf("32 bytes under the adapter's limit the store holds %d bytes of big", len(attrs["big"]))
			}
		})
	}

	t.Run("flask session counter across two processes", func(t *testing.T) {
		b := s.browser(t)
		seen, sid := map[string]bool{}, ""
		for i := 1; i <= 6; i++ {
			p := b.get("/flask/count")
			if p.Counter != i || (i > 1 && p.Sid != sid) || p.New != (i == 1) {
				t.Fatalf("visit %d: %+v (session %q before)", i, p, sid)
			}
			sid = p.Sid
			seen[p.Backend] = true
		}
		if len(seen) != 2 || b.cookie() != sid {
			t.Fatalf("the counter reached %v with cookie %q, session %q: want both Flask processes, one session", seen, b.cookie(), sid)
		}
		if got := s.stored(t, sid)["counter"]; got != "6" {
			t.Fatalf("the store holds counter=%q, want 6", got)
		}
		// Flask's regenerate() and invalidate(): the adapter's login and logout.
		p := b.get("/flask/login?user=ann")
		if p.Sid == sid || b.cookie() != p.Sid || s.stored(t, sid) != nil {
			t.Fatalf("regenerate: sid %q -> %q, cookie %q; old session in store: %v", sid, p.Sid, b.cookie(), s.stored(t, sid))
		}
		if q := b.get("/flask/count"); q.Sid != p.Sid || q.Counter != 7 {
			t.Fatalf("after regenerate: %+v", q)
		}
		b.get("/flask/logout")
		if b.cookie() != "" || s.stored(t, p.Sid) != nil {
			t.Fatalf("invalidate: cookie %q, store %v", b.cookie(), s.stored(t, p.Sid))
		}
	})

	t.Run("django login and logout across two processes", func(t *testing.T) {
		b := s.browser(t)
		first := b.get("/django/visit")
		anon := b.cookie()
		if anon == "" || first.Key != anon || first.User != "" {
			t.Fatalf("first visit: %+v, cookie %q", first, anon)
		}
		in := b.post("/django/login", url.Values{"username": {"ann"}, "password": {"secret"}})
		key := b.cookie()
		if in.User != "ann" || key == anon || in.Key != key {
			t.Fatalf("login: %+v, cookie %q -> %q: want a rotated ID that Django knew at once", in, anon, key)
		}
		if s.stored(t, anon) != nil {
			t.Fatalf("the session before login is still in the store: %v", s.stored(t, anon))
		}
		attrs := s.stored(t, key)
		if attrs["-5fauth-5fuser-5fid"] == "" || attrs["visits"] != "1" {
			t.Fatalf("the store holds %v: want Django's _auth_user_id and the visits before login", attrs)
		}
		seen := map[string]bool{}
		for i := 0; i < 4; i++ {
			p := b.get("/django/whoami")
			if p.User != "ann" || p.Key != key {
				t.Fatalf("after login, request %d: %+v", i, p)
			}
			seen[p.Backend] = true
		}
		if len(seen) != 2 {
			t.Fatalf("logged in requests reached %v, want both Django processes", seen)
		}
		// The ID before login is worthless (session fixation).
		fixated := s.browser(t)
		fixated.c.Jar.SetCookies(mustURL(s.base), []*http.Cookie{{Name: "SPSESSIONID", Value: anon}})
		if p := fixated.get("/django/whoami"); p.User != "" || p.Key == anon {
			t.Fatalf("the pre-login ID still works: %+v", p)
		}
		b.get("/django/logout")
		if b.cookie() != "" || s.stored(t, key) != nil {
			t.Fatalf("logout: cookie %q, store %v: want the session ended", b.cookie(), s.stored(t, key))
		}
		if p := b.get("/django/whoami"); p.User != "" {
			t.Fatalf("after logout: %+v", p)
		}
		// logout() then a write: a new session with the message alone.
		b.post("/django/login", url.Values{"username": {"ann"}, "password": {"secret"}})
		key = b.cookie()
		p := b.get("/django/logout?message=bye")
		next := b.cookie()
		if next == "" || next == key || s.stored(t, key) != nil {
			t.Fatalf("logout with a message: cookie %q -> %q, old session %v", key, next, s.stored(t, key))
		}
		if attrs := s.stored(t, next); len(attrs) != 1 || attrs["message"] != `"bye"` || p.User != "" {
			t.Fatalf("the new session after logout holds %v (page %+v), want message alone", attrs, p)
		}
		if p := b.get("/django/whoami"); p.User != "" || p.Key != next {
			t.Fatalf("after logout with a message: %+v", p)
		}
	})

	// Section 16: the frameworks' own "remember me" calls reach the proxy
	// as X-Session-Max-Age: the session's own ttl in the store, and a
	// persistent cookie; turning it off goes back to a session cookie.
	for _, c := range []struct {
		name, on, off, sid string
		ttl                int64
	}{
		{"flask permanent session", "/flask/remember?on=1", "/flask/remember?on=0", "sid", 14 * 24 * 3600},
		{"django set_expiry", "/django/remember?n=2592000", "/django/remember?n=0", "key", 2592000},
	} {
		t.Run(c.name+" is remember me", func(t *testing.T) {
			code, set := apptest.SessionSetCookie(t, s.base+c.on, "", "SPSESSIONID")
			id, _, _ := strings.Cut(strings.TrimPrefix(set, "SPSESSIONID="), ";")
			if code != 200 || !strings.Contains(set, fmt.Sprintf("; Max-Age=%d;", c.ttl)) {
				t.Fatalf("remember me: %d, Set-Cookie %q", code, set)
			}
			if got := apptest.StoredTTL(t, s.admin, id); got != c.ttl {
				t.Fatalf("the store holds ttl %d, want %d", got, c.ttl)
			}
			// Used again without a change: no new cookie (more than half left).
			if _, set := apptest.SessionSetCookie(t, s.base+c.on, "SPSESSIONID="+id, "SPSESSIONID"); set != "" {
				t.Fatalf("remember me again, unchanged: Set-Cookie %q", set)
			}
			code, set = apptest.SessionSetCookie(t, s.base+c.off, "SPSESSIONID="+id, "SPSESSIONID")
			if code != 200 || set != "SPSESSIONID="+id+"; Path=/; HttpOnly; SameSite=Lax" {
				t.Fatalf("off: %d, Set-Cookie %q, want a session cookie", code, set)
			}
			if got := apptest.StoredTTL(t, s.admin, id); got != 1800 {
				t.Fatalf("off: the store holds ttl %d, want the default 1800", got)
			}
		})
	}

	t.Run("typed values from flask read by django", func(t *testing.T) {
		b := s.browser(t)
		b.get("/flask/typed")
		b.get("/flask/raw")
		for _, path := range []string{"/django/dump", "/flask/dump"} {
			p := b.get(path)
			want := map[string]string{
				"pojun.tech": `["str","José 🙂"]`,
				"userId":     `["int",3]`,
				"cart":       `["list",[1,"two",3.5,null]]`,
				"prefs":      `["dict",{"items":[1,2],"ok":true,"name":"Zoë"}]`,
				// A value not in the adapters' encoding: a plain string.
				"bad": `["str","%ZZ{not json"]`,
			}
			for name, w := range want {
				var got, wantV any
				json.Unmarshal(p.Attrs[name], &got)
				json.Unmarshal([]byte(w), &wantV)
				if fmt.Sprint(got) != fmt.Sprint(wantV) {
					t.Errorf("%s: %s = %s, want %s", path, name, p.Attrs[name], w)
				}
			}
		}
		attrs := s.stored(t, b.cookie())
		if attrs["pojun-2etech"] != `"Jos%C3%A9 %F0%9F%99%82"` || attrs["user-49d"] != "3" {
			t.Fatalf("the store holds %v: want the section 13 encodings", attrs)
		}
	})
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// TestPythonUnitTests runs the package's own unit tests (the codec against
// ../testdata/vectors.json, Flask's and Django's test clients) with the
// interpreter that has the frameworks, so that `make test` runs them.
func TestPythonUnitTests(t *testing.T) {
	cmd := exec.Command(apptest.Python(t, "flask", "django"), "-W", "ignore::DeprecationWarning", "-m", "unittest", "-v")
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("skipped")) {
		t.Fatalf("python -m unittest: %v (a skip means a framework is missing)\n%s", err, out)
	}
}

// TestPythonLint keeps the package PEP 8 (99 columns, which PEP 8 allows a
// team) and free of what pyflakes finds; `make deps` installs both.
func TestPythonLint(t *testing.T) {
	py := apptest.Python(t, "flask", "django")
	for _, argv := range [][]string{{py, "-m", "pyflakes", "."}, {py, "-m", "pycodestyle", "--max-line-length=99", "."}} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(argv[1:], " "), err, out)
		}
	}
}
