package proxy

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"sessionproxy/sessionstore"
)

// sessionCookie returns the Set-Cookie of the session cookie among hs
// ("" if none) and fails if there are several.
func sessionCookie(t *testing.T, hs []string) string {
	t.Helper()
	var got string
	for _, h := range hs {
		if strings.HasPrefix(h, "SPSESSIONID=") {
			if got != "" {
				t.Fatalf("two session cookies: %q", hs)
			}
			got = h
		}
	}
	return got
}

// TestSessionMaxAgeHeader: a backend's X-Session-Max-Age gives the session
// a persistent cookie of that Max-Age, sent again once less than half of
// it is left; 0 goes back to a session cookie; anything else is refused
// like any other bad update (502, nothing applied); the header never
// reaches the client.
func TestSessionMaxAgeHeader(t *testing.T) {
	e := startSessionEnv(t, envOptions{local: 1 << 20})
	u := newUser(t)
	r := u.get(e.base + "/?set=user:ann&raw=X-Session-Max-Age:4")
	c := sessionCookie(t, r.setCookie)
	if r.status != 200 || !strings.Contains(c, "; Max-Age=4; Path=/; HttpOnly; SameSite=Lax") {
		t.Fatalf("remember me: %d, Set-Cookie %q", r.status, c)
	}
	if v := r.header.Get("X-Session-Max-Age"); v != "" {
		t.Fatalf("X-Session-Max-Age reached the client: %q", v)
	}
	start := time.Now()
	id := u.cookie(e.base)
	if r := u.get(e.base + "/"); r.view.ID != id || sessionCookie(t, r.setCookie) != "" {
		t.Fatalf("more than half of Max-Age left: id %q, Set-Cookie %q", r.view.ID, r.setCookie)
	}

	// Out of range, not a number, anything but digits: refused, and
	// nothing of that response applied.
	for _, bad := range []string{"-1", "abc", "1e3", "99999999999", "34560001", " ", "0x10", "+5", "4.5"} {
		r := u.get(e.base + "/?set=user:mallory&raw=" + url.QueryEscape("X-Session-Max-Age:"+bad))
		if r.status != 502 || sessionCookie(t, r.setCookie) != "" {
			t.Errorf("X-Session-Max-Age %q: %d, Set-Cookie %q; want 502 and nothing applied", bad, r.status, r.setCookie)
		}
	}
	if r := u.get(e.base + "/"); r.view.Attrs["user"] != "ann" || r.view.ID != id {
		t.Fatalf("after refused updates: %+v", r.view)
	}

	// Used past half its Max-Age: the cookie is sent again, same ID.
	time.Sleep(time.Until(start.Add(2200 * time.Millisecond)))
	r = u.get(e.base + "/")
	if c := sessionCookie(t, r.setCookie); r.view.ID != id || c != "SPSESSIONID="+id+"; Max-Age=4; Path=/; HttpOnly; SameSite=Lax" {
		t.Fatalf("less than half of Max-Age left: id %q, Set-Cookie %q", r.view.ID, r.setCookie)
	}
	// And it lives past its first Max-Age because it was used.
	time.Sleep(time.Until(start.Add(4500 * time.Millisecond)))
	if r := u.get(e.base + "/"); r.view.ID != id || r.view.New {
		t.Fatalf("a used remember-me session ended: %+v", r.view)
	}

	// 0: back to the default, a session cookie (no Max-Age).
	r = u.get(e.base + "/?raw=X-Session-Max-Age:0")
	if c := sessionCookie(t, r.setCookie); c != "SPSESSIONID="+id+"; Path=/; HttpOnly; SameSite=Lax" {
		t.Fatalf("X-Session-Max-Age: 0: Set-Cookie %q", r.setCookie)
	}
	var sess sessionstore.Session
	if _, err := e.store.Load([]byte(id), &sess); err != nil || sess.TTL != 0 {
		t.Fatalf("after 0: ttl %d, %v", sess.TTL, err)
	}
}

// TestSessionCookieDomainPath: cookie_domain and cookie_path are on every
// Set-Cookie, the deletion on logout included; ending a session counts in
// sessions_ended_total{reason="invalidated"}.
func TestSessionCookieDomainPath(t *testing.T) {
	e := startSessionEnv(t, envOptions{local: 1 << 20, sessions: &Sessions{CookieDomain: "example.com", CookiePath: "/app"}})
	r := get(t, e.base+"/app/?set=user:ann")
	c := sessionCookie(t, r.header.Values("Set-Cookie"))
	id, _, _ := strings.Cut(strings.TrimPrefix(c, "SPSESSIONID="), ";")
	if !strings.HasSuffix(c, "; Domain=example.com; Path=/app; HttpOnly; SameSite=Lax") || id == "" {
		t.Fatalf("Set-Cookie %q", c)
	}
	before := sessionstore.Ended(sessionstore.EndInvalidated)
	r = get(t, e.base+"/app/?invalidate=1", "Cookie", "SPSESSIONID="+id)
	if c := sessionCookie(t, r.header.Values("Set-Cookie")); c != "SPSESSIONID=; Max-Age=0; Domain=example.com; Path=/app; HttpOnly; SameSite=Lax" {
		t.Fatalf("logout: Set-Cookie %q", c)
	}
	if sessionstore.Ended(sessionstore.EndInvalidated) == before {
		t.Fatal("an invalidated session is not counted in sessions_ended_total{reason=invalidated}")
	}
	// A cookie naming an invalidated session is expired with the same
	// attributes.
	r = get(t, e.base+"/app/", "Cookie", "SPSESSIONID="+id)
	if c := sessionCookie(t, r.header.Values("Set-Cookie")); c != "SPSESSIONID=; Max-Age=0; Domain=example.com; Path=/app; HttpOnly; SameSite=Lax" {
		t.Fatalf("stale cookie: Set-Cookie %q", c)
	}
}

// FuzzParseMaxAge: whatever a backend sends as X-Session-Max-Age is either
// a ttl from 0 to MaxTTL, recorded as it reads in decimal, or refused with
// ErrBadTTL and nothing recorded; never a panic.
func FuzzParseMaxAge(f *testing.F) {
	for _, s := range []string{"0", "4", " 3600 ", "34560000", "34560001", "-1", "abc", "1e3", "99999999999", "", "0x10", "+5", "4.5", "\x00", "00000000001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		var u sessionstore.Update
		err := parseMaxAge(&u, []byte(v))
		if err != nil {
			if !errors.Is(err, sessionstore.ErrBadTTL) || !u.Empty() {
				t.Fatalf("%q: %v, empty %v", v, err, u.Empty())
			}
			return
		}
		n, perr := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if perr != nil || n < 0 || n > sessionstore.MaxTTL || u.Empty() {
			t.Fatalf("%q accepted: ParseInt %d %v", v, n, perr)
		}
	})
}
