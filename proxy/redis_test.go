package proxy

import (
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/redistest"
	"sessionproxy/internal/testutil"
	"sessionproxy/sessionstore"
	_ "sessionproxy/sessionstore/redis" // New builds the Redis store of these tests
)

// TestRedisEmptyMasterRestart: a Redis master without persistence that is
// started again at once after a crash (as systemd's Restart= or Kubernetes
// would) comes back empty, and its replica syncs the empty dataset, so
// every session is lost, on the replica too (docs/stores.md). The proxy
// serves no copy it held before: the user's next request gets a fresh
// session and the old cookie is expired.
func TestRedisEmptyMasterRestart(t *testing.T) {
	master := redistest.Start(t, redistest.Options{})
	replica := redistest.Start(t, redistest.Options{Args: []string{"--replicaof", "127.0.0.1", master.Port}})
	linked := func() bool {
		out, _ := replica.CLI("INFO", "replication")
		return strings.Contains(out, "master_link_status:up")
	}
	exists := func(s *redistest.Server, key string) string {
		out, _ := s.CLI("EXISTS", key)
		return strings.TrimSpace(out)
	}
	testutil.WaitFor(t, 10*time.Second, "replica in sync", linked)
	e := startSessionEnv(t, envOptions{local: 1 << 20, store: sessionstore.Options{Redis: sessionstore.RedisOptions{
		Addrs: []string{master.Addr}, ClientCache: true, Timeout: 500 * time.Millisecond, ProbeInterval: 50 * time.Millisecond}}})
	u := newUser(t)
	u.get(e.base + "/?set=user:bob")
	id := u.cookie(e.base)
	if r := u.get(e.base + "/"); r.view.ID != id || r.view.Attrs["user"] != "bob" {
		t.Fatalf("session before the restart: %+v", r.view)
	}
	waitFor(t, "the replica holds the session", func() bool { return exists(replica, "sp:"+id) == "1" })

	master.Restart() // SIGKILL and start again at once, without persistence: empty
	testutil.WaitFor(t, 15*time.Second, "the replica synced the empty master", func() bool {
		return linked() && exists(replica, "sp:"+id) == "0"
	})
	waitFor(t, "redis up again", func() bool { n := e.store.Nodes(); return len(n) == 1 && n[0].Up })
	r := u.get(e.base + "/")
	if r.status != 200 || !r.view.New || r.view.ID == id || len(r.view.Attrs) != 0 {
		t.Fatalf("after the empty restart: %d %+v, want a fresh session", r.status, r.view)
	}
	if len(r.setCookie) != 1 || r.setCookie[0] != expiredCookie {
		t.Fatalf("the lost session's cookie was not expired: %v", r.setCookie)
	}
	if r := u.get(e.base + "/?set=user:bob"); r.status != 200 || len(r.setCookie) != 1 || u.cookie(e.base) == id {
		t.Fatalf("logging in again: %d %v", r.status, r.setCookie)
	}
}
