package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/redistest"
)

// loginBackend is an app behind an adapter: /login?u=<user> logs in (the
// principal as an adapter writes it, JSON text percent-encoded, and a
// rotation, as Django's and Spring's login do); every answer is the user
// the session holds, "-" for a new session.
func loginBackend(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u := r.URL.Query().Get("u"); u != "" {
			w.Header().Set("X-Session-Set-User", url.PathEscape(`"`+u+`"`))
			w.Header().Set("X-Session-Rotate", "1")
			io.WriteString(w, u)
			return
		}
		v := r.Header.Get("X-Session-Attr-User")
		if r.Header.Get("X-Session-New") == "1" {
			v = "-"
		}
		io.WriteString(w, v)
	}))
	t.Cleanup(s.Close)
	return s
}

type listedSession struct {
	ID         string `json:"id"`
	Created    int64  `json:"created"`
	LastAccess int64  `json:"last_access"`
}

// principalList is GET /sessions?principal=p on p's admin.
func principalList(t *testing.T, p *process, principal string) []listedSession {
	t.Helper()
	resp, err := http.Get("http://" + p.admin + "/sessions?principal=" + url.QueryEscape(principal))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var l []listedSession
	if resp.StatusCode != 200 || json.Unmarshal(body, &l) != nil {
		t.Fatalf("GET /sessions?principal=%s: %d %s", principal, resp.StatusCode, body)
	}
	return l
}

func principalDelete(t *testing.T, p *process, principal string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, "http://"+p.admin+"/sessions?principal="+url.QueryEscape(principal), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE /sessions?principal=%s: %d, want 204", principal, resp.StatusCode)
	}
}

// shortIDs are the listed IDs, sorted; prefixes the first 6 characters of
// ids, sorted.
func shortIDs(l []listedSession) []string {
	var out []string
	for _, s := range l {
		out = append(out, s.ID)
	}
	slices.Sort(out)
	return out
}

func prefixes(ids ...string) []string {
	var out []string
	for _, id := range ids {
		out = append(out, id[:6])
	}
	slices.Sort(out)
	return out
}

func login(t *testing.T, base, user string) string {
	t.Helper()
	v, id := fetchV(t, base+"/login?u="+url.QueryEscape(user), "")
	if v != user || id == "" {
		t.Fatalf("login %s at %s: %q, cookie %q", user, base, v, id)
	}
	return id
}

// usable reports whether id still is a session of user through base.
func usable(t *testing.T, base, id, user string) bool {
	v, _ := fetchV(t, base+"/", id)
	return strings.Contains(v, user)
}

// principalScenario runs sessions of ann and bob through two proxy
// processes a and b: the index lists ann's sessions made through both,
// max_per_principal (3) ends the least recently used, and a DELETE by
// principal through one admin leaves none of ann's sessions usable
// through either proxy within the coherence bound (1.5s), bob's
// untouched. meanwhile runs between the logins and the DELETE (a store
// node goes down), after runs once it is over (the node returns).
func principalScenario(t *testing.T, a, b *process, meanwhile, after func()) {
	A, B := "http://"+a.addr, "http://"+b.addr
	s1 := login(t, A, "ann")
	s2 := login(t, B, "ann")
	bob := login(t, A, "bob")
	for _, p := range []*process{a, b} {
		if got, want := shortIDs(principalList(t, p, "ann")), prefixes(s1, s2); !slices.Equal(got, want) {
			t.Fatalf("ann's sessions through %s: %q, want %q", p.addr, got, want)
		}
	}
	l := principalList(t, a, "ann")
	if l[0].Created == 0 || l[0].LastAccess == 0 || len(l[0].ID) != 6 {
		t.Fatalf("listing: %+v", l)
	}
	// One session's own page names its principal, decoded as the index
	// reads it.
	for _, p := range []*process{a, b} {
		var one struct{ Principal string }
		resp, err := http.Get("http://" + p.admin + "/sessions/" + s2)
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&one)
		resp.Body.Close()
		if one.Principal != "ann" {
			t.Fatalf("GET /sessions/<s2> through %s: principal %q, want ann", p.addr, one.Principal)
		}
	}
	// Both proxies cache s1 in their hot tiers: the case the logout must
	// reach.
	for _, base := range []string{A, B, A, B} {
		if !usable(t, base, s1, "ann") {
			t.Fatalf("s1 not usable through %s", base)
		}
	}
	meanwhile()
	s3 := login(t, B, "ann")
	if !usable(t, A, s3, "ann") {
		t.Fatal("s3 not usable through A")
	}
	// A fourth through A: max_per_principal 3 ends the least recently
	// used (s1: logged in first, used only by reads since).
	time.Sleep(1100 * time.Millisecond) // last access is kept in seconds
	usable(t, A, s2, "ann")
	s4 := login(t, A, "ann")
	if got, want := shortIDs(principalList(t, b, "ann")), prefixes(s2, s3, s4); !slices.Equal(got, want) {
		t.Fatalf("ann's sessions after a fourth login: %q, want %q (s1 ended)", got, want)
	}
	waitUnusable(t, "s1, ended by max_per_principal", []string{A, B}, []string{s1}, "ann")

	principalDelete(t, b, "ann")
	waitUnusable(t, "ann's sessions after DELETE by principal", []string{A, B}, []string{s2, s3, s4}, "ann")
	after()
	for _, base := range []string{A, B} {
		for _, id := range []string{s2, s3, s4} {
			if usable(t, base, id, "ann") {
				t.Fatalf("a session of ann came back through %s after the node returned", base)
			}
		}
		if !usable(t, base, bob, "bob") {
			t.Fatalf("bob's session was ended too (through %s)", base)
		}
	}
	if l := principalList(t, a, "ann"); len(l) != 0 {
		t.Fatalf("ann still listed: %+v", l)
	}
	principalDelete(t, a, "nobody-at-all")
	for _, p := range []*process{a, b} {
		if strings.Contains(p.stderr(), "principal index: update failed") && !strings.Contains(p.stderr(), "unavailable") {
			t.Errorf("index errors in the log:\n%s", p.stderr())
		}
	}
	if !strings.Contains(a.stderr()+b.stderr(), "reason=max_per_principal") {
		t.Error("the session max_per_principal ended is not logged")
	}
}

func waitUnusable(t *testing.T, what string, bases, ids []string, user string) {
	t.Helper()
	start := time.Now()
	for {
		left := 0
		for _, base := range bases {
			for _, id := range ids {
				if usable(t, base, id, user) {
					left++
				}
			}
		}
		if left == 0 {
			return
		}
		if time.Since(start) > 1500*time.Millisecond {
			t.Fatalf("%s: %d still usable %v later", what, left, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const principalSession = `session:
  principal: user
  max_per_principal: 3
`

// TestPrincipalTwoProxiesMemcached: the principal index across two proxy
// processes with the shipped defaults over two memcached nodes, one of
// which is down from before the third login until after the DELETE.
func TestPrincipalTwoProxiesMemcached(t *testing.T) {
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	app := loginBackend(t)
	cfg := "admin: \"{{admin}}\"\n" + fmt.Sprintf(baseConfig, backendsYAML(app.URL)) + principalSession +
		fmt.Sprintf("  memcached:\n    nodes: [%q, %q]\n", n1.Addr, n2.Addr)
	a, b := startProcess(t, cfg), startProcess(t, cfg)
	waitLog(t, a, "another proxy seen")
	principalScenario(t, a, b, n2.Stop, func() {
		n2.Restart()
		time.Sleep(2 * time.Second) // two probes: the node catches up
	})
}

// TestPrincipalTwoProxiesRedisCluster: the same on a Redis Cluster (three
// masters, one replica each) with client_cache: the index is one key, on
// one slot.
func TestPrincipalTwoProxiesRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	app := loginBackend(t)
	var addrs []string
	for _, a := range c.Addrs() {
		addrs = append(addrs, fmt.Sprintf("%q", a))
	}
	cfg := "admin: \"{{admin}}\"\n" + fmt.Sprintf(baseConfig, backendsYAML(app.URL)) + principalSession +
		fmt.Sprintf("  redis:\n    addrs: [%s]\n    timeout: 500ms\n", strings.Join(addrs, ", "))
	a, b := startProcess(t, cfg), startProcess(t, cfg)
	principalScenario(t, a, b, func() {}, func() {})
}
