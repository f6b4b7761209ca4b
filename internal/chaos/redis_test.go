//go:build chaos

package chaos

import (
	"fmt"
	"math/rand"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"sessionproxy/internal/redistest"
)

// redisStale is how far back a read may see under Redis: with the default
// client_cache the server's invalidations keep the proxies' hot tiers
// coherent within 100 ms (CONTRACT 11); the rest is a margin for
// scheduling on a loaded machine.
const redisStale = 500 * time.Millisecond

// TestChaosRedis runs the harness over a Redis master with one replica
// and over a 3-master Redis Cluster with a replica each, with 3 proxies,
// each with wait_replicas 0 (the default: acknowledged changes may be
// lost across a promotion, and only there) and 1 (with write: sync, the
// default: nothing acknowledged is lost), and master + replica without
// the hot tier (replica_nocache, below). CHAOS_REDIS_SELFCHECK=1 checks
// the checker instead: replica_nocache's proxies run wait_replicas 0
// while the history is checked as if they ran 1, which must fail once a
// promotion loses what the master acknowledged.
func TestChaosRedis(t *testing.T) {
	seed, d := settings(t)
	if os.Getenv("CHAOS_REDIS_SELFCHECK") != "" {
		t.Run("replica_selfcheck", func(t *testing.T) {
			t.Logf("seed %d, %v, master + replica, proxies without wait_replicas checked as if with it: must fail", seed, d)
			st := newRedisReplStore(t, false)
			st.noCache, st.claimStrict = true, true
			runChaos(t, seed+10, d, st, 3)
		})
		return
	}
	// Each configuration's choices come from seed + its offset, fixed so
	// that a seed printed by an earlier run replays the same choices.
	for _, c := range []struct {
		name    string
		offset  int64
		cluster bool
		wait    bool
		noCache bool
	}{{"replica", 10, false, false, false}, {"replica_wait", 11, false, true, false}, {"replica_nocache", 12, false, false, true},
		{"cluster", 12, true, false, false}, {"cluster_wait", 13, true, true, false}} {
		t.Run(c.name, func(t *testing.T) {
			t.Logf("seed %d (this configuration's: %d), %v, %s, wait_replicas %v, 3 proxies (replay: CHAOS_SEED=%d)", seed, seed+c.offset, d, c.name, c.wait, seed)
			var st store
			if c.cluster {
				st = newRedisClusterStore(t, c.wait)
			} else {
				rs := newRedisReplStore(t, c.wait)
				rs.noCache = c.noCache
				st = rs
			}
			runChaos(t, seed+c.offset, d, st, 3)
		})
	}
}

// promotion records that a replica of shard was promoted between call and
// ret: acknowledged changes its master had not passed on may be lost
// there (redismodel_test.go).
func (r *recorder) promotion(shard int, call, ret time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, porcupine.Operation{ClientId: -1, Input: op{kind: "promote", shard: shard, lineage: -1},
		Call: int64(call.Sub(r.start)), Output: result{}, Return: int64(ret.Sub(r.start))})
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func redisSection(addrs []string, wait bool) string {
	q := make([]string, len(addrs))
	for i, a := range addrs {
		q[i] = strconv.Quote(a)
	}
	s := fmt.Sprintf("  redis:\n    addrs: [%s]\n", strings.Join(q, ", "))
	if wait {
		s += "    wait_replicas: 1\n"
	}
	return s
}

// redisReplStore is a master and its replica, as Sentinel or an operator
// would run them: the proxies reach the master through a relay (vip) that
// a failover moves to the promoted replica, as a virtual IP or a DNS name
// would move; the replica reaches its master through a relay of its own
// (link), which the nemesis may cut. Both keep an AOF (fsync always), so
// a master restarted in place keeps what it acknowledged.
type redisReplStore struct {
	t           *testing.T
	nodes       [2]*redistest.Server
	link        [2]*relay // link[i] leads to nodes[i], for its replica
	vip         *relay
	master      int
	wait        bool // the proxies run wait_replicas 1
	claimStrict bool // check as if they did (the self-check)
	// noCache turns the hot tier off (local_cache.size 0), a default
	// changed on purpose: without a hot tier a change Redis does not take
	// is never kept in the proxy and answered as done (finding R1 in
	// docs/guarantees.md), so the only losses left with wait_replicas 0
	// are the promotions' own, which the model must accept and the
	// self-check must flag.
	noCache bool
}

func newRedisReplStore(t *testing.T, wait bool) *redisReplStore {
	s := &redisReplStore{t: t, wait: wait}
	for i := range s.nodes {
		s.nodes[i] = redistest.Start(t, redistest.Options{AOF: true})
		s.link[i] = startRelay(t, s.nodes[i].Addr)
	}
	s.nodes[1].MustCLI("REPLICAOF", "127.0.0.1", port(s.link[0].addr()))
	s.vip = startRelay(t, s.nodes[0].Addr)
	for i := 0; i < 100 && !s.settled(nil); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

func (s *redisReplStore) section() string {
	sec := redisSection([]string{s.vip.addr()}, s.wait)
	if s.noCache {
		sec += "  local_cache:\n    size: 0\n"
	}
	return sec
}

func (s *redisReplStore) stale() time.Duration { return redisStale }
func (s *redisReplStore) model() porcupine.Model {
	return redisModel(s.wait || s.claimStrict, 1, func(string) int { return 0 })
}

// settled: the replica's link to the master is up (it holds what the
// master holds, give or take the stream in flight).
func (s *redisReplStore) settled([]*proxy) bool {
	out, err := s.nodes[1-s.master].CLI("INFO", "replication")
	return err == nil && strings.Contains(out, "master_link_status:up")
}

// replicate makes nodes[i] a replica of the current master.
func (s *redisReplStore) replicate(i int) {
	if out, err := s.nodes[i].CLI("REPLICAOF", "127.0.0.1", port(s.link[s.master].addr())); err != nil {
		s.t.Errorf("REPLICAOF on %s: %v: %s", s.nodes[i], err, out)
	}
}

// failover promotes the replica, moves the vip to it and makes the old
// master its replica (restarted first when it was killed or frozen), as
// Sentinel would; the promotion spans all of it, since the old master may
// take writes until it is demoted.
func (s *redisReplStore) failover(note func(string, ...interface{}), rec *recorder, restartOld bool) {
	m, r := s.master, 1-s.master
	call := time.Now()
	if out, err := s.nodes[r].CLI("REPLICAOF", "NO", "ONE"); err != nil {
		s.t.Errorf("REPLICAOF NO ONE on %s: %v: %s", s.nodes[r], err, out)
	}
	s.vip.moveTo(s.nodes[r].Addr)
	s.master = r
	if restartOld {
		s.nodes[m].Restart()
	}
	s.replicate(m)
	rec.promotion(0, call, time.Now())
	note("failover: r%d promoted, the vip moved to it, r%d its replica", r, m)
}

func (s *redisReplStore) fault(rnd *rand.Rand, note func(string, ...interface{}), rec *recorder) {
	m, r := s.master, 1-s.master
	hold := time.Duration(300+rnd.Intn(2500)) * time.Millisecond
	fault := rnd.Intn(9)
	if s.claimStrict {
		// The self-check needs losses to flag: on loopback a promotion
		// loses writes only when the replica lags, so make it lag.
		fault = 8
	}
	switch fault {
	case 0:
		note("kill redis master r%d, %v, then fail over", m, hold)
		s.nodes[m].Stop()
		time.Sleep(hold)
		s.failover(note, rec, true)
	case 1:
		note("kill redis master r%d, %v, restart it in place (AOF)", m, hold)
		s.nodes[m].Stop()
		time.Sleep(hold)
		s.nodes[m].Restart()
		s.replicate(r) // its replica follows the restarted master
		note("r%d back", m)
	case 2:
		note("freeze redis master r%d for %v", m, hold)
		s.nodes[m].Freeze()
		time.Sleep(hold)
		s.nodes[m].Thaw()
		note("thawed r%d", m)
	case 3:
		note("freeze redis master r%d, %v, then fail over", m, hold)
		s.nodes[m].Freeze()
		time.Sleep(hold)
		s.failover(note, rec, true)
	case 4:
		note("switchover (no fault): fail over from r%d", m)
		s.failover(note, rec, false)
	case 5:
		note("kill redis replica r%d for %v", r, hold)
		s.nodes[r].Stop()
		time.Sleep(hold)
		s.nodes[r].Restart()
		s.replicate(r)
		note("r%d back", r)
	case 6:
		note("freeze redis replica r%d for %v", r, hold)
		s.nodes[r].Freeze()
		time.Sleep(hold)
		s.nodes[r].Thaw()
		note("thawed r%d", r)
	case 7:
		note("partition the proxies from the master (vip cut) for %v", hold)
		s.vip.setCut(true)
		time.Sleep(hold)
		s.vip.setCut(false)
		note("vip healed")
	case 8:
		failover := rnd.Intn(2) == 0 || s.claimStrict
		note("cut the replication link to r%d for %v (then fail over: %v)", m, hold, failover)
		s.link[m].setCut(true)
		time.Sleep(hold)
		if failover {
			s.failover(note, rec, false)
		}
		s.link[m].setCut(false)
		note("link healed")
	}
}

// redisClusterStore is a Redis Cluster of 3 masters with a replica each
// (cluster-node-timeout 1s): the nemesis kills, freezes and restarts
// nodes, and a killed or long-frozen master is failed over by the
// cluster itself. No partitions: a Cluster client follows the addresses
// the nodes announce, so a relay in front of a node would be bypassed
// after the first MOVED (or would carry the replication link too).
type redisClusterStore struct {
	t      *testing.T
	c      *redistest.Cluster
	wait   bool
	shards [][2]int // each shard's first slot range, as created
}

func newRedisClusterStore(t *testing.T, wait bool) *redisClusterStore {
	s := &redisClusterStore{t: t, c: redistest.StartCluster(t, 3), wait: wait}
	for _, n := range clusterNodes(s.c.Servers[0]) {
		if n.master && len(n.slots) > 0 {
			s.shards = append(s.shards, n.slots[0])
		}
	}
	if len(s.shards) != 3 {
		t.Fatalf("cluster has %d shards, want 3", len(s.shards))
	}
	// The model computes key slots itself: check it against the server.
	for _, id := range []string{"abc", "Y0d8Z-", "r_M2aT"} {
		out := s.c.Servers[0].MustCLI("CLUSTER", "KEYSLOT", "sp:"+id)
		if strings.TrimSpace(out) != strconv.Itoa(keySlot("sp:"+id)) {
			t.Fatalf("key slot of sp:%s: %d, redis says %s", id, keySlot("sp:"+id), out)
		}
	}
	return s
}

func (s *redisClusterStore) section() string      { return redisSection(s.c.Addrs(), s.wait) }
func (s *redisClusterStore) stale() time.Duration { return redisStale }

func (s *redisClusterStore) shardOfSlot(slot int) int {
	for i, r := range s.shards {
		if r[0] <= slot && slot <= r[1] {
			return i
		}
	}
	return -1
}

func (s *redisClusterStore) model() porcupine.Model {
	return redisModel(s.wait, len(s.shards), func(id string) int { return s.shardOfSlot(keySlot("sp:" + id)) })
}

// settled: every node runs, the cluster is ok, and every replica's link
// to its master is up.
func (s *redisClusterStore) settled([]*proxy) bool {
	masters := 0
	for _, n := range s.c.Servers {
		if !n.Running() {
			return false
		}
		info, err := n.CLI("CLUSTER", "INFO")
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			return false
		}
		role, err := n.CLI("INFO", "replication")
		if err != nil {
			return false
		}
		if strings.Contains(role, "role:master") {
			masters++
		} else if !strings.Contains(role, "master_link_status:up") {
			return false
		}
	}
	return masters == len(s.shards)
}

// shardOf returns the shard node serves (as its master or replica) and
// whether it is its master, as another node sees it.
func (s *redisClusterStore) shardOf(node *redistest.Server) (shard int, master bool) {
	for _, o := range s.c.Servers {
		if o == node || !o.Running() {
			continue
		}
		nodes := clusterNodes(o)
		for _, n := range nodes {
			if n.addr != node.Addr {
				continue
			}
			if n.master && len(n.slots) > 0 {
				return s.shardOfSlot(n.slots[0][0]), true
			}
			for _, m := range nodes {
				if m.id == n.masterID && len(m.slots) > 0 {
					return s.shardOfSlot(m.slots[0][0]), false
				}
			}
		}
		break
	}
	return -1, false
}

// servedBy returns the address of shard's master as a node other than
// not sees it ("" if none is sure).
func (s *redisClusterStore) servedBy(shard int, not *redistest.Server) string {
	for _, o := range s.c.Servers {
		if o == not || !o.Running() {
			continue
		}
		for _, n := range clusterNodes(o) {
			if n.master && !n.failed && len(n.slots) > 0 && s.shardOfSlot(n.slots[0][0]) == shard {
				return n.addr
			}
		}
		return ""
	}
	return ""
}

func (s *redisClusterStore) fault(rnd *rand.Rand, note func(string, ...interface{}), rec *recorder) {
	i := rnd.Intn(len(s.c.Servers))
	n := s.c.Servers[i]
	shard, master := s.shardOf(n)
	role := "replica"
	if master {
		role = "master"
	}
	hold := time.Duration(300+rnd.Intn(2500)) * time.Millisecond
	call := time.Now()
	switch rnd.Intn(3) {
	case 0:
		note("kill redis node c%d (%s of shard %d), then restart it (empty) after %v", i, role, shard, hold)
		n.Stop()
		if master {
			// Restarted empty before its replica took over, it would
			// come back as the master of nothing: only after.
			s.waitTakenOver(shard, n)
		}
		time.Sleep(hold)
		n.Restart()
	case 1:
		note("freeze redis node c%d (%s of shard %d) for %v", i, role, shard, hold)
		n.Freeze()
		time.Sleep(hold)
		n.Thaw()
	case 2:
		if master {
			note("kill redis node c%d (%s of shard %d), restart it (empty) at once", i, role, shard)
			n.Stop()
			s.waitTakenOver(shard, n)
			n.Restart()
			break
		}
		note("manual failover: c%d (replica of shard %d) takes over (CLUSTER FAILOVER)", i, shard)
		old := s.server(s.servedBy(shard, n))
		if out, err := n.CLI("CLUSTER", "FAILOVER"); err != nil {
			s.t.Errorf("CLUSTER FAILOVER on %s: %v: %s", n, err, out)
		}
		if old == nil {
			rec.promotion(shard, call, time.Now())
			return
		}
		n, master = old, true // the old master is demoted: a promotion either way
	}
	if !master {
		note("c%d back", i)
		return
	}
	// Was the shard failed over? Wait until the dust settles: the old
	// master demoted (or still master: no promotion).
	for w := 0; w < 100; w++ {
		if out, err := n.CLI("ROLE"); err == nil && s.servedBy(shard, n) != "" {
			if strings.HasPrefix(out, "slave") {
				rec.promotion(shard, call, time.Now())
				note("shard %d failed over to %s", shard, s.servedBy(shard, n))
				return
			}
			if s.servedBy(shard, n) == n.Addr && w >= 20 {
				note("shard %d kept its master c%d", shard, i)
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Unsure: count it as a promotion (the model only gets more lenient).
	rec.promotion(shard, call, time.Now())
	note("shard %d: failover state unclear after 10s", shard)
}

// waitTakenOver waits (up to 15s) until another node than old serves
// shard.
func (s *redisClusterStore) waitTakenOver(shard int, old *redistest.Server) {
	for w := 0; w < 150; w++ {
		if a := s.servedBy(shard, old); a != "" && a != old.Addr {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *redisClusterStore) server(addr string) *redistest.Server {
	for _, n := range s.c.Servers {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr, masterID string
	master, failed     bool
	slots              [][2]int
}

func clusterNodes(s *redistest.Server) []clusterNode {
	out, err := s.CLI("CLUSTER", "NODES")
	if err != nil {
		return nil
	}
	var ns []clusterNode
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		addr, _, _ = strings.Cut(addr, ",")
		n := clusterNode{id: f[0], addr: addr, masterID: f[3], master: strings.Contains(f[2], "master"),
			failed: strings.Contains(f[2], "fail")}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot being migrated
			}
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			l, _ := strconv.Atoi(lo)
			h, _ := strconv.Atoi(hi)
			n.slots = append(n.slots, [2]int{l, h})
		}
		ns = append(ns, n)
	}
	return ns
}

// keySlot is Redis Cluster's slot of a key without a hash tag: CRC16
// (XMODEM) mod 16384.
func keySlot(key string) int {
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}
