package proxy

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"sessionproxy/sessionstore"
)

// The failover round trip under steady traffic: each memcached node is
// killed and restarted empty in turn, one is frozen and thawed, a backend
// is killed. No idempotent request may fail, no update may be lost (every
// client's counter goes up by one per request, in order), and once it is
// all over, losing either node loses no session.
func TestFaultsUnderSteadyTraffic(t *testing.T) {
	e := startSessionEnv(t, envOptions{memcached: 2, backends: 3})
	const clients = 12
	var stop atomic.Bool
	var wg sync.WaitGroup
	users := make([]*user, clients)
	counts := make([]int, clients)
	failures := make(chan string, clients)
	var requests atomic.Int64
	for c := range users {
		users[c] = newUser(t)
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			u := users[c]
			for !stop.Load() {
				r, err := u.try(e.base + "/?inc=n")
				if err != nil || r.status != 200 {
					failures <- "request failed: " + strconv.Itoa(r.status) + " " + r.body + " " + errString(err)
					return
				}
				want := ""
				if counts[c] > 0 {
					want = strconv.Itoa(counts[c])
				}
				if got := r.view.Attrs["n"]; got != want {
					failures <- "client " + strconv.Itoa(c) + " saw n=" + got + ", want " + want + ": an update was lost"
					return
				}
				counts[c]++
				requests.Add(1)
			}
		}(c)
	}
	steady := func(what string) {
		t.Helper()
		before := requests.Load()
		waitFor(t, what+": traffic flowing", func() bool { return requests.Load() >= before+300 })
	}
	nodeUp := func(i int) func() bool { return func() bool { return e.store.Nodes()[i].Up } }
	steady("start")
	for i, n := range e.nodes {
		n.Stop()
		steady("node down")
		n.Restart() // empty
		waitFor(t, "node back up", nodeUp(i))
		steady("node back")
	}
	e.nodes[0].Freeze()
	steady("node frozen")
	e.nodes[0].Thaw()
	waitFor(t, "thawed node up", nodeUp(0))
	e.apps[0].Close()
	steady("backend killed")
	stop.Store(true)
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	if t.Failed() {
		return
	}
	t.Logf("%d requests through two node restarts, a freeze and a backend kill", requests.Load())

	// Either node's death now loses nothing: read every session from a
	// store that never saw the faults, over the other node alone.
	for i, dead := range e.nodes {
		dead.Stop()
		other := e.nodes[1-i]
		fresh, err := sessionstore.New(sessionstore.Options{Memcached: sessionstore.MemcachedOptions{Nodes: []sessionstore.Node{{ID: "only", Addr: other.Addr}}, Replicas: 1}})
		if err != nil {
			t.Fatal(err)
		}
		for c, u := range users {
			var sess sessionstore.Session
			if _, err := fresh.Load([]byte(u.cookie(e.base)), &sess); err != nil {
				t.Fatalf("node %d alone: client %d's session: %v", 1-i, c, err)
			}
			if got, _ := sess.Get("n"); string(got) != strconv.Itoa(counts[c]) {
				t.Fatalf("node %d alone: client %d's counter is %s, want %d", 1-i, c, got, counts[c])
			}
		}
		fresh.Close()
		// Restarted empty while the proxy sends it nothing: the monitor
		// sees another process and the node catches up in full.
		catchups := e.store.Nodes()[i].Catchups
		dead.Restart()
		waitFor(t, "restarted node caught up", func() bool {
			n := e.store.Nodes()[i]
			return n.Up && n.Catchups > catchups
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
