// Package express_test runs a real Express app with passport and
// passport-local (testapp/app.js), two processes of it, with the adapter
// behind the real sessionproxy binary and two real memcached nodes, beside
// the Python adapter's Flask app, with the shipped defaults otherwise, as
// a user would (CONTRACT.md section 13). It also runs the package's own
// Node unit tests and checks every file's syntax, so that `make test`
// covers the adapter with one command.
package express_test

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
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"sessionproxy/internal/apptest"
	"sessionproxy/internal/memcachedtest"
)

// node returns the node binary; none is a failure, not a skip: `make
// deps` installs Debian's nodejs and npm.
func node(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("no node on PATH: run `make deps` (Debian's nodejs and npm)")
	}
	return p
}

var npmOnce struct {
	sync.Once
	err error
	out []byte
}

// installDeps runs `npm ci` (package-lock.json, from the npm registry)
// when node_modules lacks one of the dev dependencies, so that a fresh
// checkout works; an installed tree is used as it is.
func installDeps(t *testing.T) {
	t.Helper()
	npmOnce.Do(func() {
		for _, dep := range []string{"express", "passport", "passport-local"} {
			if _, err := os.Stat(filepath.Join("node_modules", dep, "package.json")); err != nil {
				cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
				npmOnce.out, npmOnce.err = cmd.CombinedOutput()
				return
			}
		}
	})
	if npmOnce.err != nil {
		t.Fatalf("npm ci: %v (`make deps` installs npm)\n%s", npmOnce.err, npmOnce.out)
	}
}

// site is the proxy with two Express apps as its default pool
// (/express/…) and two Flask apps, the Python adapter's test app, as the
// upstream "flask" (/flask/…).
type site struct {
	base, admin string
	log         *apptest.Output
}

func startSite(t *testing.T) *site {
	t.Helper()
	installDeps(t)
	nodeBin, py := node(t), apptest.Python(t, "flask")
	pyDir, err := filepath.Abs("../python")
	if err != nil {
		t.Fatal(err)
	}
	pyEnv := []string{"PYTHONPATH=" + pyDir, "PYTHONDONTWRITEBYTECODE=1"}
	addrs := apptest.FreeAddrs(t, 6)
	listen, admin := addrs[4], addrs[5]
	var express, flask []string
	for i := 1; i <= 2; i++ {
		ea, fa := addrs[2*i-2], addrs[2*i-1]
		// As the README says to: Node's default of 16 KiB of request
		// headers is less than the proxy's max_size.
		apptest.Run(t, fmt.Sprintf("express-%d", i), nil, nodeBin, "--max-http-header-size=81920", "testapp/app.js", "--listen", ea, "--name", fmt.Sprintf("express-%d", i))
		apptest.Run(t, fmt.Sprintf("flask-%d", i), pyEnv, py, filepath.Join(pyDir, "tests/apps/flask_app.py"), "--listen", fa, "--name", fmt.Sprintf("flask-%d", i))
		express, flask = append(express, ea), append(flask, fa)
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
  flask:
    backends: [{url: "http://%s"}, {url: "http://%s"}]
routes:
  - match: {path: "/flask/"}
    upstream: flask
session:
  memcached:
    nodes: ["n1:%s", "n2:%s"]
`, listen, admin, express[0], express[1], flask[0], flask[1], n1.Addr, n2.Addr)
	confFile := filepath.Join(t.TempDir(), "sessionproxy.yaml")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	log := apptest.StartProxy(t, bin, confFile, listen)
	for _, a := range append(express, flask...) {
		apptest.WaitListen(t, a, "an app", 30*time.Second)
	}
	return &site{base: "http://" + listen, admin: "http://" + admin, log: log}
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
	Sid     string                     `json:"sid"`
	New     bool                       `json:"new"`
	Created int64                      `json:"created"`
	User    string                     `json:"user"`
	Counter int                        `json:"counter"`
	Attrs   map[string]json.RawMessage `json:"attrs"`
}

// send does req and returns the answer's status and body; no X-Session-*
// header may reach the client.
func (b *browser) send(req *http.Request) (int, []byte) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for k := range resp.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-session-") {
			b.t.Fatalf("%s %s: %s reached the client", req.Method, req.URL.Path, k)
		}
	}
	return resp.StatusCode, body
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	code, body := b.send(req)
	var p page
	if code != 200 || json.Unmarshal(body, &p) != nil {
		b.t.Fatalf("%s %s: %d %q", req.Method, req.URL.Path, code, body)
	}
	return p
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.site.base+path, nil)
	return b.do(req)
}

func (b *browser) postReq(path string, form url.Values) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, b.site.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	return b.do(b.postReq(path, form))
}

func (b *browser) cookie() string {
	for _, c := range b.c.Jar.Cookies(mustURL(b.site.base)) {
		if c.Name == "SPSESSIONID" {
			return c.Value
		}
	}
	return ""
}

// stored returns the attributes the store holds for id, or nil.
func (s *site) stored(t *testing.T, id string) map[string]string {
	t.Helper()
	return apptest.Stored(t, s.admin, id)
}

// sameJSON reports whether the JSON texts a and b hold the same value.
func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

func TestExpressAdapterBehindProxy(t *testing.T) {
	s := startSite(t)

	t.Run("counter across two express processes", func(t *testing.T) {
		b := s.browser(t)
		seen, sid, created := map[string]bool{}, "", int64(0)
		for i := 1; i <= 6; i++ {
			p := b.get("/express/count")
			if p.Counter != i || (i > 1 && (p.Sid != sid || p.Created != created)) || p.New != (i == 1) {
				t.Fatalf("visit %d: %+v (session %q created %d before)", i, p, sid, created)
			}
			sid, created = p.Sid, p.Created
			seen[p.Backend] = true
		}
		if len(seen) != 2 || b.cookie() != sid || created == 0 {
			t.Fatalf("the counter reached %v with cookie %q, session %q, created %d: want both Express processes, one session", seen, b.cookie(), sid, created)
		}
		if got := s.stored(t, sid)["counter"]; got != "6" {
			t.Fatalf("the store holds counter=%q, want 6", got)
		}
	})

	// Section 16: express-session's cookie.maxAge (ms) reaches the proxy
	// as X-Session-Max-Age (s): the session's own ttl in the store and a
	// persistent cookie; null goes back to a session cookie.
	t.Run("cookie.maxAge is remember me", func(t *testing.T) {
		code, set := apptest.SessionSetCookie(t, s.base+"/express/remember?ms=1209600000", "", "SPSESSIONID")
		id, _, _ := strings.Cut(strings.TrimPrefix(set, "SPSESSIONID="), ";")
		if code != 200 || !strings.Contains(set, "; Max-Age=1209600;") {
			t.Fatalf("remember me: %d, Set-Cookie %q", code, set)
		}
		if got := apptest.StoredTTL(t, s.admin, id); got != 1209600 {
			t.Fatalf("the store holds ttl %d, want 1209600", got)
		}
		code, set = apptest.SessionSetCookie(t, s.base+"/express/remember?ms=null", "SPSESSIONID="+id, "SPSESSIONID")
		if code != 200 || set != "SPSESSIONID="+id+"; Path=/; HttpOnly; SameSite=Lax" {
			t.Fatalf("maxAge null: %d, Set-Cookie %q, want a session cookie", code, set)
		}
		if got := apptest.StoredTTL(t, s.admin, id); got != 1800 {
			t.Fatalf("maxAge null: the store holds ttl %d, want the default 1800", got)
		}
	})

	t.Run("passport login rotates, logout invalidates", func(t *testing.T) {
		b := s.browser(t)
		b.get("/express/count")
		anon := b.cookie()
		if anon == "" {
			t.Fatal("no session before login")
		}
		// A wrong password: passport's 401, the session untouched.
		if code, _ := b.send(b.postReq("/express/login", url.Values{"username": {"ann"}, "password": {"nope"}})); code != 401 || b.cookie() != anon {
			t.Fatalf("wrong password: %d, cookie %q -> %q", code, anon, b.cookie())
		}
		in := b.post("/express/login", url.Values{"username": {"ann"}, "password": {"secret"}})
		key := b.cookie()
		if in.User != "ann" || key == anon || in.Sid != key {
			t.Fatalf("login: %+v, cookie %q -> %q: want a rotated ID that Express knew at once", in, anon, key)
		}
		if s.stored(t, anon) != nil {
			t.Fatalf("the session before login is still in the store: %v", s.stored(t, anon))
		}
		// express-session's regenerate starts empty: passport's user alone.
		if attrs := s.stored(t, key); len(attrs) != 1 || attrs["passport"] != `{"user":"u1"}` {
			t.Fatalf("the store holds %v after login, want passport's user alone", attrs)
		}
		seen := map[string]bool{}
		for i := 0; i < 6; i++ {
			p := b.get("/express/whoami")
			if p.User != "ann" || p.Sid != key {
				t.Fatalf("after login, request %d: %+v", i, p)
			}
			seen[p.Backend] = true
		}
		if len(seen) != 2 {
			t.Fatalf("logged in requests reached %v, want both Express processes", seen)
		}
		// The ID before login is worthless (session fixation).
		fixated := s.browser(t)
		fixated.c.Jar.SetCookies(mustURL(s.base), []*http.Cookie{{Name: "SPSESSIONID", Value: anon}})
		if p := fixated.get("/express/whoami"); p.User != "" || p.Sid == anon {
			t.Fatalf("the pre-login ID still works: %+v", p)
		}
		b.get("/express/logout")
		if b.cookie() != "" || s.stored(t, key) != nil {
			t.Fatalf("logout: cookie %q, store %v: want the session ended", b.cookie(), s.stored(t, key))
		}
		if p := b.get("/express/whoami"); p.User != "" || p.Sid == key {
			t.Fatalf("after logout: %+v", p)
		}
		// A login that is the browser's first request: the new session
		// is stored under the ID Express drew.
		first := s.browser(t)
		in = first.post("/express/login", url.Values{"username": {"ann"}, "password": {"secret"}})
		if first.cookie() != in.Sid || in.User != "ann" {
			t.Fatalf("login as the first request: %+v, cookie %q", in, first.cookie())
		}
		if p := first.get("/express/whoami"); p.User != "ann" || p.Sid != in.Sid || p.New {
			t.Fatalf("after a first-request login: %+v", p)
		}
	})

	t.Run("typed values from express read by flask and express", func(t *testing.T) {
		b := s.browser(t)
		b.get("/express/typed")
		b.get("/express/raw")
		attrs := s.stored(t, b.cookie())
		if attrs["pojun-2etech"] != `"Jos%C3%A9 %F0%9F%99%82"` || attrs["user-49d"] != "3" || attrs["bad"] != "%ZZ{not json" {
			t.Fatalf("the store holds %v: want the section 13 encodings", attrs)
		}
		byFlask := map[string]string{
			"pojun.tech": `["str","José 🙂"]`,
			"userId":     `["int",3]`,
			"ratio":      `["float",-1.5]`,
			"cart":       `["list",[1,"two",3.5,null]]`,
			"prefs":      `["dict",{"items":[1,2],"ok":true,"name":"Zoë"}]`,
			// A value not in the adapters' encoding: a plain string.
			"bad": `["str","%ZZ{not json"]`,
		}
		byExpress := map[string]string{
			"pojun.tech": `["string","José 🙂"]`,
			"userId":     `["number",3]`,
			"ratio":      `["number",-1.5]`,
			"cart":       `["array",[1,"two",3.5,null]]`,
			"prefs":      `["object",{"items":[1,2],"ok":true,"name":"Zoë"}]`,
			"bad":        `["string","%ZZ{not json"]`,
		}
		seen := map[string]bool{}
		for i := 0; i < 4; i++ {
			for path, want := range map[string]map[string]string{"/flask/dump": byFlask, "/express/dump": byExpress} {
				p := b.get(path)
				seen[p.Backend] = true
				if len(p.Attrs) != len(want) {
					t.Errorf("%s on %s: %d attributes %v, want %d", path, p.Backend, len(p.Attrs), p.Attrs, len(want))
				}
				for name, w := range want {
					if !sameJSON(p.Attrs[name], []byte(w)) {
						t.Errorf("%s on %s: %s = %s, want %s", path, p.Backend, name, p.Attrs[name], w)
					}
				}
			}
		}
		if len(seen) != 4 {
			t.Errorf("the values were read by %v, want both Express and both Flask processes", seen)
		}
		if after := s.stored(t, b.cookie()); !reflect.DeepEqual(after, attrs) {
			t.Errorf("reading changed the store: %v, was %v", after, attrs)
		}
	})

	t.Run("typed values from flask read by express", func(t *testing.T) {
		b := s.browser(t)
		b.get("/flask/typed")
		p := b.get("/express/dump")
		want := map[string]string{
			"pojun.tech": `["string","José 🙂"]`,
			"userId":     `["number",3]`,
			"cart":       `["array",[1,"two",3.5,null]]`,
			"prefs":      `["object",{"items":[1,2],"ok":true,"name":"Zoë"}]`,
		}
		for name, w := range want {
			if !sameJSON(p.Attrs[name], []byte(w)) {
				t.Errorf("%s = %s, want %s", name, p.Attrs[name], w)
			}
		}
	})

	t.Run("a large session, and one over max_size", func(t *testing.T) {
		b := s.browser(t)
		b.get("/express/count")
		// 40 KiB: over Node's default header limit, within the proxy's
		// default max_size (64 KiB), read back by both processes.
		b.get("/express/big?n=40000")
		seen := map[string]bool{}
		for i := 0; i < 4; i++ {
			p := b.get("/express/bigsize")
			if p.Counter != 40000 {
				t.Fatalf("read back %d characters on %s, want 40000", p.Counter, p.Backend)
			}
			seen[p.Backend] = true
		}
		if len(seen) != 2 {
			t.Fatalf("the large session was read by %v, want both processes", seen)
		}
		// Over max_size: the adapter counts the session as the proxy
		// stores it (15 bytes of overhead, then each name and value with
		// its length: counter=1 takes 10 bytes, big=<n quoted> 1+3+3+n+2)
		// and passes the error to Express's error handler, whose 500 the
		// test app writes; the store is as it was.
		atLimit := 64<<10 - 15 - 10 - (1 + 3 + 3 + 2)
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/express/big?n=%d", s.base, atLimit+1), nil)
		if code, body := b.send(req); code != http.StatusInternalServerError || !bytes.Contains(body, []byte("over the proxy's max_size of 65536")) {
			t.Fatalf("a session over max_size: %d %q, want the error handler's 500", code, body)
		}
		if attrs := s.stored(t, b.cookie()); attrs["counter"] != "1" || len(attrs["big"]) != 40002 {
			t.Fatalf("after the refused update the store holds counter=%q and %d bytes of big", attrs["counter"], len(attrs["big"]))
		}
		// At the adapter's limit the proxy's own count (with the expiry)
		// is over: the adapter is never stricter than the proxy, and
		// between the two the proxy's 502 remains.
		req, _ = http.NewRequest(http.MethodGet, fmt.Sprintf("%s/express/big?n=%d", s.base, atLimit), nil)
		if code, body := b.send(req); code != http.StatusBadGateway {
			t.Fatalf("a session at the adapter's limit: %d %q, want the proxy's 502", code, body)
		}
		b.get(fmt.Sprintf("/express/big?n=%d", atLimit-32))
		if attrs := s.stored(t, b.cookie()); len(attrs["big"]) != atLimit-32+2 {
			t.Fatalf("32 bytes under the adapter's limit the store holds %d bytes of big", len(attrs["big"]))
		}
	})

	t.Run("changes after some output is written are saved", func(t *testing.T) {
		// CONTRACT.md section 13, timing: the adapter holds the output
		// until res.end.
		b := s.browser(t)
		req, _ := http.NewRequest(http.MethodGet, s.base+"/express/late", nil)
		if code, body := b.send(req); code != 200 || string(body) != "streaming\ndone\n" {
			t.Fatalf("/express/late: %d %q", code, body)
		}
		if attrs := s.stored(t, b.cookie()); attrs["early"] != "1" || attrs["late"] != "1" {
			t.Fatalf("the store holds %v: want early and late", attrs)
		}
	})

	t.Run("an error after some output: the error page alone", func(t *testing.T) {
		b := s.browser(t)
		req, _ := http.NewRequest(http.MethodGet, s.base+"/express/fails", nil)
		if code, body := b.send(req); code != 500 || string(body) != `{"error":"Error: boom"}` {
			t.Fatalf("/express/fails: %d %q, want the error handler's page alone", code, body)
		}
		if attrs := s.stored(t, b.cookie()); attrs["before"] != "1" {
			t.Fatalf("the store holds %v: want before, as express-session saves", attrs)
		}
	})

	t.Run("changes after 64 KiB of output are lost", func(t *testing.T) {
		// README, what differs: past holdBytes the head goes out with the
		// session as it is then.
		b := s.browser(t)
		req, _ := http.NewRequest(http.MethodGet, s.base+"/express/late?pad=70000", nil)
		if code, body := b.send(req); code != 200 || len(body) != 70001+len("done\n") {
			t.Fatalf("/express/late?pad=70000: %d, %d bytes", code, len(body))
		}
		if attrs := s.stored(t, b.cookie()); attrs["early"] != "1" || attrs["late"] != "" {
			t.Fatalf("the store holds %v: want early, not late", attrs)
		}
	})

	t.Run("an event stream is not held", func(t *testing.T) {
		b := s.browser(t)
		start := time.Now()
		resp, err := b.c.Get(s.base + "/express/events")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, len("data: first\n\n"))
		if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "data: first\n\n" {
			t.Fatalf("first event: %q, %v", buf, err)
		}
		// The handler ends the stream 1.5 s after its first event.
		if d := time.Since(start); d > time.Second {
			t.Fatalf("the first event took %v: held until the end", d)
		}
		rest, _ := io.ReadAll(resp.Body)
		if string(rest) != "data: last\n\n" {
			t.Fatalf("the rest of the stream: %q", rest)
		}
		if attrs := s.stored(t, b.cookie()); attrs["early"] != "1" || attrs["late"] != "" {
			t.Fatalf("the store holds %v: want early, not late", attrs)
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

// TestExpressUnitTests runs the package's own Node unit tests (the codec
// against ../testdata/vectors.json, the middleware with a fake request and
// response, passport's SessionManager) with node's built-in test runner.
func TestExpressUnitTests(t *testing.T) {
	installDeps(t)
	files, _ := filepath.Glob("test/*.test.js")
	if len(files) == 0 {
		t.Fatal("no test/*.test.js")
	}
	out, err := exec.Command(node(t), append([]string{"--test"}, files...)...).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("# fail 0")) || bytes.Contains(out, []byte("# pass 0")) {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("# skipped 0")) {
		t.Fatalf("node --test skipped tests:\n%s", out)
	}
}

// TestExpressLint checks every JavaScript file's syntax with node --check
// and that each is strict mode, the package's one lint rule beyond what
// the unit tests exercise.
func TestExpressLint(t *testing.T) {
	var files []string
	for _, pat := range []string{"*.js", "test/*.js", "testapp/*.js"} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		if out, err := exec.Command(node(t), "--check", f).CombinedOutput(); err != nil {
			t.Errorf("node --check %s: %v\n%s", f, err, out)
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(src, []byte("'use strict';\n")) {
			t.Errorf("%s does not start with 'use strict';", f)
		}
	}
}
