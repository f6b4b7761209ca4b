package proxy

import (
	"net/url"
	"strings"
	"testing"

	"sessionproxy/internal/apptest"
	"sessionproxy/internal/storetest"
	"sessionproxy/sessionstore"
)

// adapterBehaviours are what the framework adapters need of the request
// path (CONTRACT.md sections 3 and 13): encoded names up to 200
// characters, a rotation to an ID the adapter drew, and an invalidation
// that starts a new session with the response's sets. Each runs through
// the proxy with real backends against each kind of shared store.
var adapterBehaviours = []storetest.Case{
	{Name: "names of 200 characters", Test: testLongNames},
	{Name: "rotate to the backend's ID", Test: testRotateToBackendID},
	{Name: "rotate to an unusable ID refused", Test: testRotateToUnusableID},
	{Name: "invalidate and set starts a new session", Test: testInvalidateAndSet},
}

func TestAdapterBehaviours(t *testing.T) { storetest.RunEach(t, storetest.Kinds, adapterBehaviours) }

// testLongNames: a name of 200 characters (pojun.tech-like names encode
// to three bytes per character) is stored and handed back; 201 is not.
func testLongNames(t *testing.T, d *storetest.Deployment) {
	e := startSessionEnv(t, envOptions{shared: d, local: 1 << 20})
	long := strings.Repeat("-2e", 66) + "xy" // 200
	u, _ := e.loggedIn(t, "/?set="+long+":1&set=pojun-2etech:x")
	r := u.get(e.base + "/")
	if r.view.Attrs[long] != "1" || r.view.Attrs["pojun-2etech"] != "x" {
		t.Fatalf("attributes after setting a 200-character name: %v", r.view.Attrs)
	}
	if r := u.get(e.base + "/?set=" + long + "z:2"); r.status != 502 {
		t.Fatalf("a 201-character name: %d, want 502", r.status)
	}
}

// newID draws a session ID as an adapter does: 128 bits from a CSPRNG,
// unpadded URL-safe base64.
func newID() string { return string(sessionstore.AppendNewID(nil)) }

func testRotateToBackendID(t *testing.T, d *storetest.Deployment) {
	e := startSessionEnv(t, envOptions{shared: d, local: 1 << 20})
	u, oldID := e.loggedIn(t, "/?set=cart:3")
	drawn := newID()
	r := u.get(e.base + "/?set=user:alice&raw=X-Session-Rotate:" + drawn)
	if r.status != 200 || u.cookie(e.base) != drawn || len(r.setCookie) != 1 ||
		!strings.HasPrefix(r.setCookie[0], "SPSESSIONID="+drawn+"; Path=/") {
		t.Fatalf("rotate to %s: %d, Set-Cookie %v, cookie %q", drawn, r.status, r.setCookie, u.cookie(e.base))
	}
	if r := u.get(e.base + "/"); r.view.ID != drawn || r.view.Attrs["cart"] != "3" || r.view.Attrs["user"] != "alice" {
		t.Fatalf("after rotating to the backend's ID: %+v", r.view)
	}
	attacker := newUser(t)
	if r := attacker.get(e.base+"/", "Cookie", "SPSESSIONID="+oldID); !r.view.New || len(r.view.Attrs) != 0 {
		t.Fatalf("old ID still usable after rotate: %+v", r.view)
	}
	// `1` still lets the proxy choose.
	if r := u.get(e.base + "/?raw=X-Session-Rotate:1"); r.status != 200 || u.cookie(e.base) == drawn {
		t.Fatalf("X-Session-Rotate: 1 after a drawn ID: %d, cookie %q", r.status, u.cookie(e.base))
	}
	// A new session's first write names its ID at once: a servlet
	// adapter's changeSessionId on a session not yet stored.
	fresh, first := newUser(t), newID()
	if r := fresh.get(e.base + "/?set=a:1&raw=X-Session-Rotate:" + first); r.status != 200 || fresh.cookie(e.base) != first {
		t.Fatalf("a new session rotated to %s: %d, cookie %q", first, r.status, fresh.cookie(e.base))
	}
	if r := fresh.get(e.base + "/"); r.view.ID != first || r.view.Attrs["a"] != "1" {
		t.Fatalf("the new session under the backend's ID: %+v", r.view)
	}
}

// testRotateToUnusableID: an ID that is not well formed, or that the
// store holds (another user's live session, or an ended one), is refused
// with 502 and the generic reason; the details go to the log, and the
// session is as it was.
func testRotateToUnusableID(t *testing.T, d *storetest.Deployment) {
	var logs apptest.Output
	e := startSessionEnv(t, envOptions{shared: d, local: 1 << 20, sessions: &Sessions{Logger: newTestLogger(&logs)}})
	victim, victimID := e.loggedIn(t, "/?set=user:victim")
	ended, endedID := e.loggedIn(t, "/?set=user:gone")
	ended.get(e.base + "/?invalidate=1")
	u, id := e.loggedIn(t, "/?set=user:bob")
	bad := []byte(newID())
	bad[len(bad)-1] = 'B' // its last character carries bits an ID never has
	for _, rotate := range []string{victimID, endedID, string(bad), "2", "abc", newID() + "x", strings.Repeat("A", 21) + " "} {
		r := u.get(e.base + "/?set=evil:1&raw=X-Session-Rotate:" + url.QueryEscape(rotate))
		if r.status != 502 || r.body != "invalid session update from backend\n" || len(r.setCookie) != 0 {
			t.Errorf("rotate to %q: %d %q, Set-Cookie %v; want 502 and the generic reason", rotate, r.status, r.body, r.setCookie)
		}
		if !strings.Contains(logs.String(), "X-Session-Rotate") {
			t.Errorf("rotate to %q: the log lacks the details:\n%s", rotate, logs.String())
		}
	}
	if r := u.get(e.base + "/"); r.view.ID != id || r.view.Attrs["user"] != "bob" || r.view.Attrs["evil"] != "" {
		t.Fatalf("a refused rotation changed the session: %+v", r.view)
	}
	if r := victim.get(e.base + "/"); r.view.ID != victimID || r.view.Attrs["user"] != "victim" || r.view.Attrs["evil"] != "" {
		t.Fatalf("a refused rotation onto another session changed it: %+v", r.view)
	}
	// The same invalidating a session and starting one under a held ID.
	if r := u.get(e.base + "/?invalidate=1&set=user:x&raw=X-Session-Rotate:" + victimID); r.status != 502 {
		t.Fatalf("invalidate and set under a held ID: %d, want 502", r.status)
	}
	if r := u.get(e.base + "/"); r.view.ID != id || r.view.Attrs["user"] != "bob" {
		t.Fatalf("a refused restart changed the session: %+v", r.view)
	}
}

// testInvalidateAndSet: Django's flush() then a write (logout, then a
// message for the next page) ends the old session and starts a new one
// with only the response's sets, under a new ID and cookie.
func testInvalidateAndSet(t *testing.T, d *storetest.Deployment) {
	e := startSessionEnv(t, envOptions{shared: d, local: 1 << 20, store: sessionstore.Options{MaxSize: 2048}})
	u, oldID := e.loggedIn(t, "/?set=user:bob&set=cart:3")
	r := u.get(e.base + "/?invalidate=1&set=msg:bye&unset=cart")
	next := u.cookie(e.base)
	if r.status != 200 || next == "" || next == oldID || len(r.setCookie) != 1 ||
		!strings.HasPrefix(r.setCookie[0], "SPSESSIONID="+next+"; Path=/") {
		t.Fatalf("invalidate and set: %d, Set-Cookie %v, cookie %q -> %q", r.status, r.setCookie, oldID, next)
	}
	if r := u.get(e.base + "/"); r.view.ID != next || r.view.New || len(r.view.Attrs) != 1 || r.view.Attrs["msg"] != "bye" {
		t.Fatalf("the new session: %+v, want msg=bye alone", r.view)
	}
	other := newUser(t)
	if r := other.get(e.base+"/", "Cookie", "SPSESSIONID="+oldID); !r.view.New || len(r.view.Attrs) != 0 {
		t.Fatalf("the ended session is still served: %+v", r.view)
	}
	// With an ID the adapter drew, the new session takes it.
	drawn := newID()
	if r := u.get(e.base + "/?invalidate=1&set=msg:again&raw=X-Session-Rotate:" + drawn); r.status != 200 || u.cookie(e.base) != drawn {
		t.Fatalf("invalidate and set under %s: %d, cookie %q", drawn, r.status, u.cookie(e.base))
	}
	if r := u.get(e.base + "/"); r.view.ID != drawn || len(r.view.Attrs) != 1 || r.view.Attrs["msg"] != "again" {
		t.Fatalf("the new session under the drawn ID: %+v", r.view)
	}
	// A new session over max_size: refused, and the old one stays.
	if r := u.get(e.base + "/?invalidate=1&set=big:" + strings.Repeat("x", 3000)); r.status != 502 || len(r.setCookie) != 0 {
		t.Fatalf("invalidate and set over max_size: %d, Set-Cookie %v; want 502 and nothing changed", r.status, r.setCookie)
	}
	if r := u.get(e.base + "/"); r.view.ID != drawn || r.view.Attrs["msg"] != "again" {
		t.Fatalf("a refused invalidate and set changed the session: %+v", r.view)
	}
	// A request without a session: invalidate and set simply creates one.
	fresh := newUser(t)
	if r := fresh.get(e.base + "/?invalidate=1&set=msg:hi"); r.status != 200 || fresh.cookie(e.base) == "" {
		t.Fatalf("invalidate and set on a new session: %d, Set-Cookie %v", r.status, r.setCookie)
	}
	if r := fresh.get(e.base + "/"); r.view.Attrs["msg"] != "hi" {
		t.Fatalf("the session created by invalidate and set: %+v", r.view)
	}
}
