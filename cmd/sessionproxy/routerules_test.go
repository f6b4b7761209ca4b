package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// ruleBackend answers with its name, the request target and the request
// headers a route may edit; it writes a session attribute and sets a
// header that a route removes.
func ruleBackend(t *testing.T, name string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Session-Set-Seen", "1")
		w.Header().Set("X-Powered-By", "php")
		if strings.HasSuffix(r.URL.Path, "/stream") {
			w.(http.Flusher).Flush() // a body of unknown length: streamed
		}
		fmt.Fprintf(w, "%s %s seen=%s from_proxy=%s drop_me=%s auth=%v",
			name, r.URL.RequestURI(), r.Header.Get("X-Session-Attr-Seen"),
			r.Header.Get("X-From-Proxy"), r.Header.Get("X-Drop-Me"), r.Header.Get("Authorization") != "")
	}))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func writeHtpasswd(t *testing.T, file, user, password string) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("# staff\n"+user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

const rulesConfig = `listen: "{{listen}}"
admin: "{{admin}}"
backends: [{url: "http://%[1]s"}]
real_ip_from: ["127.0.0.1"]
upstreams:
  php: {backends: [{url: "http://%[2]s"}]}
  api: {backends: [{url: "http://%[3]s"}]}
  app: {backends: [{url: "http://%[1]s"}]}
routes:
  - match: {path: "= /healthz"}
    respond: {status: 200, body: "ok\n"}
  - match: {path: "~* \\.(php|phar)$"}
    upstream: php
  - match: {path: "~ ^/api/[1-9][0-9]*/"}
    upstream: api
  - match: {host: "old.example.com"}
    redirect: {to: "https://example.com$request_uri", status: 301}
  - match: {host: "vars.example.com"}
    redirect: {to: "$scheme://$host/moved$uri$is_args$args"}
  - match: {path: "/admin/"}
    upstream: app
    allow: ["127.0.0.0/8", "10.0.0.0/8"]
    deny: ["127.0.0.2", "10.9.0.0/16"]
  - match: {path: "/staff/"}
    upstream: app
    basic_auth: {realm: "staff", htpasswd: "%[4]s"}
  - match: {path: "/limited/"}
    upstream: app
    rate_limit: {key: client_ip, rate: "1r/m", burst: 2}
  - match: {path: "/per-session/"}
    upstream: app
    rate_limit: {key: session, rate: "1r/m", burst: 0}
  - match: {path: "/"}
    static: "%[5]s"
    try_files: ["$uri", "$uri/index.html", "@app"]
    headers:
      response: {set: {Strict-Transport-Security: "max-age=63072000"}, add: {X-Extra: "1"}, remove: [X-Powered-By]}
      request: {set: {X-From-Proxy: "yes"}, remove: [X-Drop-Me]}
`

// startRules runs the binary, with the shipped defaults, over the routes
// of section 15 in front of three backends and a directory of files.
func startRules(t *testing.T) (p *process, htpasswd string, cfg string) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"www/index.html":      "home",
		"www/css/a.css":       "css",
		"www/docs/index.html": "docs",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
	}
	htpasswd = filepath.Join(dir, "htpasswd")
	writeHtpasswd(t, htpasswd, "alice", "wonderland")
	cfg = fmt.Sprintf(rulesConfig, ruleBackend(t, "app"), ruleBackend(t, "php"), ruleBackend(t, "api"), htpasswd, filepath.Join(dir, "www"))
	return startProcess(t, cfg), htpasswd, cfg
}

type answer struct {
	status int
	body   string
	header http.Header
}

// askRoute sends one request; header "Host" sets the Host.
func askRoute(t *testing.T, p *process, method, target string, header map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+p.addr+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b), resp.Header}
}

// TestRouteMatchKinds: exact, regex (~ and ~*) and prefix routes in
// order, respond and the try_files fallback to an upstream.
func TestRouteMatchKinds(t *testing.T) {
	p, _, _ := startRules(t)
	for _, c := range []struct {
		target string
		status int
		prefix string
	}{
		{"/healthz", 200, "ok\n"},
		{"/healthz/", 200, "app /healthz/ "}, // exact: not a prefix
		{"/healthz?x=1", 200, "ok\n"},
		{"/index.php", 200, "php /index.php "},
		{"/sub/X.PHP?a=b", 200, "php /sub/X.PHP?a=b "}, // ~*: any case
		{"/x.phar", 200, "php /x.phar "},
		{"/x.php.txt", 200, "app /x.php.txt "},
		{"/api/12/events", 200, "api /api/12/events "},
		{"/api/0/events", 200, "app /api/0/events "},   // ~ [1-9]
		{"/API/12/events", 200, "app /API/12/events "}, // ~: case counts
		{"/api/%31%32/e", 200, "api /api/%31%32/e "},   // matched on the normalised path, sent as written
		{"/api%2F12/e", 200, "api /api%2F12/e "},       // %2F read as "/", as for prefixes
	} {
		a := askRoute(t, p, "GET", c.target, nil)
		if a.status != c.status || !strings.HasPrefix(a.body, c.prefix) {
			t.Errorf("GET %s: %d %q, want %d %q...", c.target, a.status, a.body, c.status, c.prefix)
		}
	}
}

// TestRouteRedirectVariables: redirect expands $request_uri, $scheme,
// $host (lower case, no port), $uri, $is_args and $args.
func TestRouteRedirectVariables(t *testing.T) {
	p, _, _ := startRules(t)
	a := askRoute(t, p, "GET", "/a/b?c=1&d", map[string]string{"Host": "old.example.com"})
	if a.status != 301 || a.header.Get("Location") != "https://example.com/a/b?c=1&d" {
		t.Errorf("old.example.com: %d Location %q", a.status, a.header.Get("Location"))
	}
	a = askRoute(t, p, "GET", "/x/%2e%2e/p%20q?z=9", map[string]string{"Host": "Vars.Example.COM:8080"})
	if want := "http://vars.example.com/moved/p q?z=9"; a.status != 302 || a.header.Get("Location") != want {
		t.Errorf("vars.example.com: %d Location %q, want 302 %q", a.status, a.header.Get("Location"), want)
	}
	a = askRoute(t, p, "GET", "/p", map[string]string{"Host": "vars.example.com"})
	if want := "http://vars.example.com/moved/p"; a.header.Get("Location") != want {
		t.Errorf("no query: Location %q, want %q", a.header.Get("Location"), want)
	}
}

// TestRouteTryFilesAndHeaders: files first, then $uri/index.html, then
// the upstream, which does session work; header rules on both.
func TestRouteTryFilesAndHeaders(t *testing.T) {
	p, _, _ := startRules(t)
	for target, body := range map[string]string{"/css/a.css": "css", "/docs": "docs", "/docs/": "docs", "/": "home"} {
		a := askRoute(t, p, "GET", target, nil)
		if a.status != 200 || a.body != body {
			t.Errorf("GET %s: %d %q, want the file %q", target, a.status, a.body, body)
		}
		if a.header.Get("Strict-Transport-Security") != "max-age=63072000" || a.header.Get("X-Extra") != "1" {
			t.Errorf("GET %s: response header rules not applied: %v", target, a.header)
		}
	}
	a := askRoute(t, p, "GET", "/app/page", map[string]string{"X-Drop-Me": "x"})
	if !strings.HasPrefix(a.body, "app /app/page seen= from_proxy=yes drop_me= ") {
		t.Fatalf("fallback: %q (request header rules: set X-From-Proxy, remove X-Drop-Me)", a.body)
	}
	if a.header.Get("X-Powered-By") != "" || a.header.Get("Strict-Transport-Security") == "" {
		t.Errorf("fallback: response header rules not applied: %v", a.header)
	}
	var cookie string
	for _, c := range a.header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "SPSESSIONID=") {
			cookie, _, _ = strings.Cut(c, ";")
		}
	}
	if cookie == "" {
		t.Fatalf("the fallback to @app did no session work: no session cookie in %v", a.header)
	}
	a = askRoute(t, p, "GET", "/app/page", map[string]string{"Cookie": cookie})
	if !strings.Contains(a.body, " seen=1 ") {
		t.Errorf("second request of the session: %q", a.body)
	}
}

// TestRouteAllowDeny: the client address is the one real_ip_from settles
// (section 12); deny is checked before allow; outside allow is 403.
func TestRouteAllowDeny(t *testing.T) {
	p, _, _ := startRules(t)
	for xff, want := range map[string]int{
		"":             200, // 127.0.0.1, the peer, in allow
		"127.0.0.2":    403, // in allow and deny: deny first
		"10.1.2.3":     200,
		"10.9.1.1":     403,
		"192.168.1.1":  403, // outside allow
		"10.1.2.3, ::": 403, // the client is the rightmost untrusted: ::
	} {
		h := map[string]string{}
		if xff != "" {
			h["X-Forwarded-For"] = xff
		}
		if a := askRoute(t, p, "GET", "/admin/x", h); a.status != want {
			t.Errorf("X-Forwarded-For %q: %d %q, want %d", xff, a.status, a.body, want)
		}
	}
}

// TestRouteBasicAuth: 401 with WWW-Authenticate without the right user
// and password; the htpasswd file is read again on SIGHUP.
func TestRouteBasicAuth(t *testing.T) {
	p, htpasswd, _ := startRules(t)
	basic := func(user, pass string) map[string]string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(user, pass)
		return map[string]string{"Authorization": r.Header.Get("Authorization")}
	}
	a := askRoute(t, p, "GET", "/staff/x", nil)
	if a.status != 401 || a.header.Get("WWW-Authenticate") != `Basic realm="staff", charset="UTF-8"` {
		t.Fatalf("no credentials: %d %q %v", a.status, a.body, a.header)
	}
	for _, up := range [][2]string{{"alice", "wrong"}, {"bob", "wonderland"}, {"alic", "wonderland"}, {"alice", ""}} {
		if a := askRoute(t, p, "GET", "/staff/x", basic(up[0], up[1])); a.status != 401 {
			t.Errorf("%s:%s: %d %q", up[0], up[1], a.status, a.body)
		}
	}
	if a := askRoute(t, p, "GET", "/staff/x", map[string]string{"Authorization": "Basic !!!"}); a.status != 401 {
		t.Errorf("undecodable credentials: %d", a.status)
	}
	if a := askRoute(t, p, "GET", "/staff/x", basic("alice", "wonderland")); a.status != 200 || !strings.HasPrefix(a.body, "app /staff/x ") {
		t.Fatalf("alice: %d %q", a.status, a.body)
	}
	writeHtpasswd(t, htpasswd, "bob", "builder")
	p.signal(syscall.SIGHUP)
	waitLog(t, p, "config reloaded")
	if a := askRoute(t, p, "GET", "/staff/x", basic("alice", "wonderland")); a.status != 401 {
		t.Errorf("alice after her entry was removed and SIGHUP: %d", a.status)
	}
	if a := askRoute(t, p, "GET", "/staff/x", basic("bob", "builder")); a.status != 200 {
		t.Errorf("bob after SIGHUP: %d %q", a.status, a.body)
	}
}

// TestRouteRateLimit: burst+1 requests at once, then 429 with
// Retry-After; each client address and each session has its own bucket.
func TestRouteRateLimit(t *testing.T) {
	p, _, _ := startRules(t)
	for i := 1; i <= 4; i++ {
		a := askRoute(t, p, "GET", "/limited/x", map[string]string{"X-Forwarded-For": "10.0.0.1"})
		if want := 200; i == 4 {
			ra := a.header.Get("Retry-After")
			if a.status != 429 || ra == "" || ra == "0" {
				t.Errorf("request 4 of 10.0.0.1 (burst 2): %d Retry-After %q, want 429 and a wait", a.status, ra)
			}
		} else if a.status != want {
			t.Errorf("request %d of 10.0.0.1: %d", i, a.status)
		}
	}
	if a := askRoute(t, p, "GET", "/limited/x", map[string]string{"X-Forwarded-For": "10.0.0.2"}); a.status != 200 {
		t.Errorf("another client: %d", a.status)
	}
	for _, c := range []struct {
		cookie string
		want   int
	}{{"SPSESSIONID=aaaa", 200}, {"SPSESSIONID=aaaa", 429}, {"SPSESSIONID=bbbb", 200}} {
		if a := askRoute(t, p, "GET", "/per-session/x", map[string]string{"Cookie": c.cookie, "X-Forwarded-For": "10.0.0.3"}); a.status != c.want {
			t.Errorf("%s: %d, want %d", c.cookie, a.status, c.want)
		}
	}
}

// TestCheckRouteRules: each bad value of section 15 is a check error at
// its line.
func TestCheckRouteRules(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.htpasswd"), []byte("alice:plaintext\n"), 0o600)
	file := writeFile(t, `backends: [{url: "http://127.0.0.1:9001"}]
routes:
  - match: {path: "~ ^/api/(["}
    upstream: default
  - match: {path: "/x/"}
    upstream: default
    basic_auth: {realm: r, htpasswd: /nonexistent/htpasswd}
  - match: {path: "/y/"}
    redirect: {to: "https://example.com$request_url"}
  - match: {path: "/z/"}
    upstream: default
    allow: ["10.0.0.0/33"]
    deny: [nonsense]
  - match: {path: "/r/"}
    upstream: default
    rate_limit: {rate: "10r/h"}
  - match: {path: "/t/"}
    static: "`+dir+`"
    try_files: ["$uri", "$nope", "@nowhere"]
  - match: {path: "/b/"}
    upstream: default
    basic_auth: {realm: r, htpasswd: "`+filepath.Join(dir, "bad.htpasswd")+`"}
  - match: {path: "/h/"}
    upstream: default
    headers:
      request: {set: {Transfer-Encoding: chunked}}
      response: {remove: [Content-Length]}
`)
	code, _, errOut := run("check", "-config", file)
	want := []string{
		":3: routes[0].match.path: invalid regular expression",
		":7: routes[1].basic_auth.htpasswd: open /nonexistent/htpasswd",
		":9: routes[2].redirect.to: unknown variable $request_url",
		":12: routes[3].allow[0]: \"10.0.0.0/33\"",
		":13: routes[3].deny[0]: \"nonsense\"",
		":16: routes[4].rate_limit.rate: \"10r/h\"",
		":19: routes[5].try_files[1]: unknown variable $nope",
		":19: routes[5].try_files[2]: unknown upstream \"nowhere\"",
		":22: routes[6].basic_auth.htpasswd: ",
		":26: routes[7].headers.request.set: Transfer-Encoding frames the message",
		":27: routes[7].headers.response.remove: Content-Length frames the message",
	}
	if code != 1 {
		t.Fatalf("check: exit %d, want 1:\n%s", code, errOut)
	}
	for _, w := range want {
		if !strings.Contains(errOut, file+w) {
			t.Errorf("check lacks %q:\n%s", file+w, errOut)
		}
	}
}

// TestRouteHeadersOnHTTP10StreamedAnswer: an HTTP/1.0 client's streamed
// answer, which the proxy writes itself before its handler returns, gets
// the route's response header rules too. Raw bytes: net/http speaks
// HTTP/1.1 only.
func TestRouteHeadersOnHTTP10StreamedAnswer(t *testing.T) {
	p, _, _ := startRules(t)
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("GET /app/stream HTTP/1.0\r\nHost: www.example.com\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(c)
	head, body, _ := strings.Cut(string(got), "\r\n\r\n")
	if !strings.HasPrefix(body, "app /app/stream ") {
		t.Fatalf("answer: %q", got)
	}
	if !strings.Contains(head, "\r\nStrict-Transport-Security: max-age=63072000") || strings.Contains(head, "X-Powered-By") {
		t.Errorf("response header rules not applied to the streamed HTTP/1.0 answer:\n%s", head)
	}
}
