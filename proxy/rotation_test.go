package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/storetest"
	"sessionproxy/sessionstore"
)

// testSlowRequestRacingRotation (item 4 of the hygiene issue): a slow
// request started under the old session ID answers after a login rotated
// it. Its response must not expire the new login cookie, and its change (a
// cart item) must land in the session under the new ID.
func testSlowRequestRacingRotation(t *testing.T, d *storetest.Deployment) {
	so, _ := withShared(d, sessionstore.Options{LocalSize: 1 << 20})
	store, err := sessionstore.New(so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	slowStarted, release := make(chan struct{}), make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow-add-to-cart":
			close(slowStarted)
			<-release
			w.Header().Set("X-Session-Set-Cart", "2")
		case "/login":
			w.Header().Set("X-Session-Set-User", "alice")
			w.Header().Set("X-Session-Rotate", "1")
		case "/start":
			w.Header().Set("X-Session-Set-Cart", "1")
		}
		w.Write([]byte("ok\n"))
	}))
	t.Cleanup(app.Close)
	p := &Proxy{Pool: newPool(t, "round_robin", nil, app.URL), Sessions: &Sessions{Store: store}}
	base := startProxy(t, p, ServerOptions{})

	u := newUser(t)
	u.c.Get(base + "/start")
	oldID := u.cookie(base)
	if oldID == "" {
		t.Fatal("no session cookie")
	}
	slow := make(chan string)
	go func() {
		slow <- rawRequest(t, base, "GET /slow-add-to-cart HTTP/1.1\r\nHost: shop\r\nCookie: SPSESSIONID="+oldID+"\r\n\r\n")
	}()
	<-slowStarted
	time.Sleep(5 * time.Millisecond) // the login begins strictly after the slow request
	resp, err := u.c.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	newID := u.cookie(base)
	if newID == oldID || newID == "" {
		t.Fatalf("login did not rotate: %q -> %q", oldID, newID)
	}
	close(release)
	answer := <-slow
	if !strings.HasPrefix(answer, "200\n") {
		t.Fatalf("slow request answered %q", answer)
	}
	if strings.Contains(strings.ToLower(answer), "set-cookie") {
		t.Fatalf("slow request's response touches the cookie, which logs the user out:\n%s", answer)
	}
	var sess sessionstore.Session
	if _, err := store.Load([]byte(newID), &sess); err != nil {
		t.Fatal(err)
	}
	cart, _ := sess.Get("cart")
	user, _ := sess.Get("user")
	if string(cart) != "2" || string(user) != "alice" {
		t.Fatalf("session after the race: cart=%q user=%q, want cart=2 user=alice", cart, user)
	}
	// A request that arrives with the old cookie after the rotation gets a
	// fresh session, never the rotated one.
	late := rawRequest(t, base, "GET /start HTTP/1.1\r\nHost: shop\r\nCookie: SPSESSIONID="+oldID+"\r\n\r\n")
	if strings.Contains(late, newID) || !strings.Contains(late, "Set-Cookie: SPSESSIONID=") {
		t.Fatalf("a late request with the old cookie was not given a fresh session:\n%s", late)
	}
	if _, err := store.Load([]byte(newID), &sess); err != nil {
		t.Fatal(err)
	}
	if cart, _ := sess.Get("cart"); string(cart) != "2" {
		t.Fatalf("late request with the old cookie changed the rotated session: cart=%q", cart)
	}
}
