package sessionstore

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
)

// principalStores returns two Stores (two proxies) over the same two
// memcached nodes, each with the principal index on attribute "user",
// and the ended reasons they counted.
// loadedTimeout is the memcached timeout of the principal tests' stores.
// With the default 100ms a loaded machine (load 10 to 50 on two cores)
// timed out healthy nodes: an index read that failed left the least
// recently used session unknown, and both nodes marked down before the
// freeze of TestPrincipalIndexAfterOutage. A frozen node is still found
// down, a second later.
const loadedTimeout = time.Second

func principalStores(t testing.TB, max int, nodes ...*memcachedtest.Server) (a, b *Store, ended func() []string) {
	var mu sync.Mutex
	var reasons []string
	o := Options{
		Memcached: MemcachedOptions{Nodes: []Node{{ID: "n1", Addr: nodes[0].Addr}, {ID: "n2", Addr: nodes[1].Addr}},
			Timeout: loadedTimeout},
		LocalSize: 4 << 20,
		LocalTTL:  AutoTTL,
		Principal: PrincipalOptions{Attr: "user", Max: max, OnEnded: func(r string) {
			mu.Lock()
			reasons = append(reasons, r)
			mu.Unlock()
		}},
	}
	var err error
	if a, err = New(o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	if b, err = New(o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return a, b, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(reasons)
	}
}

// commit runs one request through s: cookie (or "" for none), then the
// backend's sets (name, value pairs), rotate and invalidate. It returns
// the session's ID afterwards.
func commit(t testing.TB, s *Store, cookie string, rotate, invalidate bool, sets ...string) string {
	t.Helper()
	var r Request
	if err := s.Open(&r, []byte(cookie)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(sets); i += 2 {
		if sets[i+1] == "\x00unset" {
			r.Change.Unset([]byte(sets[i]))
			continue
		}
		if err := r.Change.Set([]byte(sets[i]), []byte(sets[i+1])); err != nil {
			t.Fatal(err)
		}
	}
	r.Change.Rotate, r.Change.Invalidate = rotate, invalidate
	act, id, err := s.Commit(&r)
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	if act == CookieSet {
		return string(id)
	}
	return string(r.Session.ID)
}

func listed(t testing.TB, s *Store, p string) []string {
	t.Helper()
	l, err := s.PrincipalSessions(p)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range l {
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	return ids
}

func sorted(ids ...string) []string { slices.Sort(ids); return ids }

func live(s *Store, id string) bool {
	var sess Session
	_, err := s.Load([]byte(id), &sess)
	return err == nil
}

// TestPrincipalIndexLifecycle: the index follows a principal's sessions
// through two stores (two proxies) on the same memcached nodes: set (in
// an adapter's JSON, percent-encoded), changed, rotated, unset,
// invalidated, ended elsewhere (pruned on read); then EndPrincipal ends
// every one of them, with one node down meanwhile.
func TestPrincipalIndexLifecycle(t *testing.T) {
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	a, b, ended := principalStores(t, 0, n1, n2)

	s1 := commit(t, a, "", false, false, "user", `"ann"`)
	s2 := commit(t, b, "", false, false, "user", "ann") // not JSON: the plain string
	s3 := commit(t, b, "", false, false, "user", `"Jos%C3%A9"`)
	if got, want := listed(t, a, "ann"), sorted(s1, s2); !slices.Equal(got, want) {
		t.Fatalf("ann's sessions through A: %q, want %q", got, want)
	}
	if got := listed(t, b, "José"); !slices.Equal(got, []string{s3}) {
		t.Fatalf("José's sessions: %q, want %q", got, s3)
	}
	// An ordinary write changes nothing in the index; a rotation moves
	// the entry to the new ID.
	commit(t, a, s1, false, false, "cart", "1")
	r1 := commit(t, b, s1, true, false)
	if r1 == s1 {
		t.Fatal("rotation kept the ID")
	}
	if got, want := listed(t, a, "ann"), sorted(r1, s2); !slices.Equal(got, want) {
		t.Fatalf("after rotation: %q, want %q", got, want)
	}
	// Another principal: out of ann's, into bob's.
	commit(t, a, s2, false, false, "user", `"bob"`)
	if got := listed(t, a, "ann"); !slices.Equal(got, []string{r1}) {
		t.Fatalf("after s2 became bob's: ann has %q, want %q", got, r1)
	}
	if got := listed(t, b, "bob"); !slices.Equal(got, []string{s2}) {
		t.Fatalf("bob: %q, want %q", got, s2)
	}
	// Unset, then set again; invalidated; ended by the admin one by one
	// (no hook): pruned on read.
	commit(t, a, s2, false, false, "user", "\x00unset")
	if got := listed(t, a, "bob"); len(got) != 0 {
		t.Fatalf("bob after unset: %q", got)
	}
	s4 := commit(t, a, "", false, false, "user", `"ann"`)
	s5 := commit(t, b, "", false, false, "user", `"ann"`)
	commit(t, a, s4, false, true)
	if err := b.Delete([]byte(s5)); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, b, "ann"); !slices.Equal(got, []string{r1}) {
		t.Fatalf("ann after an invalidation and an admin delete: %q, want %q", got, r1)
	}
	// A restart (Invalidate with sets: Django's flush then login).
	s6 := commit(t, a, r1, false, true, "user", `"ann"`)
	if got := listed(t, b, "ann"); !slices.Equal(got, []string{s6}) {
		t.Fatalf("ann after flush-and-login: %q, want %q", got, s6)
	}
	// A restart that does not set the principal (a logout that leaves a
	// message in a new session): the new session is nobody's.
	s6b := commit(t, a, "", false, false, "user", `"ann"`)
	anon := commit(t, a, s6b, false, true, "flash", "bye")
	ix, _ := a.principals.read("ann")
	if ix.find(anon) >= 0 || ix.find(s6b) >= 0 {
		t.Fatalf("after a flush without the principal, ann's index holds %+v (new %s, old %s)", ix.entries, anon[:6], s6b[:6])
	}

	// Log ann out everywhere with n2 down: the index and the sessions
	// are read from n1, tombstones replayed to n2 when it returns.
	s7 := commit(t, b, "", false, false, "user", `"ann"`)
	if !live(b, s6) || !live(a, s7) {
		t.Fatal("sessions not live before the logout")
	}
	n2.Stop()
	n, err := a.EndPrincipal("ann")
	if err != nil || n != 2 {
		t.Fatalf("EndPrincipal = %d, %v; want 2", n, err)
	}
	n2.Restart()
	deadline := time.Now().Add(2 * time.Second)
	for live(b, s6) || live(b, s7) {
		if time.Now().After(deadline) {
			t.Fatal("a session of ann still usable through B 2s after the logout everywhere")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := listed(t, b, "ann"); len(got) != 0 {
		t.Fatalf("ann after logout everywhere: %q", got)
	}
	// An unknown principal's index is a miss, "not found" once n2 serves
	// reads again: until then its miss on n1 alone, n2 having just left
	// service, is unavailable (sessionstore/memcached's outageGrace).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n, err := a.EndPrincipal("nobody")
		if n != 0 || (err != nil && !errors.Is(err, ErrUnavailable)) || (err != nil && time.Now().After(deadline)) {
			t.Fatalf("EndPrincipal(unknown) = %d, %v", n, err)
		}
		if err == nil {
			break
		}
	}
	if got := ended(); !slices.Equal(got, []string{EndedAdmin, EndedAdmin}) {
		t.Fatalf("ended reasons %q", got)
	}
}

// TestMaxPerPrincipal: with max 2, a third session of a principal, made
// through the other store, ends the least recently used of the first two,
// never the new one; sessions of others are untouched.
func TestMaxPerPrincipal(t *testing.T) {
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	a, b, ended := principalStores(t, 2, n1, n2)
	s1 := commit(t, a, "", false, false, "user", `"ann"`)
	other := commit(t, a, "", false, false, "user", `"bob"`)
	time.Sleep(1100 * time.Millisecond) // last access is kept in seconds
	s2 := commit(t, b, "", false, false, "user", `"ann"`)
	time.Sleep(1100 * time.Millisecond)
	commit(t, a, s1, false, false, "cart", "1") // s1 is now the more recent
	time.Sleep(1100 * time.Millisecond)
	s3 := commit(t, b, "", false, false, "user", `"ann"`)
	if got, want := listed(t, a, "ann"), sorted(s1, s3); !slices.Equal(got, want) {
		t.Fatalf("ann's sessions: %q, want %q (s2 the least recently used)", got, want)
	}
	// The ended session is gone through both stores (A within the
	// coherence bound of its hot tier).
	deadline := time.Now().Add(2 * time.Second)
	for live(a, s2) || live(b, s2) {
		if time.Now().After(deadline) {
			t.Fatal("the session ended by max_per_principal is still usable")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !live(a, s1) || !live(b, s3) || !live(b, other) {
		t.Fatal("a session that should stay was ended")
	}
	if got := ended(); !slices.Equal(got, []string{EndedMaxPerPrincipal}) {
		t.Fatalf("ended reasons %q", got)
	}
}

// TestBadPrincipalNeverFailsTheRequest: a value that names no one (empty,
// too long, control bytes) is written as any attribute, just not indexed;
// an index over its bound ends and logs the sessions it drops.
func TestBadPrincipalNeverFailsTheRequest(t *testing.T) {
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	a, _, ended := principalStores(t, 0, n1, n2)
	for _, v := range []string{"", `""`, "%00x", string(make([]byte, MaxPrincipalLen+1))} {
		id := commit(t, a, "", false, false, "user", v)
		if !live(a, id) {
			t.Fatalf("value %q: session not stored", v)
		}
	}
	a.principals.bound = 3
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, commit(t, a, "", false, false, "user", "eve"))
		time.Sleep(5 * time.Millisecond) // last access is kept in milliseconds
	}
	if got, want := listed(t, a, "eve"), sorted(ids[2:]...); !slices.Equal(got, want) {
		t.Fatalf("eve's index over its bound: %q, want the newest 3 %q", got, want)
	}
	if live(a, ids[0]) || live(a, ids[1]) {
		t.Fatal("a session dropped from an index over its bound is still usable")
	}
	if got := ended(); !slices.Equal(got, []string{EndedIndexBound, EndedIndexBound}) {
		t.Fatalf("ended reasons %q", got)
	}
}

func TestDecodePrincipal(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`"ann"`, "ann"}, {"ann", "ann"}, {`%22ann%22`, "ann"}, {`"Jos%C3%A9 %F0%9F%99%82"`, "José 🙂"},
		{"3", "3"}, {`"a%zz"`, "a%zz"}, {"%", "%"},
	} {
		got, err := DecodePrincipal([]byte(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("DecodePrincipal(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", `""`, "%0a", "a\x00"} {
		if _, err := DecodePrincipal([]byte(in)); !errors.Is(err, ErrBadPrincipal) {
			t.Errorf("DecodePrincipal(%q): %v, want ErrBadPrincipal", in, err)
		}
	}
}

// The index's key must never be readable as a session: a client that
// sends it as a cookie gets a fresh session.
func TestIndexIsNoSession(t *testing.T) {
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	a, _, _ := principalStores(t, 0, n1, n2)
	commit(t, a, "", false, false, "user", "ann")
	key := string(indexID("ann"))
	if !ValidID([]byte(key)) {
		t.Fatalf("index ID %q is not in the shape of a session ID", key)
	}
	var r Request
	if err := a.Open(&r, []byte(key)); err != nil || !r.New || r.Lookup != LookupMiss {
		t.Fatalf("the index's ID as a cookie: new=%v lookup=%v err=%v, want a fresh session", r.New, r.Lookup, err)
	}
}

// TestPrincipalIndexEmbedded: with no shared store the index lives in the
// hot tier beside the sessions, so listing and ending still work.
func TestPrincipalIndexEmbedded(t *testing.T) {
	s, err := New(Options{LocalSize: 4 << 20, Principal: PrincipalOptions{Attr: "user", Max: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s1 := commit(t, s, "", false, false, "user", "ann")
	time.Sleep(5 * time.Millisecond) // last access is kept in milliseconds
	s2 := commit(t, s, "", false, false, "user", "ann")
	if got, want := listed(t, s, "ann"), sorted(s1, s2); !slices.Equal(got, want) {
		t.Fatalf("ann: %q, want %q", got, want)
	}
	s3 := commit(t, s, "", false, false, "user", "ann")
	if live(s, s1) || !live(s, s2) || !live(s, s3) {
		t.Fatal("max_per_principal: the oldest should be the one ended")
	}
	if n, err := s.EndPrincipal("ann"); n != 2 || err != nil {
		t.Fatalf("EndPrincipal = %d, %v", n, err)
	}
	if live(s, s2) || live(s, s3) {
		t.Fatal("a session survived EndPrincipal")
	}
}

// TestPrincipalIndexAfterOutage: a login while every node is down is kept
// in the hot tier and written back later; its index entry follows it when
// the nodes return, so that a logout everywhere then still finds it.
//
// A's hot tier trusts its copies (ttl 0): with a bounded one (auto, once
// another proxy is seen) a change kept through a total outage is dropped
// with the copy after 1s, index or not (writeBackDirty).
func TestPrincipalIndexAfterOutage(t *testing.T) {
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	_, b, _ := principalStores(t, 0, n1, n2)
	a, err := New(Options{
		Memcached: MemcachedOptions{Nodes: []Node{{ID: "n1", Addr: n1.Addr}, {ID: "n2", Addr: n2.Addr}}, Timeout: loadedTimeout},
		LocalSize: 4 << 20,
		Principal: PrincipalOptions{Attr: "user"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	s1 := commit(t, a, "", false, false, "user", "ann")
	// Frozen, not stopped: a restarted memcached comes back empty.
	n1.Freeze()
	n2.Freeze()
	waitFor(t, "both nodes down", func() bool {
		for _, n := range a.Nodes() {
			if n.Up {
				return false
			}
		}
		return true
	})
	s2 := commit(t, a, "", false, false, "user", "ann")
	n1.Thaw()
	n2.Thaw()
	waitFor(t, "the index entry written back", func() bool {
		l, err := b.PrincipalSessions("ann")
		return err == nil && len(l) == 2
	})
	if got, want := listed(t, b, "ann"), sorted(s1, s2); !slices.Equal(got, want) {
		t.Fatalf("ann after the outage: %q, want %q", got, want)
	}
	if n, err := b.EndPrincipal("ann"); n != 2 || err != nil {
		t.Fatalf("EndPrincipal = %d, %v", n, err)
	}
}
