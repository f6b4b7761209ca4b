package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sessionproxy/internal/redistest"
	"sessionproxy/sessionstore"
)

// startRedisEnv is startSessionEnv with srv as the shared store.
func startRedisEnv(t *testing.T, srv *redistest.Server, o envOptions) *sessionEnv {
	t.Helper()
	o.store.Redis = sessionstore.RedisOptions{Addrs: []string{srv.Addr}, ClientCache: true,
		Timeout: 500 * time.Millisecond, ProbeInterval: 50 * time.Millisecond}
	return startSessionEnv(t, o)
}

// TestRedisSessionBehaviours runs the session behaviours of the request
// path (headers, cookie, rotation, invalidation, concurrent changes) with
// Redis as the store.
func TestRedisSessionBehaviours(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	e := startRedisEnv(t, srv, envOptions{local: 1 << 20})

	t.Run("shared across backends", func(t *testing.T) {
		u := newUser(t)
		first := u.get(e.base + "/?inc=visits")
		want := "SPSESSIONID=" + first.view.ID + "; Path=/; HttpOnly; SameSite=Lax"
		if !first.view.New || len(first.setCookie) != 1 || first.setCookie[0] != want {
			t.Fatalf("first request: %+v, want Set-Cookie %q", first, want)
		}
		var backends []string
		for i := 2; i <= 5; i++ {
			r := u.get(e.base + "/?inc=visits")
			backends = append(backends, r.view.Backend)
			if r.view.ID != first.view.ID || r.view.New || r.view.Created != first.view.Created ||
				r.view.Attrs["visits"] != strconv.Itoa(i-1) || len(r.setCookie) != 0 {
				t.Fatalf("request %d: %+v", i, r)
			}
		}
		if b := strings.Join(backends, ""); b != "BABA" && b != "ABAB" {
			t.Fatalf("backends %v, want alternating", backends)
		}
		if out := srv.MustCLI("EXISTS", "sp:"+first.view.ID); strings.TrimSpace(out) != "1" {
			t.Fatalf("session not in redis: %q", out)
		}
	})

	t.Run("headers cannot be spoofed or leaked", func(t *testing.T) {
		u := newUser(t)
		u.get(e.base + "/?set=role:user")
		r := u.get(e.base+"/?raw=X-Session-Attr-Leak:1&set=seen:1",
			"X-Session-Attr-Role", "admin", "x-session-id", "forged", "X-Session-Set-role", "admin")
		if r.view.Attrs["role"] != "user" || len(r.view.Leaked) != 0 {
			t.Fatalf("client headers reached the backend: %+v", r.view)
		}
		for k := range r.header {
			if strings.HasPrefix(strings.ToLower(k), "x-session-") {
				t.Fatalf("backend header %s reached the client", k)
			}
		}
		if r := u.get(e.base + "/"); r.view.Attrs["role"] != "user" || r.view.Attrs["seen"] != "1" {
			t.Fatalf("session after spoof attempt: %+v", r.view.Attrs)
		}
	})

	t.Run("forged and malformed cookies", func(t *testing.T) {
		u := newUser(t)
		forged := sessionstore.AppendNewID(nil)
		r := u.get(e.base+"/", "Cookie", "SPSESSIONID="+string(forged))
		if !r.view.New || r.view.ID == string(forged) {
			t.Fatalf("forged ID adopted: %+v", r.view)
		}
		if len(r.setCookie) != 1 || r.setCookie[0] != "SPSESSIONID=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax" {
			t.Fatalf("unknown session cookie not expired: %v", r.setCookie)
		}
		before := srv.Calls("get")
		for _, bad := range []string{"x", string(forged) + "x", "../../etc", "a%0D%0ASET sp:x 1", strings.Repeat("A", 300)} {
			if r := u.get(e.base+"/", "Cookie", "SPSESSIONID="+bad); r.status != 200 || !r.view.New || r.view.ID == bad {
				t.Fatalf("malformed cookie %q: %+v", bad, r)
			}
		}
		if after := srv.Calls("get"); after != before {
			t.Fatalf("malformed cookies reached redis: GET %d -> %d", before, after)
		}
	})

	t.Run("rotate", func(t *testing.T) {
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
		if r := newUser(t).get(e.base+"/", "Cookie", "SPSESSIONID="+oldID); !r.view.New || len(r.view.Attrs) != 0 {
			t.Fatalf("old ID still usable after rotate: %+v", r.view)
		}
	})

	t.Run("invalidate", func(t *testing.T) {
		u := newUser(t)
		u.get(e.base + "/?set=user:bob")
		id := u.cookie(e.base)
		r := u.get(e.base + "/?invalidate=1")
		if len(r.setCookie) != 1 || r.setCookie[0] != "SPSESSIONID=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax" {
			t.Fatalf("invalidate Set-Cookie = %v", r.setCookie)
		}
		if r := newUser(t).get(e.base+"/", "Cookie", "SPSESSIONID="+id); !r.view.New || len(r.view.Attrs) != 0 {
			t.Fatalf("invalidated session still served: %+v", r.view)
		}
	})

	t.Run("concurrent different attributes all kept", func(t *testing.T) {
		u := newUser(t)
		u.get(e.base + "/?set=start:1")
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
		if r := u.get(e.base + "/"); len(r.view.Attrs) != 41 {
			t.Fatalf("%d attributes after 40 concurrent sets, want 41: %v", len(r.view.Attrs), r.view.Attrs)
		}
	})

	t.Run("admin sessions and status", func(t *testing.T) {
		u := newUser(t)
		u.get(e.base + "/?set=user:bob")
		id := u.cookie(e.base)
		var doc SessionJSON
		if r := get(t, e.adminURL+"/sessions/"+id); json.Unmarshal([]byte(r.body), &doc) != nil || doc.ID != id || doc.Attributes["user"] != "bob" {
			t.Fatalf("GET /sessions/id = %d %q", r.status, r.body)
		}
		if r := get(t, e.adminURL+"/sessions/"+string(sessionstore.AppendNewID(nil))); r.status != 404 {
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
		if len(st.Redis) != 1 || st.Redis[0].Addr != srv.Addr || !st.Redis[0].Up || len(st.Memcached) != 0 {
			t.Fatalf("/status = %+v", st)
		}
		m := get(t, e.adminURL+"/metrics").body
		if want := fmt.Sprintf(`sessionproxy_redis_up{server=%q} 1`, srv.Addr); !strings.Contains(m, want) {
			t.Fatalf("/metrics lacks %q", want)
		}
	})
}

func TestRedisSlidingExpiryThroughProxy(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	e := startRedisEnv(t, srv, envOptions{local: 1 << 20, store: sessionstore.Options{TTL: 2 * time.Second}})
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

func TestRedisStoreDown(t *testing.T) {
	for _, mode := range []string{"reject", "new"} {
		t.Run(mode, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{})
			e := startRedisEnv(t, srv, envOptions{store: sessionstore.Options{NewOnUnavailable: mode == "new"}})
			u := newUser(t)
			u.get(e.base + "/?set=user:bob")
			id := u.cookie(e.base)
			srv.Stop()
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
			waitFor(t, "status down", func() bool { st := e.proxy.Status(); return len(st.Redis) == 1 && !st.Redis[0].Up })
		})
	}
}
