package admin

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"sessionproxy/proxy"
	"sessionproxy/sessionstore"
)

// TestPrincipalPaths: GET and DELETE /sessions?principal= on a store with
// the index (embedded: the index's work across stores and proxies is
// tested in sessionstore and cmd/sessionproxy), and their answers when
// the index is off or the principal missing.
func TestPrincipalPaths(t *testing.T) {
	store, err := sessionstore.New(sessionstore.Options{LocalSize: 1 << 20, Principal: sessionstore.PrincipalOptions{Attr: "user"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	p := newUpstream(t, "", store, newBackend(t, "A"))
	base := serve(t, p)
	admin := startAdmin(t, Target{Upstreams: []*proxy.Proxy{p}, Store: store})

	r := get(t, base+"/?set=user:bob")
	cookie, _, _ := strings.Cut(r.header.Get("Set-Cookie"), ";")
	id, _ := strings.CutPrefix(cookie, "SPSESSIONID=")
	r = get(t, admin+"/sessions?principal=bob")
	var l []PrincipalSessionJSON
	if err := json.Unmarshal([]byte(r.body), &l); err != nil || r.status != 200 || len(l) != 1 || l[0].ID != id[:6] || l[0].Created == 0 || l[0].LastAccess == 0 {
		t.Fatalf("GET /sessions?principal=bob = %d %q (session %s)", r.status, r.body, id[:6])
	}
	if strings.Contains(r.body, id) {
		t.Fatalf("the listing holds a whole session ID: %s", r.body)
	}
	for _, who := range []string{"bob", "nobody"} {
		if r := do(t, http.MethodDelete, admin+"/sessions?principal="+who); r.status != 204 {
			t.Fatalf("DELETE principal=%s = %d %q", who, r.status, r.body)
		}
	}
	if r := get(t, base+"/", "Cookie", cookie); !strings.HasPrefix(r.body, "new ") {
		t.Fatalf("bob's session alive after DELETE by principal: %q", r.body)
	}
	if r := get(t, admin+"/sessions?principal=bob"); r.status != 200 || strings.TrimSpace(r.body) != "[]" {
		t.Fatalf("bob after DELETE: %d %q", r.status, r.body)
	}
	if r := get(t, admin+"/sessions"); r.status != 400 {
		t.Fatalf("GET /sessions without principal = %d", r.status)
	}

	off, err := sessionstore.New(sessionstore.Options{LocalSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(off.Close)
	admin = startAdmin(t, Target{Upstreams: []*proxy.Proxy{p}, Store: off})
	if r := get(t, admin+"/sessions?principal=bob"); r.status != 404 || !strings.Contains(r.body, "session.principal") {
		t.Fatalf("index off: %d %q", r.status, r.body)
	}
}
