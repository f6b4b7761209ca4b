// Package memcached keeps sessions on memcached nodes: the shared store
// behind sessionstore.Options.Memcached (placement, node states, hinted
// handoff, catch-up, presence marks). Importing it registers it with
// sessionstore (sessionstore.RegisterKind, settings.go), which builds it for a Store whose
// options name memcached nodes.
package memcached

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"sessionproxy/internal/memcache"
	"sessionproxy/sessionstore"
)

// Memcached keeps sessions on memcached nodes, each session on Replicas of
// them chosen by rendezvous hashing. A node that fails is skipped; the
// writes it misses are handed off to it when it answers again, and it
// serves reads only once it has caught up (node.go, handoff.go). Every
// read takes the newest of the copies the replicas hold, so a node that
// returns stale never causes an older version to be served.
type Memcached struct {
	opts  sessionstore.MemcachedOptions
	nodes []*node
	peers sessionstore.PeerCount // other processes with presence marks on the nodes
	// peersKnown: a presence round has answered since the start (only
	// the presence rounds use it, one at a time).
	peersKnown bool
	// lastOthers, noneSince: the last count of others seen above none,
	// and since when none has been (settle; the presence rounds only).
	lastOthers int
	noneSince  time.Time
	// started, outageGrace: when the store started, and how long a miss
	// with an owner away is unavailable (missing).
	started     time.Time
	outageGrace time.Duration

	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	startup   sync.WaitGroup // the nodes' start-up reconciliations not yet over

	hintToken string // names this instance's hint files (hintdir.go)
}

var _ sessionstore.Shared = (*Memcached)(nil)

// NewMemcached returns a store over o.Nodes and starts watching them.
func NewMemcached(o sessionstore.MemcachedOptions) (*Memcached, error) {
	if len(o.Nodes) == 0 {
		return nil, errors.New("sessionstore: no memcached nodes")
	}
	if len(o.Nodes) > maxNodes {
		return nil, fmt.Errorf("sessionstore: at most %d memcached nodes", maxNodes)
	}
	if o.Replicas <= 0 {
		o.Replicas = sessionstore.DefaultReplicas
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = sessionstore.DefaultKeyPrefix
	}
	if o.Timeout <= 0 {
		o.Timeout = sessionstore.DefaultTimeout
	}
	if o.MaxIdleConns <= 0 {
		o.MaxIdleConns = sessionstore.DefaultMaxIdleConns
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = sessionstore.DefaultProbeInterval
	}
	if o.InstanceID == "" {
		o.InstanceID = sessionstore.NewInstanceID()
	}
	if !sessionstore.ValidInstanceID(o.InstanceID) {
		return nil, fmt.Errorf("sessionstore: instance ID %q: 1 to %d of [0-9A-Za-z_-]", o.InstanceID, sessionstore.MaxInstanceID)
	}
	if o.HintFileMax <= 0 {
		o.HintFileMax = sessionstore.DefaultHintFileMax
	}
	m := &Memcached{opts: o, closed: make(chan struct{}), started: time.Now(), outageGrace: outageGrace}
	for _, n := range o.Nodes {
		m.nodes = append(m.nodes, newNode(n, o.Timeout, o.MaxIdleConns))
	}
	if o.StateDir != "" {
		if err := m.openHints(); err != nil {
			return nil, err
		}
		for _, n := range m.nodes {
			if n.handoff.pending() {
				// It missed writes while an earlier process ran: it
				// serves no reads until they are replayed (monitor).
				n.state.Store(int32(sessionstore.StateCatchingUp))
			}
		}
		m.wg.Add(1)
		go m.syncHints()
	}
	// Each node's first probe, before anything else reads or writes it
	// (startprobe.go).
	first := m.startProbe()
	// The first presence round before the store is handed out: a proxy
	// that starts beside others knows them before its first request, and
	// waits until they know it (presence.go).
	if wait := sessionstore.SeenBy(m.presenceRound()); wait > 0 {
		m.logger().Info("other proxies on the memcached nodes: waiting until they see this one", "wait", wait)
		time.Sleep(wait)
	}
	m.wg.Add(1)
	go m.presence()
	m.startup.Add(len(m.nodes))
	for i, n := range m.nodes {
		m.wg.Add(1)
		go m.monitor(n, first[i])
	}
	return m, nil
}

// Reconciled blocks until every node's start-up reconciliation is over:
// the copy of what it lacks from the others done, failed (the monitor
// tries it again), or the node found down. Until then a node may see
// reads that no client made.
func (m *Memcached) Reconciled() { m.startup.Wait() }

// Close stops the node monitors, and with them any reconciliation or
// catch-up under way: a copy stops between two keys, so that a process
// asked to stop (or a reload replacing the store) is not held for as long
// as a copy of millions of sessions takes. A node whose catch-up stopped
// is left as it was; the next process's monitor copies it again. Closing
// again does nothing.
func (m *Memcached) Close() {
	m.closeOnce.Do(func() { close(m.closed) })
	m.wg.Wait()
	for _, n := range m.nodes {
		n.pipe.Shutdown()
	}
	m.closeHints()
}

// errClosed ends a copy that Close interrupted.
var errClosed = errors.New("sessionstore: store closed")

// closing reports whether Close was called.
func (m *Memcached) closing() bool {
	select {
	case <-m.closed:
		return true
	default:
		return false
	}
}

func (m *Memcached) logger() *slog.Logger {
	if m.opts.Logger == nil {
		return slog.Default()
	}
	return m.opts.Logger
}

// Kind returns "memcached", the name lookups from this store go by in
// metrics and logs.
func (m *Memcached) Kind() string { return sessionstore.KindMemcached }

// Status reports every node's state, in configuration order.
func (m *Memcached) Status() []sessionstore.NodeState {
	out := make([]sessionstore.NodeState, len(m.nodes))
	for i, n := range m.nodes {
		st := n.load()
		out[i] = sessionstore.NodeState{
			Node: n.Node, State: st, Up: st == sessionstore.StateUp,
			HandoffPending:  n.handoff.len(),
			HandoffReplayed: n.handoff.replayed.Load(),
			Copied:          n.copied.Load(),
			Catchups:        n.catchups.Load(),
			LastCatchup:     time.Duration(n.lastCatchupMs.Load()) * time.Millisecond,
		}
	}
	return out
}

// appendKey appends id's key to b.
func (m *Memcached) appendKey(b, id []byte) []byte {
	return append(append(b, m.opts.KeyPrefix...), id...)
}

// exptime is memcached's expiry for a value that may be dropped at
// expires (unix seconds).
func exptime(expires int64) int32 {
	now := time.Now().Unix()
	secs := max(expires-now, 1)
	if secs > 30*24*3600 {
		return int32(now + secs) // memcached reads larger values as a unix time
	}
	return int32(secs)
}

// replicaRead is what one replica answered.
type replicaRead struct {
	node    *node
	found   bool   // false: a miss, or a value we cannot read
	val     []byte // the value held, in call's buffer
	cas     uint64 // its CAS id
	version uint64
	call    *memcache.Call // holds val until releaseReads
	// late: an owner read while it catches up (lateOwners); its miss
	// says nothing of whether the key exists (missing).
	late bool
}

// readReplicas gets key, with its CAS id, from each readable node of
// nodes and each node of late that is not down (lateOwners). The gets are
// in flight on every node at once (pipelined, no goroutine per replica),
// so a cold read waits for one round trip, not one per replica. The
// values stay in the calls' buffers: release them with releaseReads.
func (m *Memcached) readReplicas(key []byte, nodes, late []*node, out []replicaRead) []replicaRead {
	var calls [maxNodes]*memcache.Call
	var asked [maxNodes]*node
	k := 0
	ask := func(n *node) {
		c := memcache.NewCall(memcache.OpGet, nil, 0, 0, 0)
		n.pipe.Start(c, key)
		calls[k], asked[k] = c, n
		k++
	}
	for _, n := range nodes {
		if n.readable() {
			ask(n)
		}
	}
	for _, n := range late {
		if n.writable() {
			ask(n)
		}
	}
	out = out[:0]
	for i := range k {
		c, n := calls[i], asked[i]
		err := c.Wait()
		if m.check(n, err) {
			c.Release()
			continue
		}
		r := replicaRead{node: n, call: c, late: !n.readable()}
		if err == nil {
			if mt, perr := peek(c.Value()); perr == nil {
				r.found, r.val, r.cas, r.version = true, c.Value(), c.CAS(), mt.version
			} else {
				// A value we cannot read is treated as absent and
				// overwritten by the next write.
				m.logger().Warn("corrupt session value", "node", n.ID,
					"session", sessionstore.LogID(bytes.TrimPrefix(key, []byte(m.opts.KeyPrefix))))
			}
		}
		out = append(out, r)
	}
	return out
}

// releaseReads gives the reads' buffers back: their values are not to be
// used afterwards.
func releaseReads(reads []replicaRead) {
	for i := range reads {
		reads[i].call.Release()
		reads[i] = replicaRead{}
	}
}

// answered reports whether a node read that serves reads answered: a
// catching-up owner alone may lack this process's own missed writes.
func answered(reads []replicaRead) bool {
	for _, r := range reads {
		if !r.late {
			return true
		}
	}
	return false
}

// lateOwners returns the owners of p that take writes but do not serve
// reads in this process's view (catching up), when other processes use
// the nodes: they are read too, beside the replicas, and the newest copy
// wins. Each process decides alone which nodes are down, and the writes a
// node missed in one process's view are hints in that process only: a
// process that counted n2 down wrote to n1 alone, and another that counts
// n1 catching up (its own timeouts; its catch-up not over) and n2 up read
// n2 alone and served the older version, or changed it and lost the
// write (the fault harness under load, docs/guarantees.md). A node that
// catches up answers this process's probes. What it lacks (this
// process's missed writes; everything, if it restarted) the replicas read
// hold as before: read beside them, it can only bring a newer copy, and
// it is never read alone (answered). A node counted down is
// not asked: it did not answer, and a dead one would cost every cold read
// a timeout. Alone on the nodes, every write went through this process,
// and the replicas read hold them all. The common path (no owner catching
// up) costs two atomic loads.
func (m *Memcached) lateOwners(p *placement, dst []*node) []*node {
	for _, o := range p.owners(m.opts.Replicas) {
		if o.load() == sessionstore.StateCatchingUp {
			dst = append(dst, o)
		}
	}
	if len(dst) == 0 || m.peers.Others() == 0 {
		return dst[:0]
	}
	return dst
}

// newest returns the index of the read with the highest version, or -1.
func newest(reads []replicaRead) int {
	best := -1
	for i, r := range reads {
		if r.found && (best < 0 || r.version > reads[best].version) {
			best = i
		}
	}
	return best
}

// Get returns the newest copy of id that its replicas hold, and repairs
// the replicas that hold an older one or none.
func (m *Memcached) Get(id []byte) ([]byte, error) {
	var c valueCopy
	err := m.View(id, &c)
	return c.val, err
}

// View is Get without the copy: it hands the newest copy of id to to,
// whose Take must not keep the value past its return.
func (m *Memcached) View(id []byte, to sessionstore.ValueTaker) error {
	var p placement
	nodes := m.replicas(id, &p)
	if len(nodes) == 0 {
		return sessionstore.ErrUnavailable
	}
	var kb [64]byte // on the stack: a cold read allocates nothing
	key := m.appendKey(kb[:0], id)
	var lb [maxNodes]*node
	late := m.lateOwners(&p, lb[:0])
	var buf [maxNodes]replicaRead
	reads := m.readReplicas(key, nodes, late, buf[:])
	defer releaseReads(reads)
	if !answered(reads) {
		return sessionstore.ErrUnavailable
	}
	best := newest(reads)
	if best < 0 {
		// Held by no replica read: perhaps only by a stand-in, where a
		// proxy that counted the owners down wrote it (standIns).
		var sbuf [maxNodes]replicaRead
		more := m.standIns(key, nodes, &p, sbuf[:])
		defer releaseReads(more)
		i := newest(more)
		if i < 0 {
			return m.missing(reads, &p)
		}
		for _, r := range reads {
			m.writeIfNewer(r.node, key, more[i].val)
		}
		return to.Take(more[i].val)
	}
	val := reads[best].val
	for _, r := range reads {
		if !r.found || r.version < reads[best].version {
			m.writeIfNewer(r.node, key, val)
		}
	}
	return to.Take(val)
}

// writeIfNewer stores val on n unless n already holds its version or a
// newer one. It is how replicas are repaired and written without ever
// replacing a newer copy with an older one. It reports whether n holds
// val's version (or a newer one) now.
func (m *Memcached) writeIfNewer(n *node, key, val []byte) bool {
	mt, err := peek(val)
	if err != nil {
		return false
	}
	exp := exptime(mt.expires)
	for try := 0; try < 4; try++ {
		c, err := n.pipe.Get(key)
		hm, perr := peek(c.Value())
		cas := c.CAS()
		c.Release()
		if m.check(n, err) {
			return false
		}
		if err == nil {
			if perr == nil && hm.version >= mt.version {
				return true
			}
			err = n.store(memcache.OpCAS, key, val, cas, exp)
		} else {
			err = n.store(memcache.OpAdd, key, val, 0, exp)
		}
		if err == nil {
			return true
		}
		if m.check(n, err) {
			return false
		}
		// Someone wrote in between: look again.
	}
	return false
}

// PutIfNewer stores val on every replica of id that takes writes and does
// not hold a newer version.
func (m *Memcached) PutIfNewer(id, val []byte) error {
	var kb [64]byte
	key := m.appendKey(kb[:0], id)
	return m.eachWritable(id, val, func(n *node) bool { return m.writeIfNewer(n, key, val) })
}

// Put sets val on every replica of id that takes writes, whatever they
// hold: only for a caller whose copy is the authoritative one. The sets
// are in flight on every replica at once, and the caller is woken once,
// by the last answer (memcache.Join).
func (m *Memcached) Put(id, val []byte) error {
	mt, err := peek(val)
	if err != nil {
		return err
	}
	var kb [64]byte // on the stack: the write path allocates nothing
	key, exp := m.appendKey(kb[:0], id), exptime(mt.expires)
	var p placement
	m.place(id, &p)
	nodes := p.write[:p.nWrit]
	var calls [maxNodes]*memcache.Call
	for i := range nodes {
		calls[i] = memcache.NewCall(memcache.OpSet, val, 0, versionFlags(val), exp)
	}
	memcache.Join(calls[:len(nodes)]) // one wake-up for all the answers
	for i, n := range nodes {
		n.pipe.Start(calls[i], key)
	}
	memcache.WaitAll(calls[:len(nodes)])
	written := 0
	var fb [maxNodes]*node
	failed := fb[:0]
	for i, n := range nodes {
		err := calls[i].Wait()
		calls[i].Release()
		if m.check(n, err) {
			failed = append(failed, n)
		}
		if err == nil {
			written++
		}
	}
	m.hint(id, val, &p, failed)
	if written == 0 {
		return sessionstore.ErrUnavailable
	}
	return nil
}

// eachWritable calls write for each replica of id that takes writes,
// records a hint of val for each that should have and is down, and
// returns ErrUnavailable if none took it.
func (m *Memcached) eachWritable(id, val []byte, write func(*node) bool) error {
	var p placement
	m.place(id, &p)
	written := 0
	var fb [maxNodes]*node
	failed := fb[:0]
	for _, n := range p.write[:p.nWrit] {
		if write(n) {
			written++
		} else {
			failed = append(failed, n)
		}
	}
	m.hint(id, val, &p, failed)
	if written == 0 {
		return sessionstore.ErrUnavailable
	}
	return nil
}

// Merge reads id from its readable replicas, has mg build the new value
// on the newest copy, and writes it back with CAS; when another process
// wrote in between, it starts over. Replicas catching up get the value
// too, unless they hold a newer one.
func (m *Memcached) Merge(id []byte, mg sessionstore.Merger) error {
	var p placement
	nodes := m.replicas(id, &p)
	if len(nodes) == 0 {
		return sessionstore.ErrUnavailable
	}
	var kb [64]byte
	key := m.appendKey(kb[:0], id)
	var buf [maxNodes]replicaRead
	for try := 0; try < sessionstore.MaxCASTries; try++ {
		var lb [maxNodes]*node
		late := m.lateOwners(&p, lb[:0]) // as View
		reads := m.readReplicas(key, nodes, late, buf[:])
		if !answered(reads) {
			releaseReads(reads)
			return sessionstore.ErrUnavailable
		}
		var cur []byte
		var sbuf [maxNodes]replicaRead
		var more []replicaRead
		if i := newest(reads); i >= 0 {
			cur = reads[i].val
		} else {
			more = m.standIns(key, nodes, &p, sbuf[:]) // as View
			if i := newest(more); i >= 0 {
				cur = more[i].val
			}
		}
		val, err := mg.Merge(cur)
		releaseReads(more)
		if err != nil {
			if cur == nil && errors.Is(err, sessionstore.ErrNotFound) {
				err = m.missing(reads, &p)
			}
			releaseReads(reads)
			return err
		}
		var fb [maxNodes]*node
		written, failed, conflict := m.writeReplicas(key, reads, val, fb[:0])
		var cb [maxNodes]*node
		rest := p.notRead(reads, cb[:0])
		releaseReads(reads)
		if conflict {
			sessionstore.Backoff(try)
			continue
		}
		for _, n := range rest {
			if !n.writable() || !m.writeIfNewer(n, key, val) {
				failed = append(failed, n)
			}
		}
		m.hint(id, val, &p, failed)
		if written == 0 {
			return sessionstore.ErrUnavailable
		}
		return nil
	}
	return sessionstore.ErrConflict
}

// writeReplicas writes val to each node read: CAS where it held a value,
// add where it held none. A CAS conflict or failed add on the first means
// another process wrote in between, and the caller starts over. The
// nodes that failed the write are appended to failed.
func (m *Memcached) writeReplicas(key []byte, reads []replicaRead, val []byte, failed []*node) (written int, _ []*node, conflict bool) {
	mt, _ := peek(val)
	exp := exptime(mt.expires)
	for i, r := range reads {
		var err error
		if r.found {
			err = r.node.store(memcache.OpCAS, key, val, r.cas, exp)
		} else {
			err = r.node.store(memcache.OpAdd, key, val, 0, exp)
		}
		switch {
		case err == nil:
			written++
		case m.check(r.node, err):
			failed = append(failed, r.node)
		case i == 0:
			return written, failed, true
		default:
			// The first replica took the write; only this one moved on.
			// Repair it unless it already holds something newer.
			if m.writeIfNewer(r.node, key, val) {
				written++
			} else {
				failed = append(failed, r.node)
			}
		}
	}
	return written, failed, false
}
