package sessionstore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sessionproxy/internal/redistest"
)

// clusterLoad changes sessions in a loop from several goroutines and
// remembers, per session, the last value a write was acknowledged with.
type clusterLoad struct {
	s     *Store
	ids   [][]byte
	acked []atomic.Int64
	ok    atomic.Int64 // acknowledged writes
	fail  atomic.Int64 // writes that failed (store unavailable)
	// lastErr is the last failure, for a test that fails on them.
	lastErr atomic.Value
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startClusterLoad(t *testing.T, s *Store, sessions int) *clusterLoad {
	t.Helper()
	l := &clusterLoad{s: s, acked: make([]atomic.Int64, sessions), stop: make(chan struct{})}
	for i := 0; i < sessions; i++ {
		id := AppendNewID(nil)
		// Right after a failover a master may not have its replica
		// back in sync yet, and with wait_replicas a write then times
		// out: the sessions are created once the cluster takes them.
		deadline := time.Now().Add(15 * time.Second)
		for {
			var u Update
			u.Set([]byte("n"), []byte("0"))
			err := s.change(id, &u, true, nil, nil)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("creating session %d: %v", i, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		l.ids = append(l.ids, id)
	}
	for w := 0; w < 8; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for n := int64(1); ; n++ {
				for i := w; i < sessions; i += 8 {
					select {
					case <-l.stop:
						return
					default:
					}
					var u Update
					u.Set([]byte("n"), strconv.AppendInt(nil, n, 10))
					err := s.change(l.ids[i], &u, false, nil, nil)
					if errors.Is(err, ErrNotFound) {
						// The store answers: the session went with
						// the master before it reached the replica
						// (wait_replicas 0), which lost counts.
						continue
					}
					if err != nil {
						l.fail.Add(1)
						l.lastErr.Store(fmt.Sprintf("session %d: %v", i, err))
						continue
					}
					l.acked[i].Store(n)
					l.ok.Add(1)
				}
			}
		}()
	}
	return l
}

func (l *clusterLoad) halt() { close(l.stop); l.wg.Wait() }

// lost reads every session back and counts the ones gone and the ones
// older than their last acknowledged write.
func (l *clusterLoad) lost(t *testing.T, s *Store) (gone, older int) {
	t.Helper()
	for i, id := range l.ids {
		var sess Session
		if _, err := s.Load(id, &sess); errors.Is(err, ErrNotFound) {
			gone++
			continue
		} else if err != nil {
			t.Fatalf("session %d unreadable after the failover: %v", i, err)
		}
		v, _ := sess.Get("n")
		if n, _ := strconv.ParseInt(string(v), 10, 64); n < l.acked[i].Load() {
			older++
		}
	}
	return gone, older
}

// waitReplicated waits until a replica of master s, online, has
// acknowledged the replication offset s had when it was called.
func waitReplicated(t *testing.T, s *redistest.Server) {
	t.Helper()
	field := func(info, name string) string {
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
				return v
			}
		}
		return ""
	}
	want, err := strconv.ParseInt(field(s.MustCLI("INFO", "replication"), "master_repl_offset"), 10, 64)
	if err != nil {
		t.Fatalf("%s: master_repl_offset: %v", s, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		// slave0:ip=127.0.0.1,port=6380,state=online,offset=123,lag=0
		replica := field(s.MustCLI("INFO", "replication"), "slave0")
		var online bool
		var offset int64
		for _, kv := range strings.Split(replica, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "state":
				online = v == "online"
			case "offset":
				offset, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		if online && offset >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: its replica (%s) has not reached offset %d", s, replica, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRedisClusterFailover runs three masters with a replica each, kills a
// master with SIGKILL under write load and checks that the store keeps
// serving: the other masters' sessions throughout, the dead master's once
// its replica is promoted. Replication is asynchronous, so writes
// acknowledged in the last moments before the kill may be lost; the test
// counts them. With wait_replicas: 1 no acknowledged write is lost.
func TestRedisClusterFailover(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	o := Options{Redis: RedisOptions{Addrs: c.Addrs()[:3], ClientCache: true}}

	phase := func(t *testing.T, wait int, victim *redistest.Server) (gone, older int) {
		o := o
		o.Redis.WaitReplicas = wait
		s := newRedisStore(t, o)
		l := startClusterLoad(t, s, 300)
		time.Sleep(300 * time.Millisecond)
		// The sessions' creation reached the victim's replica: only
		// updates may be lost with it (at the start a replica may still
		// be in its first sync, and under load that outlasted 300ms).
		waitReplicated(t, victim)
		okBefore := l.ok.Load()
		victim.Stop() // SIGKILL: no chance to replicate what it holds
		killed := time.Now()
		// Serving goes on for the other masters while the cluster notices.
		time.Sleep(500 * time.Millisecond)
		if during := l.ok.Load() - okBefore; during == 0 {
			t.Fatal("no write succeeded while one master of three was dead")
		}
		// The victim may be restarted only once its replica has taken
		// its place: a master without persistence that returns first
		// comes back empty with its slots, and its replica resyncs from
		// it, emptying both (Redis's own warning against restarting such
		// masters automatically).
		waitPromoted(t, c, victim)
		c.WaitOK(20 * time.Second)
		if wait > 0 {
			// The promoted replica has no replica of its own to
			// acknowledge WAIT until the dead master returns as one.
			rejoin(t, c, victim)
		}
		// Promoted: after the client has the new slot map every session
		// takes writes again.
		deadline := time.Now().Add(10 * time.Second)
		for {
			f, ok := l.fail.Load(), l.ok.Load()
			time.Sleep(300 * time.Millisecond)
			if l.fail.Load() == f && l.ok.Load() > ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("writes still failing %v after the kill, the last: %v", time.Since(killed), l.lastErr.Load())
			}
		}
		l.halt()
		gone, older = l.lost(t, newRedisStore(t, Options{Redis: o.Redis}))
		t.Logf("wait_replicas %d: failover took %v; %d writes acknowledged, %d refused; after it %d of 300 sessions gone, %d older than their last acknowledged write",
			wait, time.Since(killed).Round(100*time.Millisecond), l.ok.Load(), l.fail.Load(), gone, older)
		return gone, older
	}

	var first *redistest.Server
	t.Run("wait_replicas 0", func(t *testing.T) {
		first = c.Servers[0] // a master as created
		if first.Role() != "master" {
			t.Fatalf("%s is not a master", first)
		}
		if gone, _ := phase(t, 0, first); gone != 0 {
			// Sessions are created before the load and replicated long
			// before the kill: only late updates may be lost.
			t.Fatalf("%d sessions lost entirely", gone)
		}
	})
	// The killed master comes back as a replica of its promoted one, so
	// every master has a replica again for WAIT.
	rejoin(t, c, first)
	t.Run("wait_replicas 1", func(t *testing.T) {
		victim := c.Servers[1]
		if victim.Role() != "master" {
			t.Fatalf("%s is not a master", victim)
		}
		if gone, older := phase(t, 1, victim); gone != 0 || older != 0 {
			t.Fatalf("with wait_replicas 1, %d sessions gone and %d older than acknowledged", gone, older)
		}
	})
}

// waitPromoted waits until, the dead victim aside, the cluster has three
// masters again: the victim's replica was promoted.
func waitPromoted(t *testing.T, c *redistest.Cluster, victim *redistest.Server) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		masters := 0
		for _, s := range c.Servers {
			if s != victim && s.Role() == "master" {
				masters++
			}
		}
		if masters == 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replica of %s was promoted", victim)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rejoin restarts a killed master, which comes back as a replica of the
// one promoted in its place, and waits until it is in sync.
func rejoin(t *testing.T, c *redistest.Cluster, s *redistest.Server) {
	t.Helper()
	s.Restart()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := s.CLI("INFO", "replication")
		if strings.Contains(out, "role:slave") && strings.Contains(out, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not rejoin as a replica: %s", s, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.WaitOK(20 * time.Second)
}

// TestRedisClusterStatusShowsReplicas: a Cluster client talks to the
// masters only, and its replicas were reported down for as long as the
// process ran (/status and sessionproxy_redis_up said a healthy replica was
// down). Every configured server is reported up once it answers, and a
// stopped replica is reported down.
func TestRedisClusterStatusShowsReplicas(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	s := newRedisStore(t, Options{Redis: redisOpts(c.Addrs()...)})
	upOf := func() map[string]bool {
		m := map[string]bool{}
		for _, n := range s.Nodes() {
			m[n.Addr] = n.Up
		}
		return m
	}
	waitFor := func(what string, ok func(map[string]bool) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok(upOf()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: store reports %v", what, upOf())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("every server up", func(m map[string]bool) bool {
		for _, a := range c.Addrs() {
			if !m[a] {
				return false
			}
		}
		return true
	})
	var replica *redistest.Server
	for _, srv := range c.Servers {
		if srv.Role() == "slave" {
			replica = srv
			break
		}
	}
	if replica == nil {
		t.Fatal("no replica in the cluster")
	}
	replica.Stop()
	waitFor("the stopped replica down", func(m map[string]bool) bool { return !m[replica.Addr] })
}
