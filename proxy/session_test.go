package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/sessionstore"
)

// appView is what the session test app reports about a request.
type appView struct {
	Backend string            `json:"backend"`
	ID      string            `json:"id"`
	New     bool              `json:"new"`
	Created int64             `json:"created"`
	Attrs   map[string]string `json:"attrs"`
	Leaked  []string          `json:"leaked"` // X-Session-* headers it did not expect
}

// sessionApp is a backend that reads its session from the X-Session-*
// headers and changes it as the query says: set=name:value, unset=name,
// inc=name (a counter), invalidate=1, rotate=1, raw=Header:Value.
func sessionApp(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := appView{Backend: name, Attrs: map[string]string{}}
		for k, vals := range r.Header {
			lk := strings.ToLower(k)
			switch {
			case lk == "x-session-id":
				v.ID = vals[0]
			case lk == "x-session-new":
				v.New = vals[0] == "1"
			case lk == "x-session-created":
				v.Created, _ = strconv.ParseInt(vals[0], 10, 64)
			case strings.HasPrefix(lk, "x-session-attr-"):
				v.Attrs[strings.TrimPrefix(lk, "x-session-attr-")] = vals[0]
			case strings.HasPrefix(lk, "x-session-"):
				v.Leaked = append(v.Leaked, k)
			}
		}
		q := r.URL.Query()
		for _, kv := range q["set"] {
			n, val, _ := strings.Cut(kv, ":")
			w.Header().Add("X-Session-Set-"+n, val)
		}
		for _, n := range q["unset"] {
			w.Header().Add("X-Session-Unset", n)
		}
		if n := q.Get("inc"); n != "" {
			c, _ := strconv.Atoi(v.Attrs[n])
			w.Header().Set("X-Session-Set-"+n, strconv.Itoa(c+1))
		}
		if q.Get("invalidate") != "" {
			w.Header().Set("X-Session-Invalidate", "1")
		}
		if q.Get("rotate") != "" {
			w.Header().Set("X-Session-Rotate", "1")
		}
		for _, kv := range q["raw"] {
			k, val, _ := strings.Cut(kv, ":")
			w.Header().Add(k, val)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
}

type sessionEnv struct {
	base     string
	proxy    *Proxy
	store    *sessionstore.Store
	nodes    []*memcachedtest.Server
	apps     []*httptest.Server
	adminURL string
}

type envOptions struct {
	memcached int // nodes to start
	local     int // local tier size; 0 off
	store     sessionstore.Options
	sessions  *Sessions // nil: defaults
	backends  int
}

func startSessionEnv(t *testing.T, o envOptions) *sessionEnv {
	t.Helper()
	e := &sessionEnv{}
	so := o.store
	for i := 0; i < o.memcached; i++ {
		n := memcachedtest.Start(t)
		e.nodes = append(e.nodes, n)
		so.Memcached.Nodes = append(so.Memcached.Nodes, sessionstore.Node{ID: fmt.Sprintf("n%d", i+1), Addr: n.Addr})
	}
	so.LocalSize = o.local
	if so.Memcached.Timeout == 0 {
		so.Memcached.Timeout = 300 * time.Millisecond // see sessionstore's newStore
	}
	if so.Memcached.ProbeInterval == 0 {
		so.Memcached.ProbeInterval = 20 * time.Millisecond
	}
	store, err := sessionstore.New(so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	e.store = store
	if o.backends == 0 {
		o.backends = 2
	}
	var urls []string
	for i := 0; i < o.backends; i++ {
		app := httptest.NewServer(sessionApp(string(rune('A' + i))))
		t.Cleanup(app.Close)
		e.apps = append(e.apps, app)
		urls = append(urls, app.URL)
	}
	s := o.sessions
	if s == nil {
		s = &Sessions{}
	}
	s.Store = store
	e.proxy = &Proxy{Pool: newPool(t, "round_robin", nil, urls...), Retries: 1, Sessions: s}
	e.base = startProxy(t, e.proxy, ServerOptions{})
	admin := httptest.NewServer(AdminHandler(func() *Proxy { return e.proxy }))
	t.Cleanup(admin.Close)
	e.adminURL = admin.URL
	return e
}

// user is a browser: an HTTP client with its own cookie jar.
type user struct {
	t *testing.T
	c *http.Client
}

func newUser(t *testing.T) *user {
	jar, _ := cookiejar.New(nil)
	return &user{t: t, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

type appResult struct {
	status    int
	view      appView
	body      string
	header    http.Header
	setCookie []string
}

func (u *user) get(url string, hdr ...string) appResult {
	u.t.Helper()
	r, err := u.try(url, hdr...)
	if err != nil {
		u.t.Fatalf("GET %s: %v", url, err)
	}
	return r
}

// try is get for goroutines other than the test's: it returns its error.
func (u *user) try(url string, hdr ...string) (appResult, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := u.c.Do(req)
	if err != nil {
		return appResult{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := appResult{status: resp.StatusCode, body: string(b), header: resp.Header, setCookie: resp.Header.Values("Set-Cookie")}
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(b, &r.view); err != nil {
			return r, fmt.Errorf("body %q: %v", b, err)
		}
	}
	return r, nil
}

func (u *user) cookie(base string) string {
	req, _ := http.NewRequest(http.MethodGet, base, nil)
	for _, c := range u.c.Jar.Cookies(req.URL) {
		if c.Name == "SPSESSIONID" {
			return c.Value
		}
	}
	return ""
}

func TestSessionSharedAcrossBackends(t *testing.T) {
	e := startSessionEnv(t, envOptions{memcached: 2, local: 1 << 20})
	u := newUser(t)
	first := u.get(e.base + "/?inc=visits")
	if !first.view.New || first.view.ID == "" || len(first.setCookie) != 1 {
		t.Fatalf("first request: %+v", first)
	}
	wantCookie := "SPSESSIONID=" + first.view.ID + "; Path=/; HttpOnly; SameSite=Lax"
	if first.setCookie[0] != wantCookie {
		t.Fatalf("Set-Cookie = %q, want %q", first.setCookie[0], wantCookie)
	}
	var backends []string
	for i := 2; i <= 6; i++ {
		r := u.get(e.base + "/?inc=visits")
		backends = append(backends, r.view.Backend)
		if r.view.ID != first.view.ID || r.view.New || r.view.Created != first.view.Created {
			t.Fatalf("request %d: session %+v, want the first one's", i, r.view)
		}
		if got := r.view.Attrs["visits"]; got != strconv.Itoa(i-1) {
			t.Fatalf("request %d saw visits=%s, want %d", i, got, i-1)
		}
		if len(r.setCookie) != 0 {
			t.Fatalf("request %d set the cookie again: %v", i, r.setCookie)
		}
	}
	if strings.Join(backends, "") != "BABAB" {
		t.Fatalf("backends %v, want alternating", backends)
	}
	if ms := time.Now().UnixMilli() - first.view.Created; ms < 0 || ms > 60000 {
		t.Fatalf("created %d is not a recent unix ms time", first.view.Created)
	}
}

func TestCreateOnWriteAndAlways(t *testing.T) {
	e := startSessionEnv(t, envOptions{local: 1 << 20})
	u := newUser(t)
	r := u.get(e.base + "/")
	if !r.view.New || r.view.ID == "" || len(r.setCookie) != 0 {
		t.Fatalf("on_write, nothing set: %+v, want a new id and no cookie", r)
	}
	r2 := u.get(e.base + "/")
	if r2.view.ID == r.view.ID {
		t.Fatal("an unstored session ID was reused")
	}
	always := startSessionEnv(t, envOptions{local: 1 << 20, store: sessionstore.Options{CreateAlways: true}})
	r = u.get(always.base + "/")
	if len(r.setCookie) != 1 {
		t.Fatalf("create: always did not set a cookie: %+v", r)
	}
	if r2 := u.get(always.base + "/"); r2.view.ID != r.view.ID || r2.view.New {
		t.Fatalf("create: always, second request: %+v", r2.view)
	}
}

func TestSessionHeadersCannotBeSpoofedOrLeaked(t *testing.T) {
	e := startSessionEnv(t, envOptions{memcached: 1, local: 1 << 20})
	u := newUser(t)
	u.get(e.base + "/?set=role:user")
	r := u.get(e.base+"/?raw=X-Session-Attr-Leak:1&raw=X-SESSION-ID:zzz&set=seen:1",
		"X-Session-Attr-Role", "admin", "x-session-id", "forged", "X-Session-New", "1", "X-Session-Set-role", "admin")
	if r.view.Attrs["role"] != "user" || len(r.view.Leaked) != 0 {
		t.Fatalf("client headers reached the backend: %+v", r.view)
	}
	for k := range r.header {
		if strings.HasPrefix(strings.ToLower(k), "x-session-") {
			t.Fatalf("backend header %s reached the client", k)
		}
	}
	if r2 := u.get(e.base + "/"); r2.view.Attrs["role"] != "user" || r2.view.Attrs["seen"] != "1" {
		t.Fatalf("session after spoof attempt: %+v", r2.view.Attrs)
	}
}

// memcachedGets returns memcached's cmd_get counter.
func memcachedGets(t *testing.T, addr string) int {
	t.Helper()
	c, err := (&memcacheDialer{addr}).stats()
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(c["cmd_get"])
	return n
}

func TestForgedAndMalformedCookies(t *testing.T) {
	e := startSessionEnv(t, envOptions{memcached: 1})
	real := newUser(t)
	real.get(e.base + "/?set=user:alice")
	realID := real.cookie(e.base)

	forged := sessionstore.AppendNewID(nil) // well-formed, never issued
	u := newUser(t)
	r := u.get(e.base+"/", "Cookie", "SPSESSIONID="+string(forged))
	if !r.view.New || r.view.ID == string(forged) || len(r.view.Attrs) != 0 {
		t.Fatalf("forged ID adopted: %+v", r.view)
	}
	before := memcachedGets(t, e.nodes[0].Addr)
	for _, bad := range []string{"x", realID + "x", realID[:21] + " ", "../../etc", "a%0D%0Aset sp:x 0 0 1", strings.Repeat("A", 300)} {
		r := u.get(e.base+"/", "Cookie", "SPSESSIONID="+bad)
		if r.status != 200 || !r.view.New || r.view.ID == bad {
			t.Fatalf("malformed cookie %q: %+v", bad, r)
		}
	}
	if after := memcachedGets(t, e.nodes[0].Addr); after != before {
		t.Fatalf("malformed cookies reached memcached: cmd_get %d -> %d", before, after)
	}
	if r := real.get(e.base + "/"); r.view.Attrs["user"] != "alice" {
		t.Fatalf("real session damaged: %+v", r.view)
	}
}

func TestUnknownCookieExpired(t *testing.T) {
	e := startSessionEnv(t, envOptions{memcached: 1})
	u := newUser(t)
	stale := sessionstore.AppendNewID(nil) // e.g. a session that expired
	r := u.get(e.base+"/", "Cookie", "SPSESSIONID="+string(stale))
	want := "SPSESSIONID=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"
	if len(r.setCookie) != 1 || r.setCookie[0] != want {
		t.Fatalf("unknown session cookie: Set-Cookie %v, want it expired", r.setCookie)
	}
	// When the backend stores something, the new session's cookie replaces it instead.
	r = u.get(e.base+"/?set=a:1", "Cookie", "SPSESSIONID="+string(stale))
	if len(r.setCookie) != 1 || !strings.HasPrefix(r.setCookie[0], "SPSESSIONID="+r.view.ID+";") {
		t.Fatalf("new session over an unknown cookie: Set-Cookie %v", r.setCookie)
	}
}

func TestRotate(t *testing.T) {
	e := startSessionEnv(t, envOptions{memcached: 2, local: 1 << 20})
	u := newUser(t)
	u.get(e.base + "/?set=cart:3")
	oldID := u.cookie(e.base)
	r := u.get(e.base + "/?set=user:alice&rotate=1")
	newID := u.cookie(e.base)
	if newID == oldID || len(r.setCookie) != 1 || !strings.HasPrefix(r.setCookie[0], "SPSESSIONID="+newID+"; Path=/") {
		t.Fatalf("rotate: cookie %q -> %q, Set-Cookie %v", oldID, newID, r.setCookie)
	}
	if r := u.get(e.base + "/"); r.view.ID != newID || r.view.Attrs["cart"] != "3" || r.view.Attrs["user"] != "alice" {
		t.Fatalf("after rotate: %+v", r.view)
	}
	attacker := newUser(t)
	if r := attacker.get(e.base+"/", "Cookie", "SPSESSIONID="+oldID); !r.view.New || len(r.view.Attrs) != 0 {
		t.Fatalf("old ID still usable after rotate: %+v", r.view)
	}
}

func TestInvalidate(t *testing.T) {
	e := startSessionEnv(t, envOptions{memcached: 2, local: 1 << 20})
	u := newUser(t)
	u.get(e.base + "/?set=user:bob")
	id := u.cookie(e.base)
	r := u.get(e.base + "/?invalidate=1")
	want := "SPSESSIONID=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"
	if len(r.setCookie) != 1 || r.setCookie[0] != want {
		t.Fatalf("invalidate Set-Cookie = %v, want %q", r.setCookie, want)
	}
	if u.cookie(e.base) != "" {
		t.Fatal("cookie not expired in the jar")
	}
	other := newUser(t)
	if r := other.get(e.base+"/", "Cookie", "SPSESSIONID="+id); !r.view.New || len(r.view.Attrs) != 0 {
		t.Fatalf("invalidated session still served: %+v", r.view)
	}
}

func TestIgnorePaths(t *testing.T) {
	e := startSessionEnv(t, envOptions{memcached: 1, local: 1 << 20,
		sessions: &Sessions{Ignore: regexp.MustCompile(`.*\.(ico|png|gif|jpg|css|js)$`)}})
	u := newUser(t)
	u.get(e.base + "/?set=user:bob")
	r := u.get(e.base + "/static/app.js?set=evil:1")
	if r.view.ID != "" || len(r.view.Attrs) != 0 || len(r.setCookie) != 0 {
		t.Fatalf("ignored path got a session: %+v", r)
	}
	fresh := newUser(t)
	if r := fresh.get(e.base + "/logo.png?set=x:1"); r.view.ID != "" || len(r.setCookie) != 0 {
		t.Fatalf("ignored path created a session: %+v", r)
	}
	if r := u.get(e.base + "/"); r.view.Attrs["evil"] != "" || r.view.Attrs["user"] != "bob" {
		t.Fatalf("ignored path changed the session: %+v", r.view.Attrs)
	}
}

func TestConcurrentRequestsKeepAllAttributes(t *testing.T) {
	e := startSessionEnv(t, envOptions{memcached: 2, local: 1 << 20})
	u := newUser(t)
	u.get(e.base + "/?set=start:1")
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := u.get(fmt.Sprintf("%s/?set=k%02d:%d", e.base, i, i)); r.status != 200 {
				t.Errorf("request %d: %d %s", i, r.status, r.body)
			}
		}()
	}
	wg.Wait()
	r := u.get(e.base + "/")
	if len(r.view.Attrs) != 41 {
		var names []string
		for k := range r.view.Attrs {
			names = append(names, k)
		}
		sort.Strings(names)
		t.Fatalf("%d attributes after 40 concurrent sets, want 41: %v", len(r.view.Attrs), names)
	}
}

func TestBadUpdatesRejected(t *testing.T) {
	var logs lockedBuffer
	e := startSessionEnv(t, envOptions{memcached: 1, local: 1 << 20, store: sessionstore.Options{MaxSize: 2048},
		sessions: &Sessions{Logger: newTestLogger(&logs)}})
	u := newUser(t)
	u.get(e.base + "/?set=user:bob")
	tests := []struct {
		query, reason string // reason: what the log says, never the client
	}{
		{"/?set=ok:1&raw=X-Session-Set-bad.name:1", "bad attribute name"},
		{"/?set=ok:1&set=" + strings.Repeat("n", 65) + ":1", "bad attribute name"},
		{"/?set=ok:1&raw=X-Session-Unset:fine,bad%20name", "bad attribute name"},
		{"/?set=ok:1&set=big:" + strings.Repeat("x", 3000), "session over max_size"},
		{"/?set=ok:1&raw=X-Session-Invalidate:maybe", "X-Session-Invalidate must be 1"},
	}
	for _, tt := range tests {
		before := strings.Count(logs.String(), tt.reason)
		r := u.get(e.base + tt.query)
		if r.status != 502 || r.body != "invalid session update from backend\n" {
			t.Errorf("%s: %d %q, want 502 and the generic reason", tt.query, r.status, r.body)
		}
		if strings.Count(logs.String(), tt.reason) <= before {
			t.Errorf("%s: the log lacks the details %q:\n%s", tt.query, tt.reason, logs.String())
		}
		for k := range r.header {
			if strings.HasPrefix(strings.ToLower(k), "x-session-") {
				t.Errorf("%s: header %s reached the client", tt.query, k)
			}
		}
	}
	if r := u.get(e.base + "/"); r.view.Attrs["ok"] != "" || r.view.Attrs["user"] != "bob" || len(r.view.Attrs) != 1 {
		t.Fatalf("a rejected update was applied: %+v", r.view.Attrs)
	}
}

func TestPrimaryKilledUnderLoad(t *testing.T) {
	// Local tier off: every request reads memcached.
	e := startSessionEnv(t, envOptions{memcached: 2})
	users := make([]*user, 10)
	for i := range users {
		users[i] = newUser(t)
		users[i].get(e.base + "/?inc=n")
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	counts := make([]int, len(users))
	for i, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 2; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				r := u.get(e.base + "/?inc=n")
				if r.status != 200 {
					t.Errorf("user %d request %d: %d %q", i, n, r.status, r.body)
					return
				}
				if r.view.Attrs["n"] != strconv.Itoa(n-1) {
					t.Errorf("user %d request %d saw n=%s, want %d (lost write)", i, n, r.view.Attrs["n"], n-1)
					return
				}
				counts[i] = n
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	e.nodes[0].Stop() // kill n1 under load
	time.Sleep(300 * time.Millisecond)
	e.nodes[0].Restart() // back, empty
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	for i, u := range users {
		if r := u.get(e.base + "/"); r.view.Attrs["n"] != strconv.Itoa(counts[i]) {
			t.Fatalf("user %d: n=%s after the failover, want %d", i, r.view.Attrs["n"], counts[i])
		}
	}
}

func TestFrozenNodeThenResumed(t *testing.T) {
	e := startSessionEnv(t, envOptions{memcached: 2})
	u := newUser(t)
	u.get(e.base + "/?set=v:old")
	e.nodes[0].Freeze() // n1 keeps v=old and answers nothing
	if r := u.get(e.base + "/?set=v:new"); r.status != 200 {
		t.Fatalf("write with n1 frozen: %d %s", r.status, r.body)
	}
	e.nodes[0].Thaw()
	waitFor(t, "n1 back", func() bool { return e.proxy.Status().Memcached[0].Up })
	for i := 0; i < 10; i++ {
		if r := u.get(e.base + "/"); r.view.Attrs["v"] != "new" {
			t.Fatalf("read %d after resuming n1: v=%s", i, r.view.Attrs["v"])
		}
	}
}

func TestStoreDown(t *testing.T) {
	for _, mode := range []string{"reject", "new"} {
		t.Run(mode, func(t *testing.T) {
			e := startSessionEnv(t, envOptions{memcached: 2, store: sessionstore.Options{NewOnUnavailable: mode == "new"}})
			u := newUser(t)
			u.get(e.base + "/?set=user:bob")
			id := u.cookie(e.base)
			e.nodes[0].Stop()
			e.nodes[1].Stop()
			r := u.get(e.base + "/")
			if mode == "reject" {
				if r.status != 503 || r.body != "session store unavailable\n" || r.header.Get("Retry-After") == "" {
					t.Fatalf("reject: %d %q Retry-After=%q", r.status, r.body, r.header.Get("Retry-After"))
				}
				if u.cookie(e.base) != id {
					t.Fatal("reject changed the client's cookie")
				}
			} else if r.status != 200 || !r.view.New || r.view.ID == id {
				t.Fatalf("new: %d %+v", r.status, r.view)
			}
			// A client without a session is served either way.
			if r := newUser(t).get(e.base + "/"); r.status != 200 {
				t.Fatalf("cookieless request with the store down: %d %s", r.status, r.body)
			}
		})
	}
}

func TestAllNodesDownKeepsLocalChanges(t *testing.T) {
	e := startSessionEnv(t, envOptions{memcached: 2, local: 1 << 20})
	u := newUser(t)
	u.get(e.base + "/?inc=n")
	e.nodes[0].Stop()
	e.nodes[1].Stop()
	for i := 2; i <= 4; i++ {
		if r := u.get(e.base + "/?inc=n"); r.status != 200 || r.view.Attrs["n"] != strconv.Itoa(i-1) {
			t.Fatalf("request %d with memcached down: %d %+v", i, r.status, r.view)
		}
	}
	e.nodes[0].Restart()
	e.nodes[1].Restart()
	waitFor(t, "written back", func() bool { return e.store.Dirty() == 0 && e.proxy.Status().Memcached[1].Up })
	id := u.cookie(e.base)
	it, err := memcache.New(e.nodes[0].Addr).Get("sp:" + id)
	if err != nil {
		t.Fatalf("session not written back to n1: %v", err)
	}
	var s sessionstore.Session
	s.Decode(it.Value)
	if v, _ := s.Get("n"); string(v) != "4" {
		t.Fatalf("written back n=%s, want 4", v)
	}
}

func TestSlidingExpiryThroughProxy(t *testing.T) {
	e := startSessionEnv(t, envOptions{memcached: 1, store: sessionstore.Options{TTL: 2 * time.Second}})
	active, idle := newUser(t), newUser(t)
	active.get(e.base + "/?set=a:1")
	idle.get(e.base + "/?set=a:1")
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(400 * time.Millisecond) {
		if r := active.get(e.base + "/"); r.view.Attrs["a"] != "1" {
			t.Fatalf("active session expired: %+v", r.view)
		}
	}
	if r := idle.get(e.base + "/"); !r.view.New {
		t.Fatalf("idle session alive after twice its ttl: %+v", r.view)
	}
}

func TestEmbeddedStore(t *testing.T) {
	e := startSessionEnv(t, envOptions{local: 1 << 20})
	u := newUser(t)
	for i := 1; i <= 4; i++ {
		if r := u.get(e.base + "/?inc=n"); r.view.Attrs["n"] != strconv.Itoa(i-1) && i > 1 {
			t.Fatalf("embedded request %d: %+v", i, r.view)
		}
	}
	if r := u.get(e.base + "/"); r.view.Attrs["n"] != "4" {
		t.Fatalf("embedded: n=%s", r.view.Attrs["n"])
	}
}

func TestAdminSessions(t *testing.T) {
	e := startSessionEnv(t, envOptions{memcached: 2, local: 1 << 20})
	u := newUser(t)
	u.get(e.base + "/?set=user:bob")
	id := u.cookie(e.base)
	r := get(t, e.adminURL+"/sessions/"+id)
	var doc SessionJSON
	if err := json.Unmarshal([]byte(r.body), &doc); err != nil || doc.ID != id || doc.Attributes["user"] != "bob" || doc.Created == 0 {
		t.Fatalf("GET /sessions/id = %d %q", r.status, r.body)
	}
	if r := get(t, e.adminURL+"/sessions/nope"); r.status != 404 {
		t.Fatalf("GET unknown = %d", r.status)
	}
	if r := do(t, http.MethodDelete, e.adminURL+"/sessions/"+id, ""); r.status != 204 {
		t.Fatalf("DELETE = %d %q", r.status, r.body)
	}
	if r := u.get(e.base + "/"); !r.view.New {
		t.Fatalf("session alive after admin DELETE: %+v", r.view)
	}
	var st Status
	json.Unmarshal([]byte(get(t, e.adminURL+"/status").body), &st)
	if len(st.Memcached) != 2 || st.Memcached[0].ID != "n1" || !st.Memcached[0].Up || st.Memcached[0].Addr != e.nodes[0].Addr {
		t.Fatalf("/status memcached = %+v", st.Memcached)
	}
	e.nodes[1].Stop()
	newUser(t).get(e.base + "/?set=x:1")
	m := get(t, e.adminURL+"/metrics").body
	for _, want := range []string{`sessionproxy_memcached_up{node="n1"} 1`, `sessionproxy_memcached_up{node="n2"} 0`,
		`sessionproxy_session_lookups_total{result="local"} `, `sessionproxy_session_lookups_total{result="miss"} `} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
