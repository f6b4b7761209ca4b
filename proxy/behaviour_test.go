package proxy

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sessionproxy/internal/apptest"
	"sessionproxy/internal/storetest"
	"sessionproxy/sessionstore"
)

// expiredCookie is the Set-Cookie that ends a client's session.
const expiredCookie = "SPSESSIONID=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"

// sessionBehaviours are the session behaviours of the request path
// (headers, cookie, rotation, invalidation, concurrent changes, admin),
// which hold whatever the shared store is. Each case gets a proxy and
// backends of its own over the kind's deployment, under a key prefix of
// its own.
var sessionBehaviours = []storetest.Case{
	{Name: "shared across backends", Test: testSessionSharedAcrossBackends},
	{Name: "create on write and always", Test: testCreateOnWriteAndAlways},
	{Name: "headers cannot be spoofed or leaked", Test: testSessionHeadersCannotBeSpoofedOrLeaked},
	{Name: "forged and malformed cookies", Test: testForgedAndMalformedCookies},
	{Name: "unknown cookie expired", Test: testUnknownCookieExpired},
	{Name: "rotate", Test: testRotate},
	{Name: "invalidate", Test: testInvalidate},
	{Name: "ignore paths", Test: testIgnorePaths},
	{Name: "concurrent requests keep all attributes", Test: testConcurrentRequestsKeepAllAttributes},
	{Name: "bad updates rejected", Test: testBadUpdatesRejected},
	{Name: "sliding expiry", Test: testSlidingExpiryThroughProxy},
	{Name: "slow request racing rotation", Test: testSlowRequestRacingRotation},
	{Name: "backend sets a large session", Test: testBackendSetsLargeSession},
}

// TestSessionBehaviours runs every session behaviour of the request path
// against each kind of shared store, on real servers.
func TestSessionBehaviours(t *testing.T) { storetest.RunEach(t, storetest.Kinds, sessionBehaviours) }

func testSessionSharedAcrossBackends(t *testing.T, d *storetest.Deployment) {
	e := startSessionEnv(t, envOptions{shared: d, local: 1 << 20})
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
	if n := d.Copies(t, e.prefix+first.view.ID); n != d.Replicas() {
		t.Fatalf("%d servers hold the session, want %d", n, d.Replicas())
	}
}

func testCreateOnWriteAndAlways(t *testing.T, d *storetest.Deployment) {
	e := startSessionEnv(t, envOptions{shared: d, local: 1 << 20})
	u := newUser(t)
	r := u.get(e.base + "/")
	if !r.view.New || r.view.ID == "" || len(r.setCookie) != 0 {
		t.Fatalf("on_write, nothing set: %+v, want a new id and no cookie", r)
	}
	if n := d.Copies(t, e.prefix+r.view.ID); n != 0 {
		t.Fatalf("on_write, nothing set: %d servers hold the session", n)
	}
	if r2 := u.get(e.base + "/"); r2.view.ID == r.view.ID {
		t.Fatal("an unstored session ID was reused")
	}
	always := startSessionEnv(t, envOptions{shared: d, local: 1 << 20, store: sessionstore.Options{CreateAlways: true}})
	r = u.get(always.base + "/")
	if len(r.setCookie) != 1 {
		t.Fatalf("create: always did not set a cookie: %+v", r)
	}
	if r2 := u.get(always.base + "/"); r2.view.ID != r.view.ID || r2.view.New {
		t.Fatalf("create: always, second request: %+v", r2.view)
	}
}

func testSessionHeadersCannotBeSpoofedOrLeaked(t *testing.T, d *storetest.Deployment) {
	e := startSessionEnv(t, envOptions{shared: d, local: 1 << 20})
	u, _ := e.loggedIn(t, "/?set=role:user")
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

func testForgedAndMalformedCookies(t *testing.T, d *storetest.Deployment) {
	e := startSessionEnv(t, envOptions{shared: d})
	real := newUser(t)
	real.get(e.base + "/?set=user:alice")
	realID := real.cookie(e.base)

	forged := sessionstore.AppendNewID(nil) // well-formed, never issued
	u := newUser(t)
	r := u.get(e.base+"/", "Cookie", "SPSESSIONID="+string(forged))
	if !r.view.New || r.view.ID == string(forged) || len(r.view.Attrs) != 0 {
		t.Fatalf("forged ID adopted: %+v", r.view)
	}
	before := d.Reads(t)
	for _, bad := range []string{"x", realID + "x", realID[:21] + " ", "../../etc", "a%0D%0Aset sp:x 0 0 1",
		"a%0D%0ASET sp:x 1", strings.Repeat("A", 300)} {
		r := u.get(e.base+"/", "Cookie", "SPSESSIONID="+bad)
		if r.status != 200 || !r.view.New || r.view.ID == bad {
			t.Fatalf("malformed cookie %q: %+v", bad, r)
		}
	}
	if after := d.Reads(t); after != before {
		t.Fatalf("malformed cookies reached the store: %d reads -> %d", before, after)
	}
	if r := real.get(e.base + "/"); r.view.Attrs["user"] != "alice" {
		t.Fatalf("real session damaged: %+v", r.view)
	}
}

func testUnknownCookieExpired(t *testing.T, d *storetest.Deployment) {
	e := startSessionEnv(t, envOptions{shared: d})
	u := newUser(t)
	stale := sessionstore.AppendNewID(nil) // e.g. a session that expired
	r := u.get(e.base+"/", "Cookie", "SPSESSIONID="+string(stale))
	if len(r.setCookie) != 1 || r.setCookie[0] != expiredCookie {
		t.Fatalf("unknown session cookie: Set-Cookie %v, want it expired", r.setCookie)
	}
	// When the backend stores something, the new session's cookie replaces it instead.
	r = u.get(e.base+"/?set=a:1", "Cookie", "SPSESSIONID="+string(stale))
	if len(r.setCookie) != 1 || !strings.HasPrefix(r.setCookie[0], "SPSESSIONID="+r.view.ID+";") {
		t.Fatalf("new session over an unknown cookie: Set-Cookie %v", r.setCookie)
	}
}

func testRotate(t *testing.T, d *storetest.Deployment) {
	e := startSessionEnv(t, envOptions{shared: d, local: 1 << 20})
	u, oldID := e.loggedIn(t, "/?set=cart:3")
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

func testInvalidate(t *testing.T, d *storetest.Deployment) {
	e := startSessionEnv(t, envOptions{shared: d, local: 1 << 20})
	u, id := e.loggedIn(t, "/?set=user:bob")
	r := u.get(e.base + "/?invalidate=1")
	if len(r.setCookie) != 1 || r.setCookie[0] != expiredCookie {
		t.Fatalf("invalidate Set-Cookie = %v, want %q", r.setCookie, expiredCookie)
	}
	if u.cookie(e.base) != "" {
		t.Fatal("cookie not expired in the jar")
	}
	other := newUser(t)
	if r := other.get(e.base+"/", "Cookie", "SPSESSIONID="+id); !r.view.New || len(r.view.Attrs) != 0 {
		t.Fatalf("invalidated session still served: %+v", r.view)
	}
}

func testIgnorePaths(t *testing.T, d *storetest.Deployment) {
	e := startSessionEnv(t, envOptions{shared: d, local: 1 << 20,
		sessions: &Sessions{Ignore: regexp.MustCompile(`.*\.(ico|png|gif|jpg|css|js)$`)}})
	u, _ := e.loggedIn(t, "/?set=user:bob")
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

func testConcurrentRequestsKeepAllAttributes(t *testing.T, d *storetest.Deployment) {
	e := startSessionEnv(t, envOptions{shared: d, local: 1 << 20})
	u, _ := e.loggedIn(t, "/?set=start:1")
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, err := u.try(fmt.Sprintf("%s/?set=k%02d:%d", e.base, i, i)); err != nil || r.status != 200 {
				t.Errorf("request %d: %v %d %s", i, err, r.status, r.body)
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

func testBadUpdatesRejected(t *testing.T, d *storetest.Deployment) {
	var logs apptest.Output
	e := startSessionEnv(t, envOptions{shared: d, local: 1 << 20, store: sessionstore.Options{MaxSize: 2048},
		sessions: &Sessions{Logger: newTestLogger(&logs)}})
	u, _ := e.loggedIn(t, "/?set=user:bob")
	tests := []struct {
		query, reason string // reason: what the log says, never the client
	}{
		{"/?set=ok:1&raw=X-Session-Set-bad.name:1", "bad attribute name"},
		{"/?set=ok:1&set=" + strings.Repeat("n", 201) + ":1", "bad attribute name"},
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

func testSlidingExpiryThroughProxy(t *testing.T, d *storetest.Deployment) {
	e := startSessionEnv(t, envOptions{shared: d, store: sessionstore.Options{TTL: 2 * time.Second}})
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

// TestStoreDown: with every server of the shared store down, a request
// with a session cookie gets 503 (store_down: reject) or a fresh session
// (new), and one without a cookie is served either way.
func TestStoreDown(t *testing.T) {
	for _, k := range storetest.Restartable {
		for _, mode := range []string{"reject", "new"} {
			t.Run(k.Name+"/"+mode, func(t *testing.T) {
				e := startSessionEnv(t, envOptions{shared: k.Start(t), store: sessionstore.Options{NewOnUnavailable: mode == "new"}})
				u, id := e.loggedIn(t, "/?set=user:bob")
				e.deploy.Stop()
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
				if r := newUser(t).get(e.base + "/"); r.status != 200 {
					t.Fatalf("cookieless request with the store down: %d %s", r.status, r.body)
				}
				waitFor(t, "status down", func() bool {
					nodes := e.store.Nodes()
					for _, n := range nodes {
						if n.Up {
							return false
						}
					}
					return len(nodes) > 0
				})
			})
		}
	}
}
