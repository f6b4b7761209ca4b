package sessionstore

import (
	"errors"
	"testing"
	"time"

	"sessionproxy/internal/storetest"
)

// TestLifetimeBehaviours runs the lifetime behaviours (CONTRACT.md section
// 16) against each kind of shared store, on real servers, through two
// Stores standing for two proxies.
func TestLifetimeBehaviours(t *testing.T) {
	cases := []storetest.Case{
		{Name: "max age ends a session on its next load", Test: func(t *testing.T, d *storetest.Deployment) { testMaxAge(t, newStoreEnv(d)) }},
		{Name: "own ttl is stored and expires the copies", Test: func(t *testing.T, d *storetest.Deployment) { testOwnTTL(t, newStoreEnv(d)) }},
		{Name: "persistent cookie slides at half its max-age", Test: func(t *testing.T, d *storetest.Deployment) { testCookieSlides(t, newStoreEnv(d)) }},
	}
	storetest.RunEach(t, storetest.Kinds, cases)
}

// request runs one request's session lifecycle on s: Open with cookie,
// change (if not nil) fills the Update, then Commit.
func request(t *testing.T, s *Store, cookie []byte, change func(u *Update)) (*Request, CookieAction, []byte) {
	t.Helper()
	r := new(Request)
	if err := s.Open(r, cookie); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if change != nil {
		change(&r.Change)
	}
	action, id, err := s.Commit(r)
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return r, action, append([]byte(nil), id...)
}

func testMaxAge(t *testing.T, e *storeEnv) {
	a := e.store(t, Options{LocalSize: 1 << 20, LocalTTL: AutoTTL, MaxAge: 2 * time.Second})
	b := e.store(t, Options{LocalSize: 1 << 20, LocalTTL: AutoTTL, MaxAge: 2 * time.Second})
	_, action, id := request(t, a, nil, func(u *Update) { u.Set([]byte("user"), []byte("ann")) })
	if action != CookieSet {
		t.Fatalf("new session: action %v", action)
	}
	// Used all the time, through both proxies: activity does not extend
	// an absolute lifetime.
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
		for _, s := range []*Store{a, b} {
			if r, _, _ := request(t, s, id, func(u *Update) { u.Set([]byte("n"), []byte("1")) }); r.New {
				t.Fatal("session ended before max_age")
			}
		}
	}
	time.Sleep(700 * time.Millisecond)
	before := Ended(EndMaxAge)
	r, action, newID := request(t, b, id, nil)
	if !r.New || r.Lookup != LookupMiss || string(r.Session.ID) == string(id) {
		t.Fatalf("past max_age: New %v, lookup %v, same id %v", r.New, r.Lookup, string(r.Session.ID) == string(id))
	}
	if action != CookieExpire {
		t.Fatalf("past max_age with nothing written: action %v, want the cookie expired", action)
	}
	if _, ok := r.Session.Get("user"); ok {
		t.Fatal("the new session carries the old one's attributes")
	}
	if got := Ended(EndMaxAge) - before; got != 1 {
		t.Fatalf("sessions_ended{max_age} went up by %d, want 1", got)
	}
	_ = newID
	// The old session is gone in the shared store, for the other proxy too.
	waitFor(t, "the old session gone through the other proxy", func() bool {
		var s Session
		_, err := a.Load(id, &s)
		return errors.Is(err, ErrNotFound)
	})
	if v, err := a.shared.Get(id); err != nil || !mustDecode(t, v).Deleted {
		t.Fatalf("the shared store's copy is not a tombstone: %v", err)
	}
	// A request past max_age that writes gets a new session and cookie.
	_, action, id2 := request(t, b, id, func(u *Update) { u.Set([]byte("user"), []byte("ann")) })
	if action != CookieSet || string(id2) == string(id) {
		t.Fatalf("a write past max_age: action %v, same id %v", action, string(id2) == string(id))
	}
}

func mustDecode(t *testing.T, v []byte) *Session {
	t.Helper()
	var s Session
	if err := s.Decode(v); err != nil {
		t.Fatal(err)
	}
	return &s
}

func testOwnTTL(t *testing.T, e *storeEnv) {
	a := e.store(t, Options{LocalSize: 1 << 20})
	b := e.store(t, Options{LocalSize: 1 << 20})
	const month = 30 * 24 * 3600
	r, action, id := request(t, a, nil, func(u *Update) {
		u.Set([]byte("user"), []byte("ann"))
		if err := u.SetTTL(month); err != nil {
			t.Fatal(err)
		}
	})
	if action != CookieSet || r.CookieMaxAge() != month {
		t.Fatalf("remember me: action %v, cookie max-age %d", action, r.CookieMaxAge())
	}
	// Every copy expires after the session's own ttl (and a quarter),
	// and the other proxy reads it with the session.
	for _, ttl := range e.d.TTLs(t, e.key(id)) {
		if ttl < 30*24*time.Hour || ttl > 38*24*time.Hour {
			t.Fatalf("a copy expires in %v, want 30 days and a quarter", ttl)
		}
	}
	var got Session
	if _, err := b.Load(id, &got); err != nil || got.TTL != month {
		t.Fatalf("other proxy: ttl %d, %v", got.TTL, err)
	}
	// 0 goes back to the default ttl and a session cookie.
	r, action, _ = request(t, b, id, func(u *Update) { u.SetTTL(0) })
	if action != CookieSet || r.CookieMaxAge() != 0 {
		t.Fatalf("back to default: action %v, cookie max-age %d", action, r.CookieMaxAge())
	}
	for _, ttl := range e.d.TTLs(t, e.key(id)) {
		if ttl < 30*time.Minute || ttl > 38*time.Minute {
			t.Fatalf("a copy expires in %v, want 30m and a quarter", ttl)
		}
	}
	// Out of range: refused, nothing recorded.
	var u Update
	for _, n := range []int64{-1, MaxTTL + 1, 1 << 40} {
		if err := u.SetTTL(n); !errors.Is(err, ErrBadTTL) || !u.Empty() {
			t.Fatalf("SetTTL(%d) = %v, empty %v", n, err, u.Empty())
		}
	}
	// A short own ttl expires the session idle that long, default ttl or not.
	_, _, short := request(t, a, nil, func(u *Update) { u.Set([]byte("a"), []byte("1")); u.SetTTL(1) })
	waitFor(t, "a session with a ttl of 1s gone", func() bool {
		var s Session
		_, err := b.Load(short, &s)
		return errors.Is(err, ErrNotFound)
	})
}

func testCookieSlides(t *testing.T, e *storeEnv) {
	a := e.store(t, Options{LocalSize: 1 << 20})
	b := e.store(t, Options{LocalSize: 1 << 20})
	_, _, id := request(t, a, nil, func(u *Update) { u.Set([]byte("a"), []byte("1")); u.SetTTL(4) })
	start := time.Now()
	// More than half its Max-Age left: no cookie, no write.
	if r, action, _ := request(t, b, id, nil); action != CookieKeep || r.New {
		t.Fatalf("early request: action %v, new %v", action, r.New)
	}
	time.Sleep(time.Until(start.Add(2200 * time.Millisecond)))
	r, action, got := request(t, b, id, nil)
	if action != CookieSet || string(got) != string(id) || r.CookieMaxAge() != 4 {
		t.Fatalf("less than half left: action %v, same id %v, max-age %d", action, string(got) == string(id), r.CookieMaxAge())
	}
	// Kept alive past its ttl by use.
	time.Sleep(time.Until(start.Add(4500 * time.Millisecond)))
	if r, _, _ := request(t, a, id, nil); r.New {
		t.Fatal("a used remember-me session expired")
	}
}

// TestTTLAfterAttributes checks that a session's own ttl is written after
// its attributes and changes nothing before them, so that a proxy of the
// previous release, which stops reading after the attributes, still reads
// a remember-me session.
func TestTTLAfterAttributes(t *testing.T) {
	plain := sessionWith("user", "ann", "cart", "3")
	plain.Created, plain.Version, plain.Touched, plain.Expires = 1700000000123, 7, 1700000000, 1700009000
	long := *plain
	long.TTL = 30 * 24 * 3600
	a, b := plain.AppendEncode(nil), long.AppendEncode(nil)
	if len(b) <= len(a) || string(b[2:len(a)]) != string(a[2:]) || b[1] != a[1]|flagTTL {
		t.Fatalf("with a ttl the encoding changes before the attributes' end:\n%x\n%x", a, b)
	}
	var got Session
	if err := got.Decode(b); err != nil || got.TTL != long.TTL || !sameSession(&got, &long) {
		t.Fatalf("Decode = %v, ttl %d", err, got.TTL)
	}
	// What an earlier reader sees: the flag it does not know, and the
	// bytes it never reads, ignored.
	if err := got.Decode(append([]byte{formatV1, a[1]}, b[2:]...)); err != nil || !sameSession(&got, plain) {
		t.Fatalf("the value without the ttl flag: %v", err)
	}
}
