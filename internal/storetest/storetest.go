// Package storetest runs the real servers behind each kind of shared
// session store (a memcached pair, a standalone Redis, a Redis Cluster),
// so that one suite of behaviour tests runs against every kind: a test
// starts a Deployment of each Kind once and gives each of its cases a key
// prefix of its own.
//
// It knows servers, not sessions: it does not import sessionstore, so
// that the store's own tests can use it.
package storetest

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/redistest"
)

// Kind is a kind of shared store deployment.
type Kind struct {
	Name string
	// Redis: the servers speak Redis (standalone or Cluster); else they
	// are memcached nodes, IDs n1, n2.
	Redis bool
	// Cluster: a Redis Cluster of three masters with a replica each. Its
	// servers cannot all be stopped and restarted (Stop, Restart).
	Cluster bool
}

// The kinds.
var (
	Memcached    = Kind{Name: "memcached"}
	Redis        = Kind{Name: "redis", Redis: true}
	RedisCluster = Kind{Name: "redis cluster", Redis: true, Cluster: true}
)

// Kinds is every kind; Restartable the kinds whose servers can all be
// stopped and restarted, for the tests of a store that goes away.
var (
	Kinds       = []Kind{Memcached, Redis, RedisCluster}
	Restartable = []Kind{Memcached, Redis}
)

// Deployment is one running deployment of a Kind, stopped when the test
// that started it ends.
type Deployment struct {
	Kind      Kind
	Memcached []*memcachedtest.Server // Memcached: the two nodes
	Redis     *redistest.Server       // Redis: the server
	Cluster   *redistest.Cluster      // RedisCluster: the cluster

	t        testing.TB
	prefixes atomic.Int64
}

// Start starts a deployment of k.
func (k Kind) Start(t testing.TB) *Deployment {
	t.Helper()
	d := &Deployment{Kind: k, t: t}
	switch {
	case k.Cluster:
		d.Cluster = redistest.StartCluster(t, 3)
	case k.Redis:
		d.Redis = redistest.Start(t, redistest.Options{})
	default:
		d.Memcached = []*memcachedtest.Server{memcachedtest.Start(t), memcachedtest.Start(t)}
	}
	return d
}

// Prefix returns a key prefix no other caller got from d, so that the
// cases sharing a deployment never see each other's keys (nor, with Redis
// client-side caching, each other's invalidations).
func (d *Deployment) Prefix() string {
	return fmt.Sprintf("t%d:", d.prefixes.Add(1))
}

// Addrs returns the addresses to configure: the memcached nodes, the
// Redis server, or the Cluster's servers as seeds.
func (d *Deployment) Addrs() []string {
	switch {
	case d.Cluster != nil:
		return d.Cluster.Addrs()
	case d.Redis != nil:
		return []string{d.Redis.Addr}
	}
	var a []string
	for _, n := range d.Memcached {
		a = append(a, n.Addr)
	}
	return a
}

// Replicas is how many servers hold a copy of each session: both
// memcached nodes (replicas: 2); for Redis, one master (its replicas are
// the deployment's own).
func (d *Deployment) Replicas() int {
	if d.Kind.Redis {
		return 1
	}
	return len(d.Memcached)
}

// Stop kills every server. Not for a Cluster.
func (d *Deployment) Stop() {
	d.t.Helper()
	d.each("stopped", (*redistest.Server).Stop, (*memcachedtest.Server).Stop)
}

// Restart starts every server again on its port, empty. Not for a
// Cluster.
func (d *Deployment) Restart() {
	d.t.Helper()
	d.each("restarted", (*redistest.Server).Restart, (*memcachedtest.Server).Restart)
}

// each applies r or m to every server; what names it in the failure of a
// Cluster, whose servers only fail over one by one.
func (d *Deployment) each(what string, r func(*redistest.Server), m func(*memcachedtest.Server)) {
	d.t.Helper()
	if d.Cluster != nil {
		d.t.Fatalf("storetest: a cluster cannot be %s as a whole", what)
	}
	if d.Redis != nil {
		r(d.Redis)
	}
	for _, n := range d.Memcached {
		m(n)
	}
}

// Case is one behaviour test of a suite run against every kind.
type Case struct {
	Name string
	Test func(t *testing.T, d *Deployment)
}

// RunEach runs every case against each kind, as subtests named kind/case:
// a deployment of each kind is started once and shared by its cases (each
// taking its own Prefix), and the kinds run in parallel, since they share
// nothing.
func RunEach(t *testing.T, kinds []Kind, cases []Case) {
	for _, k := range kinds {
		t.Run(k.Name, func(t *testing.T) {
			t.Parallel()
			d := k.Start(t)
			for _, c := range cases {
				t.Run(c.Name, func(t *testing.T) { c.Test(t, d) })
			}
		})
	}
}

// redisServers returns the running Redis servers.
func (d *Deployment) redisServers() []*redistest.Server {
	if d.Cluster != nil {
		return d.Cluster.Servers
	}
	if d.Redis != nil {
		return []*redistest.Server{d.Redis}
	}
	return nil
}

// Reads returns how many reads (memcached get/gets, Redis GET) the
// servers answered since they started: a test compares two counts.
func (d *Deployment) Reads(t testing.TB) int {
	t.Helper()
	n := 0
	for _, s := range d.redisServers() {
		if s.Running() {
			n += s.Calls("get")
		}
	}
	for _, m := range d.Memcached {
		st, err := stats(m.Addr)
		if err != nil {
			t.Fatalf("stats of memcached %s: %v", m.Addr, err)
		}
		g, _ := strconv.Atoi(st["cmd_get"])
		n += g
	}
	return n
}

// Copies returns how many servers hold key (the full key, prefix
// included).
func (d *Deployment) Copies(t testing.TB, key string) int {
	t.Helper()
	n := 0
	for _, ttl := range d.TTLs(t, key) {
		if ttl >= 0 {
			n++
		}
	}
	return n
}

// TTLs returns, per server that could hold key, how long it keeps it:
// -1 when it does not hold it. Redis: the key's master only.
func (d *Deployment) TTLs(t testing.TB, key string) []time.Duration {
	t.Helper()
	if d.Kind.Redis {
		s := d.Redis
		if d.Cluster != nil {
			s = d.Cluster.MasterOf(key)
		}
		out, err := s.CLI("TTL", key)
		if err != nil {
			t.Fatalf("TTL %s on %s: %v: %s", key, s, err, out)
		}
		n, err := strconv.Atoi(strings.TrimSpace(out))
		if err != nil {
			t.Fatalf("TTL %s on %s: %q", key, s, out)
		}
		if n < 0 {
			return []time.Duration{-1}
		}
		return []time.Duration{time.Duration(n) * time.Second}
	}
	var out []time.Duration
	for _, m := range d.Memcached {
		ttl, err := metaTTL(m.Addr, key)
		if err != nil {
			t.Fatalf("mg %s on memcached %s: %v", key, m.Addr, err)
		}
		out = append(out, ttl)
	}
	return out
}

// dial connects to a memcached node with a deadline for the whole talk.
func dial(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(2 * time.Second))
	return c, nil
}

// stats reads a memcached's "stats": all of them, by name.
func stats(addr string) (map[string]string, error) {
	c, err := dial(addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	fmt.Fprintf(c, "stats\r\n")
	out := map[string]string{}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "END" {
			return out, nil
		}
		if f := strings.Fields(line); len(f) == 3 && f[0] == "STAT" {
			out[f[1]] = f[2]
		}
	}
	return out, sc.Err()
}

// metaTTL asks a memcached for key's remaining lifetime with the meta
// protocol (mg <key> t): -1 when it does not hold the key.
func metaTTL(addr, key string) (time.Duration, error) {
	c, err := dial(addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	fmt.Fprintf(c, "mg %s t\r\n", key)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, err
	}
	f := strings.Fields(line)
	switch {
	case len(f) == 1 && f[0] == "EN":
		return -1, nil
	case len(f) == 2 && f[0] == "HD" && strings.HasPrefix(f[1], "t"):
		n, err := strconv.Atoi(f[1][1:])
		if err != nil || n < 0 { // t-1: no expiry, which a session never has
			return 0, fmt.Errorf("answer %q", line)
		}
		return time.Duration(n) * time.Second, nil
	}
	return 0, fmt.Errorf("answer %q", line)
}
