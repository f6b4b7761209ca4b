package proxy

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"sessionproxy/balancer"
	"sessionproxy/internal/storetest"
	"sessionproxy/sessionstore"
)

// testBackendSetsLargeSession checks that a backend may
// set a session of up to max_size in one response. A 60 KiB attribute is
// far over fasthttp's default 4 KiB read buffer (and the 16 KiB the proxy
// used to have), which made it an invalid response: a 502 charged to the
// backend.
func testBackendSetsLargeSession(t *testing.T, d *storetest.Deployment) {
	big := strings.Repeat("0123456789abcdef", 60<<10/16)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("big") {
			w.Header().Set("X-Session-Set-Big", big)
		}
		got := r.Header.Get("X-Session-Attr-Big")
		w.Header().Set("X-Got-Len", strconv.Itoa(len(got)))
		if got != "" && got != big {
			w.WriteHeader(http.StatusConflict) // came back altered
		}
		w.Write([]byte("{}")) // newUser's get reads JSON
	}))
	t.Cleanup(app.Close)

	so, _ := withShared(d, sessionstore.Options{})
	store, err := sessionstore.New(so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	// MaxFails 1: a single failure charged to the backend would take it
	// out, and the next request would get 502 "no backend available".
	pool := newPool(t, "round_robin", &balancer.Health{MaxFails: 1, FailTimeout: time.Minute}, app.URL)
	p := &Proxy{Pool: pool, Sessions: &Sessions{Store: store}}
	base := startProxy(t, p, ServerOptions{})
	u := newUser(t)

	r := u.get(base + "/?big=1")
	if r.status != 200 || len(r.setCookie) != 1 {
		t.Fatalf("backend setting a 60 KiB attribute: %d %q, cookies %q", r.status, r.body, r.setCookie)
	}
	if b := pool.Backends[0]; b.Fails() != 0 || !b.Available() {
		t.Fatalf("the large response was charged to the backend: fails %d, available %v", b.Fails(), b.Available())
	}
	for i := 0; i < 2; i++ {
		r = u.get(base + "/")
		if r.status != 200 || r.header.Get("X-Got-Len") != strconv.Itoa(len(big)) {
			t.Fatalf("request %d after the set: %d, backend got %s bytes of the attribute, want %d",
				i+1, r.status, r.header.Get("X-Got-Len"), len(big))
		}
	}
}

// TestMaxResponseHeaderIsTheLimit: the field, not a constant, bounds what
// the proxy reads of a backend's response header.
func TestMaxResponseHeaderIsTheLimit(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Big", strings.Repeat("h", 12<<10))
	}))
	t.Cleanup(app.Close)
	for _, c := range []struct {
		max  int
		want int
	}{
		{0, 200},        // the default, 80 KiB
		{16 << 10, 200}, // room enough
		{8 << 10, 502},  // too small for a 12 KiB header
		{DefaultMaxResponseHeader, 200},
	} {
		p := &Proxy{Pool: newPool(t, "round_robin", nil, app.URL), Settings: Settings{MaxResponseHeader: c.max}}
		if r := get(t, startProxy(t, p, ServerOptions{})+"/"); r.status != c.want {
			t.Errorf("MaxResponseHeader %d, a 12 KiB response header: %d %q, want %d", c.max, r.status, r.body, c.want)
		}
	}
}
