package memcached

import (
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"sessionproxy/internal/memcache"
	"sessionproxy/sessionstore"
)

// node is a memcached server and its health. Neither client has a notion
// of a dead server, so each node has its own and the store skips nodes
// marked down until a background probe finds them answering again.
type node struct {
	sessionstore.Node
	pipe *memcache.Client // every get and write, pipelined
	seed uint64           // rendezvous hash of the node ID

	state   atomic.Int32 // a State
	awayAt  atomic.Int64 // when it last left StateUp (unix ns); 0: never since the start
	handoff handoff
	// probeNow asks the monitor for a probe before its next tick: traffic
	// took the node down (check). Buffered, one.
	probeNow chan struct{}

	catchups      atomic.Int64 // completed catch-ups
	lastCatchupMs atomic.Int64 // how long the last one took
	copied        atomic.Int64 // sessions copied back from other replicas
}

// newNode makes n's state and its client, which spreads its commands over
// conns connections (memcache.DefaultConns when 0).
func newNode(n sessionstore.Node, timeout time.Duration, conns int) *node {
	return &node{Node: n, pipe: memcache.New(n.Addr, timeout, conns), seed: hashString(fnvOffset, n.ID),
		probeNow: make(chan struct{}, 1)}
}

// store runs a set, CAS or add of val under key on n and waits for it. The
// value's version goes in memcached's client flags (versionFlags), so
// that a full copy compares versions without reading values.
func (n *node) store(op memcache.Op, key, val []byte, cas uint64, exp int32) error {
	return n.pipe.Store(op, key, val, cas, versionFlags(val), exp)
}

// dropConns closes every connection to the node: after a failure or a
// restart none of them is to be trusted.
func (n *node) dropConns() {
	n.pipe.Close()
}

func (n *node) load() sessionstore.State { return sessionstore.State(n.state.Load()) }

// readable reports whether reads may use the node: only once it is whole.
func (n *node) readable() bool { return n.load() == sessionstore.StateUp }

// writable reports whether writes go to the node: up, or catching up.
func (n *node) writable() bool { return n.load() != sessionstore.StateDown }

// nodeFailed reports whether err says the node itself is unusable, as
// opposed to an answer about the key: a miss, a refused store, or
// SERVER_ERROR, the node refusing this item (e.g. over its -I limit).
func nodeFailed(err error) bool {
	return err != nil && !memcache.IsAnswer(err)
}

// check marks the node down if err says it failed, and reports whether it
// did. A node traffic took down is probed at once, not at the monitor's
// next tick: a node that answers (a timeout on a loaded machine, not a
// dead node) then catches up, and while it does, reads with other proxies
// on the nodes ask it beside the replicas (lateOwners); counted down, it
// is asked by none of them, and another proxy's write it alone took went
// unseen for up to a probe interval (docs/guarantees.md).
func (m *Memcached) check(n *node, err error) bool {
	if !nodeFailed(err) {
		return false
	}
	if m.markDown(n, err) {
		select {
		case n.probeNow <- struct{}{}:
		default:
		}
	}
	return true
}

// markDown takes n out of service, from up or from catching up. The idle
// connections its client pools died with the node (or will be refused by
// a restarted one): they are dropped now, or every operation after the
// node returns would take one and fail again. It reports whether it
// took n out (false: n was down already).
func (m *Memcached) markDown(n *node, err error) bool {
	for {
		old := n.state.Load()
		if sessionstore.State(old) == sessionstore.StateDown {
			return false
		}
		if n.state.CompareAndSwap(old, int32(sessionstore.StateDown)) {
			if sessionstore.State(old) == sessionstore.StateUp {
				n.awayAt.Store(time.Now().UnixNano())
			}
			break
		}
	}
	n.dropConns()
	m.logger().Warn("memcached node down", "node", n.ID, "addr", n.Addr, "error", err)
	return true
}

// monitor watches one node for as long as the store is open. Every probe
// interval it asks the node for its stats on a connection of its own,
// never one from the pool, so that a node that answers again leaves down
// within one interval whatever the pool held. A node that answers after
// being down, or that restarted while it looked up (its start time moved),
// catches up before it serves reads again. first is the node's first
// probe (startProbe), taken before the store's first presence round.
func (m *Memcached) monitor(n *node, first startProbeResult) {
	defer m.wg.Done()
	t := time.NewTicker(m.opts.ProbeInterval)
	defer t.Stop()
	var last memcache.Stats // when last seen; zero: never seen
	// unread: the nodes the last full copy to n did not copy from, a
	// source that answered BUSY or failed, or one that was down (it may
	// hold what n missed while no proxy ran, or while n was away). Until
	// each has been copied from, n lacks what only they hold, and those
	// sessions are on one replica only: the copy from them is tried
	// again every interval while n is up (a source still down costs
	// nothing).
	var unread []*node
	// waiting: the nodes a catch-up that must read every other node
	// (catchUp) still waits for; until one answers, trying again is
	// useless.
	var waiting []*node
	lastAdopt := time.Now()
	// A node away at start was marked down by startProbe. Every node has
	// had its first probe, so a start-up catch-up, which reads the
	// others, never waits on a node that hangs.
	st, err := first.stats, first.err
	if err == nil {
		last = st
		if n.load() == sessionstore.StateCatchingUp {
			// Its hint file says it missed writes while an earlier
			// process ran: they are replayed before it serves reads.
			m.logger().Info("memcached node missed writes before this process started: catching up",
				"node", n.ID, "addr", n.Addr, "handoff_pending", n.handoff.len(), "file", n.handoff.path())
			waiting = m.catchUp(n, false)
		}
		if n.load() == sessionstore.StateUp {
			// What the node missed while no proxy ran is unknown: bring
			// it the newer versions the others hold, in the background
			// (it serves reads meanwhile, where the newest replica wins
			// anyway).
			waiting = nil
			unread = m.reconcile(n, m.nodes, "memcached node: start-up reconciliation incomplete, trying again")
		}
	}
	m.startup.Done()
	for {
		select {
		case <-m.closed:
			return
		case <-t.C:
		case <-n.probeNow:
		}
		st, err := memcache.ReadStats(n.Addr, m.opts.Timeout)
		if err != nil {
			continue // traffic, not the probe, takes a node down
		}
		// Orphaned hint files are looked for every adoptInterval, and
		// always before a catch-up: a store that a reload replaced, or
		// another instance, may have left hints for n just now.
		if m.opts.StateDir != "" && (n.load() != sessionstore.StateUp || time.Since(lastAdopt) >= adoptInterval) {
			lastAdopt = time.Now()
			m.adopt(n)
			if n.readable() && n.handoff.pending() {
				unread = m.replayWhileUp(n, unread)
			}
		}
		seen := last.PID != 0
		// Another process, or one that started later (uptime has whole
		// seconds, hence the slack): whatever it held is gone.
		moved := seen && (st.PID != last.PID || absDiff(st.Started(), last.Started()) > 2)
		last = st
		restarted := moved
		switch n.load() {
		case sessionstore.StateDown:
			// Never seen before it went down: whether it lost anything
			// is unknown, so it is treated as if it had.
			restarted = moved || !seen
			n.dropConns() // anything pooled before the probe is suspect
			if !n.state.CompareAndSwap(int32(sessionstore.StateDown), int32(sessionstore.StateCatchingUp)) {
				continue
			}
		case sessionstore.StateUp:
			if !restarted {
				if len(unread) > 0 {
					unread = m.reconcile(n, unread, "memcached node: start-up reconciliation incomplete again")
				}
				continue
			}
			if !n.state.CompareAndSwap(int32(sessionstore.StateUp), int32(sessionstore.StateCatchingUp)) {
				continue
			}
			n.awayAt.Store(time.Now().UnixNano())
			n.dropConns()
			m.logger().Warn("memcached node restarted while up: catching up", "node", n.ID, "addr", n.Addr)
		case sessionstore.StateCatchingUp:
			if len(waiting) > 0 && !anyReadable(waiting) {
				continue
			}
			// The last catch-up could not finish (a source was busy or
			// failed): start again, copying everything.
			restarted = true
		}
		m.logger().Info("memcached node answers: catching up", "node", n.ID, "addr", n.Addr,
			"handoff_pending", n.handoff.len(), "restarted", restarted)
		// What n lacks from unread is copied once it is up again (above),
		// from those nodes only: a node down for good must not make every
		// later catch-up a full copy from all the others.
		full := restarted || st.CurrItems == 0
		left := m.catchUp(n, full)
		waiting = nil
		switch {
		case n.load() != sessionstore.StateUp:
			waiting = left
		case full:
			unread = left // its full copy is done, but for these
		default:
			for _, o := range left {
				if !slices.Contains(unread, o) {
					unread = append(unread, o)
				}
			}
		}
	}
}

func anyReadable(nodes []*node) bool {
	return slices.ContainsFunc(nodes, (*node).readable)
}

// replayWhileUp replays hints that reached n while it is up (adopted from
// another instance's hint file): they are writes n missed while that
// instance saw it down. Hints that say it missed more than they hold send
// it back to catching up, for a full copy. It returns unread with the
// nodes a replay could not read.
func (m *Memcached) replayWhileUp(n *node, unread []*node) []*node {
	hints, overflow, recopy := n.handoff.take()
	for _, h := range hints {
		unread = m.replay(n, h, unread)
	}
	if overflow || recopy {
		n.handoff.putBack(nil, overflow, recopy)
		if n.state.CompareAndSwap(int32(sessionstore.StateUp), int32(sessionstore.StateCatchingUp)) {
			n.awayAt.Store(time.Now().UnixNano())
			m.logger().Warn("memcached node missed writes that no hint records: catching up", "node", n.ID)
		}
		return unread
	}
	if err := n.handoff.done(false); err != nil {
		m.logger().Warn("hint file: could not be emptied after its replay", "node", n.ID, "error", err)
	}
	return unread
}

// reconcile copies to n, up, what the nodes of from hold newer, and
// returns those it could not copy from (copyFromEach); a failure is
// logged with msg.
func (m *Memcached) reconcile(n *node, from []*node, msg string) []*node {
	left, err := m.copyFromEach(n, from)
	if err != nil && !errors.Is(err, errClosed) {
		m.logger().Warn(msg, "node", n.ID, "error", err)
	}
	return left
}

func absDiff(a, b int64) int64 {
	if a > b {
		return a - b
	}
	return b - a
}

// Rendezvous (highest random weight) hashing: each node scores each key and
// a key's nodes are the highest scores. Adding a node moves only the keys
// it now wins, about 1/N of them. The hash is FNV-1a with a murmur3
// finalizer, fixed so that every proxy instance agrees on placement.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return h
}

func hashBytes(h uint64, b []byte) uint64 {
	for _, c := range b {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return h
}

func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

// maxNodes bounds the per-call placement arrays kept on the stack.
const maxNodes = 32

// placement is the nodes of one key in preference order (regular nodes by
// score, then failover nodes by score), and from them the replicas that
// may be read and those that take writes.
type placement struct {
	all   [maxNodes]*node
	n     int
	read  [maxNodes]*node
	nRead int
	write [maxNodes]*node
	nWrit int
}

func (m *Memcached) place(id []byte, p *placement) {
	var scores [maxNodes]uint64
	p.n = 0
	for _, nd := range m.nodes {
		score := fmix64(hashBytes(nd.seed, id))
		// Insertion sort: regular before failover, then by score.
		i := p.n
		for i > 0 && less(nd, score, p.all[i-1], scores[i-1]) {
			p.all[i], scores[i] = p.all[i-1], scores[i-1]
			i--
		}
		p.all[i], scores[i] = nd, score
		p.n++
	}
	p.nRead, p.nWrit = 0, 0
	for i := 0; i < p.n; i++ {
		nd := p.all[i]
		if nd.readable() && p.nRead < m.opts.Replicas {
			p.read[p.nRead] = nd
			p.nRead++
		}
		if nd.writable() && p.nWrit < m.opts.Replicas {
			p.write[p.nWrit] = nd
			p.nWrit++
		}
	}
}

func less(a *node, as uint64, b *node, bs uint64) bool {
	if a.Failover != b.Failover {
		return !a.Failover
	}
	return as > bs
}

// replicas returns the first Replicas nodes of the placement that are up:
// the nodes a key is read from. Failover nodes come in only when fewer
// regular nodes than that are up.
func (m *Memcached) replicas(id []byte, p *placement) []*node {
	m.place(id, p)
	return p.read[:p.nRead]
}

// notRead returns the nodes of a placement that take writes but are not
// among reads, the nodes a merge read and so wrote (writeReplicas): those
// catching up when the placement was made, or that left up since. The
// merge writes them after the others. It goes by the reads, not by the
// nodes' state now: a node whose catch-up ended while the write was in
// flight is up by then, and judged by that it was neither written nor
// hinted (hint: it takes writes and the placement wrote it), and held
// the version before the write for good, the one it then served once
// the other replica was lost (TestMergeRacingTheEndOfACatchUpReachesTheNode).
func (p *placement) notRead(reads []replicaRead, dst []*node) []*node {
outer:
	for _, n := range p.write[:p.nWrit] {
		for i := range reads {
			if reads[i].node == n {
				continue outer
			}
		}
		dst = append(dst, n)
	}
	return dst
}

// writes reports whether n is one of the nodes the placement writes to.
func (p *placement) writes(n *node) bool {
	for _, w := range p.write[:p.nWrit] {
		if w == n {
			return true
		}
	}
	return false
}

// owners returns the nodes that should hold a key whatever their health:
// the first Replicas of the placement.
func (p *placement) owners(replicas int) []*node {
	return p.all[:min(p.n, replicas)]
}

// holds reports whether n is one of the first replicas nodes of p.
func (p *placement) holds(n *node, replicas int) bool {
	for _, o := range p.owners(replicas) {
		if o == n {
			return true
		}
	}
	return false
}

// missing is the answer to a key that every node read lacks: ErrNotFound
// only when every owner of the key (its first Replicas nodes, which hold
// it whenever they are up) answered, ErrUnavailable otherwise. A
// stand-in holds a session only if it was written while an owner was
// down; one written while both owners were up is on them alone, and a
// stand-in's miss says nothing of it. And each proxy decides on its own
// which nodes are down: one that counted an owner down wrote a new or
// rotated session to the other owner alone (and stand-ins), and a proxy
// that counts that other owner down reads only the first, which never had
// it. Taken for "not found", either gave the client a fresh session (the
// user logged out) whenever an owner was away in a proxy's view, as a
// loaded machine's timeouts made them in the fault harness. Unavailable,
// it is what any session this proxy cannot load gets: 503 under
// store_down: reject (new: a fresh one).
//
// Only with other proxies on the nodes (or not yet known), whose writes
// this process's view does not follow, and only while the owner has been
// away for less than outageGrace.
// Views diverge for as long as timeouts or a partition last; a node that
// is really gone is counted down by every proxy within a few probe
// intervals, every write then goes to the owners that are up, and a miss
// there is a miss. Without the bound, every stale cookie (a session that
// expired while the browser kept its cookie) was refused with 503 for as
// long as a dead node stayed dead, where MSM and the classic stack start
// a fresh session.
func (m *Memcached) missing(reads []replicaRead, p *placement) error {
	if m.peers.Others() == 0 {
		// Alone on the nodes: every write went through this process, and
		// an owner that missed some serves reads only once its hints are
		// replayed, so the owners it reads hold all of them.
		return sessionstore.ErrNotFound
	}
	for _, o := range p.owners(m.opts.Replicas) {
		if !slices.ContainsFunc(reads, func(r replicaRead) bool { return r.node == o && !r.late }) && m.recentlyAway(o) {
			return sessionstore.ErrUnavailable
		}
	}
	return sessionstore.ErrNotFound
}

// outageGrace is how long after a node leaves service a miss on the other
// owners of a key is taken for unavailable rather than not found
// (missing): longer than the fault harness's faults and the catch-up
// after them, far shorter than an outage someone has to fix.
const outageGrace = 10 * time.Second

// recentlyAway reports whether n, not read, left service less than
// m.outageGrace ago, or has not served since the store started less than
// that ago.
func (m *Memcached) recentlyAway(n *node) bool {
	since := m.started
	if at := n.awayAt.Load(); at != 0 {
		since = time.Unix(0, at)
	}
	return time.Since(since) < m.outageGrace
}

// standIns reads key from the readable nodes of p that read did not
// include: the stand-ins, asked only when no replica read holds the key.
// Each proxy decides on its own which nodes are down, so a session
// another proxy wrote while it counted the owners down is on stand-ins
// only until that proxy's hints reach the owners; read from the owners
// alone, it was "not found", and the client got a fresh session from
// this proxy moments after another created or rotated it (the fault
// harness under load). Release the reads after use.
func (m *Memcached) standIns(key []byte, read []*node, p *placement, out []replicaRead) []replicaRead {
	var rest [maxNodes]*node
	k := 0
	for _, n := range p.all[:p.n] {
		if n.readable() && !slices.Contains(read, n) {
			rest[k] = n
			k++
		}
	}
	if k == 0 {
		return out[:0]
	}
	return m.readReplicas(key, rest[:k], nil, out)
}
