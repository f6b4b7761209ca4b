package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"sessionproxy/internal/redistest"
	"sessionproxy/internal/testutil"
)

// redisPair starts a Redis master and one replica of it and waits until
// both sides see the link (the replica up, the master counting it online),
// or WAIT 1 would time out on a loaded machine for reasons of its own.
func redisPair(t *testing.T) (master, replica *redistest.Server) {
	t.Helper()
	master = redistest.Start(t, redistest.Options{})
	replica = redistest.Start(t, redistest.Options{Args: []string{"--replicaof", "127.0.0.1", master.Port}})
	testutil.WaitFor(t, 10*time.Second, "replica in sync", func() bool {
		out, _ := replica.CLI("INFO", "replication")
		m, _ := master.CLI("INFO", "replication")
		return strings.Contains(out, "master_link_status:up") && strings.Contains(m, "state=online")
	})
	return master, replica
}

// waitReplicasConfig is the shipped defaults (access log on, client_cache
// on, write: sync) with Redis and wait_replicas: 1; the timeout is a
// second because a loaded machine under -race can take longer than the
// default 100ms to have a replica acknowledge.
func waitReplicasConfig(backend, master string) string {
	return fmt.Sprintf(`listen: "{{listen}}"
backends:
  - url: %q
session:
  redis:
    addrs: [%q]
    wait_replicas: 1
    timeout: 3s
`, backend, master)
}

// TestWaitReplicasFirstWrite: with wait_replicas 1, a write the client saw
// answered is on the replica, from the first request after the proxy
// starts (issue 22: the first write was answered before the replica had
// it, in 5 of 6 runs). Each round starts a fresh proxy and reads the
// replica the moment the answer is in.
func TestWaitReplicasFirstWrite(t *testing.T) {
	master, replica := redisPair(t)
	app := attrBackend(t)
	for round := 0; round < 4; round++ {
		p := startProcess(t, waitReplicasConfig(app.URL, master.Addr))
		_, id := fetchV(t, "http://"+p.addr+"/?set=first", "")
		if id == "" {
			t.Fatalf("round %d: no session cookie", round)
		}
		if out := replica.MustCLI("EXISTS", "sp:"+id); strings.TrimSpace(out) != "1" {
			t.Fatalf("round %d: the first write was answered but is not on the replica (EXISTS = %q)", round, out)
		}
		_, _ = fetchV(t, "http://"+p.addr+"/?set=second", id)
		if out := replica.MustCLI("GET", "sp:"+id); !strings.Contains(out, "second") {
			t.Fatalf("round %d: the second write was answered but is not on the replica (%q)", round, out)
		}
		p.signal(syscall.SIGTERM)
		if code := p.wait(10 * time.Second); code != 0 {
			t.Fatalf("round %d: exit %d", round, code)
		}
	}
}

// TestWaitReplicasStoppedReplica: with the replica stopped (SIGSTOP), a
// write cannot be acknowledged within redis.timeout: the client gets 503
// with Retry-After, never the backend's answer, and nothing that says the
// write counted (no cookie).
func TestWaitReplicasStoppedReplica(t *testing.T) {
	master, replica := redisPair(t)
	app := attrBackend(t)
	p := startProcess(t, waitReplicasConfig(app.URL, master.Addr))
	base := "http://" + p.addr
	_, id := fetchV(t, base+"/?set=1", "")
	replica.Freeze()
	defer replica.Thaw()
	for _, tc := range []struct{ name, cookie, query string }{
		{"new session", "", "/?set=2"},
		{"change", id, "/?set=3"},
		{"logout", id, "/?logout=1"},
	} {
		req, _ := http.NewRequest(http.MethodGet, base+tc.query, nil)
		if tc.cookie != "" {
			req.Header.Set("Cookie", "SPSESSIONID="+tc.cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s with the replica stopped: %d %q (Retry-After %q), want 503 with Retry-After",
				tc.name, resp.StatusCode, body, resp.Header.Get("Retry-After"))
		}
		if c := resp.Header.Get("Set-Cookie"); c != "" {
			t.Fatalf("%s with the replica stopped: 503 sets a cookie %q", tc.name, c)
		}
	}
}
