package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/storetest"
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
	base   string
	proxy  *Proxy
	store  *sessionstore.Store
	nodes  []*memcachedtest.Server
	deploy *storetest.Deployment // envOptions.shared
	prefix string                // the store's key prefix
	apps   []*httptest.Server
}

type envOptions struct {
	memcached int // nodes to start
	// shared, if not nil, is the shared store instead, under a key
	// prefix of this env's own: Redis with client-side caching, or
	// memcached nodes with replicas: 2.
	shared   *storetest.Deployment
	local    int // local tier size; 0 off
	store    sessionstore.Options
	sessions *Sessions // nil: defaults
	backends int
}

// withShared returns so with d as its shared store, under a key prefix no
// other caller got, and the prefix: Redis with client-side caching, or
// the memcached nodes n1, n2 with replicas: 2.
func withShared(d *storetest.Deployment, so sessionstore.Options) (sessionstore.Options, string) {
	prefix := d.Prefix()
	if d.Kind.Redis {
		so.Redis = sessionstore.RedisOptions{Addrs: d.Addrs(), KeyPrefix: prefix, ClientCache: true,
			Timeout: 2 * time.Second, ProbeInterval: 50 * time.Millisecond} // a loaded machine under -race
		return so, prefix
	}
	so.Memcached.KeyPrefix = prefix
	for i, a := range d.Addrs() {
		so.Memcached.Nodes = append(so.Memcached.Nodes, sessionstore.Node{ID: fmt.Sprintf("n%d", i+1), Addr: a})
	}
	if so.Memcached.Timeout == 0 {
		so.Memcached.Timeout = 300 * time.Millisecond // see sessionstore's newStore
	}
	return so, prefix
}

func startSessionEnv(t *testing.T, o envOptions) *sessionEnv {
	t.Helper()
	e := &sessionEnv{}
	so := o.store
	e.prefix = sessionstore.DefaultKeyPrefix
	if d := o.shared; d != nil {
		e.deploy = d
		so, e.prefix = withShared(d, so)
		e.nodes = d.Memcached
	}
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
	// The start-up copy reads the nodes: tests that count reads must not
	// count it.
	store.Reconciled()
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
	e.proxy = &Proxy{Pool: newPool(t, "round_robin", nil, urls...), Sessions: s, Settings: Settings{Retries: 1}}
	e.base = startProxy(t, e.proxy, ServerOptions{})
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

// loggedIn returns a new user whose first request, path, had the backend
// store something, and the ID of the session it got.
func (e *sessionEnv) loggedIn(t *testing.T, path string) (*user, string) {
	t.Helper()
	u := newUser(t)
	if r := u.get(e.base + path); r.status != 200 || len(r.setCookie) != 1 {
		t.Fatalf("GET %s: %d, Set-Cookie %v", path, r.status, r.setCookie)
	}
	return u, u.cookie(e.base)
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
	waitFor(t, "n1 back", func() bool { return e.store.Nodes()[0].Up })
	for i := 0; i < 10; i++ {
		if r := u.get(e.base + "/"); r.view.Attrs["v"] != "new" {
			t.Fatalf("read %d after resuming n1: v=%s", i, r.view.Attrs["v"])
		}
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
	var b strings.Builder
	writeMetrics(&b, e.proxy)
	m := b.String()
	for _, want := range []string{`sessionproxy_memcached_up{node="n1"} 0`, `sessionproxy_memcached_up{node="n2"} 0`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics with both nodes down lacks %q", want)
		}
	}
	e.nodes[0].Restart()
	e.nodes[1].Restart()
	waitFor(t, "written back", func() bool { return e.store.Dirty() == 0 && e.store.Nodes()[1].Up })
	id := u.cookie(e.base)
	it, err := memcachedtest.Get(e.nodes[0].Addr, "sp:"+id)
	if err != nil {
		t.Fatalf("session not written back to n1: %v", err)
	}
	var s sessionstore.Session
	s.Decode(it.Value)
	if v, _ := s.Get("n"); string(v) != "4" {
		t.Fatalf("written back n=%s, want 4", v)
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
