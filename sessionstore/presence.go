package sessionstore

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"sessionproxy/internal/memcache"
)

// Presence marks: every process keeps a short-lived mark of its own on the
// shared store, so that a process can tell whether it is the only one
// using it. With LocalTTL AutoTTL, the hot tier is trusted as with 0 (this
// process is the one writer of its sessions) while no other process's mark
// is there, and bounded to AutoCrowdedTTL once one is: two proxies over the
// same nodes with the defaults serve a logout through the other within
// about a second, instead of for as long as a hot tier keeps the session
// (issue 22).
//
// On memcached, a process's mark is the key <prefix>proxy:<instance>
// holding its refresh interval in milliseconds, refreshed every probe
// interval and expiring after MarkTTL by the node's own clock; the roster <prefix>proxies lists the instances that wrote
// one, so that a process finds the others with one get and a get of each
// listed mark, never a scan. A process adds itself to the roster with CAS
// and drops the instances whose marks have expired. Every node that takes
// writes carries the marks and a roster, so that proxies that share any
// one node answering see each other.
//
// A process that finds others when it starts waits, before it serves, for
// as long as they take to see it (their refresh interval, from their
// marks): until then they trust their hot tiers and write sessions over
// whatever is held, which would undo a change (a logout) made through the
// new process.

// A PeerWatcher is a Shared store that keeps this process's presence mark
// on its servers and reports the other processes' marks.
type PeerWatcher interface {
	// WatchPeers has fn called with the number of other processes whose
	// marks are on the store (PeersUnknown while no server has answered
	// since the start), whenever it changes from what fn was last told (at
	// once if it is not 0). fn is called from one goroutine at a time.
	WatchPeers(fn func(others int))
}

// MarkTTL is how long a presence mark outlives its last refresh: a few
// refreshes, so that one slow round does not make the process look gone,
// and longer than AutoCrowdedTTL plus a refresh, so that when a process
// is seen to have gone, every hot-tier copy read while it was there has
// expired (a process going back to trusting its copies must not trust one
// older than the other's last write).
func MarkTTL(interval time.Duration) time.Duration {
	return max(3*time.Second, 3*interval)
}

// presenceInterval is how often marks are refreshed and read: the probe
// interval, but not so often that a store tuned for fast failure
// detection spends its nodes on marks.
func presenceInterval(probe time.Duration) time.Duration {
	return max(probe, 100*time.Millisecond)
}

// NewInstanceID returns a random instance ID (16 hex digits), for
// Options.InstanceID.
func NewInstanceID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Roster limits: an ID is 1 to MaxInstanceID bytes of [0-9A-Za-z_-], and
// a roster lists at most maxRoster of them (past it, a process is not
// listed, and others see it by no mark: a deployment of more than 256
// proxies over one set of nodes is far beyond what it is built for).
const (
	MaxInstanceID = 64
	maxRoster     = 256
)

// ValidInstanceID reports whether id may name a process in a roster.
func ValidInstanceID(id string) bool {
	if len(id) == 0 || len(id) > MaxInstanceID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// errBadRoster is parseRoster's answer to a value that is not a roster;
// the caller starts a new one over it.
var errBadRoster = errors.New("sessionstore: unreadable presence roster")

// parseRoster reads a roster: instance IDs separated by single spaces,
// each listed once, at most maxRoster.
func parseRoster(b []byte) ([]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var ids []string
	for _, f := range bytes.Split(b, []byte{' '}) {
		id := string(f)
		if !ValidInstanceID(id) || slices.Contains(ids, id) || len(ids) == maxRoster {
			return nil, errBadRoster
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// appendRoster appends the roster of ids to b.
func appendRoster(b []byte, ids []string) []byte {
	for i, id := range ids {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, id...)
	}
	return b
}

// maxMarkInterval bounds the refresh interval a mark may announce, and so
// how long a starting process waits for the others to see it.
const maxMarkInterval = 10 * time.Second

// appendMark appends the value of a presence mark: the refresh interval in
// milliseconds.
func appendMark(b []byte, interval time.Duration) []byte {
	return strconv.AppendInt(b, interval.Milliseconds(), 10)
}

// parseMark reads a presence mark's refresh interval: 1 to 10000 (ms) in
// decimal digits. A mark it cannot read (another version's) is still a
// live process, refreshing at DefaultProbeInterval.
func parseMark(b []byte) time.Duration {
	if len(b) == 0 || len(b) > 5 {
		return DefaultProbeInterval
	}
	ms := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return DefaultProbeInterval
		}
		ms = ms*10 + int(c-'0')
	}
	d := time.Duration(ms) * time.Millisecond
	if d <= 0 || d > maxMarkInterval {
		return DefaultProbeInterval
	}
	return d
}

// presence runs the presence rounds of a memcached store until it is
// closed: one at start, before the store is handed out, then one every
// presenceInterval.
func (m *Memcached) presence() {
	defer m.wg.Done()
	t := time.NewTicker(presenceInterval(m.opts.ProbeInterval))
	defer t.Stop()
	for {
		select {
		case <-m.closed:
			return
		case <-t.C:
		}
		m.presenceRound()
	}
}

// presenceRound refreshes this process's mark on every node that takes
// writes and counts the other processes seen on any of them. When no node
// answered, what others do is unknown and the last count stands. It
// returns the longest refresh interval the others' marks announce (0 when
// there are none).
func (m *Memcached) presenceRound() time.Duration {
	var others []string
	var longest time.Duration
	answered := false
	for _, n := range m.nodes {
		if !n.writable() {
			continue
		}
		seen, interval, ok := m.presenceOn(n)
		if !ok {
			continue
		}
		answered = true
		longest = max(longest, interval)
		for _, id := range seen {
			if !slices.Contains(others, id) {
				others = append(others, id)
			}
		}
	}
	switch {
	case answered:
		m.peersKnown = true
		m.peers.Set(m.settle(len(others)))
	case !m.peersKnown:
		// No node has answered since this process started: whether
		// others use the nodes is unknown, and they are assumed. Taken
		// for alone, a proxy that started on a loaded machine trusted
		// its hot tier for good and kept changes that no replica took,
		// while others served the same sessions (docs/guarantees.md).
		m.peers.Set(PeersUnknown)
	}
	return longest
}

// settle is the count of other processes a round that saw n of them
// reports: n, but none only once no other mark has been seen for MarkTTL.
// A process that misses its refreshes for a while (its rounds time out on
// a loaded machine) has its marks expire although it still serves; one
// round that saw none of the others made a proxy trust its hot tier
// again, beside proxies that were changing its sessions (the fault
// harness, load average 50: "no other proxy ... any more" 0.6 s after
// "another proxy seen", with three running). Only the presence rounds
// call it, one at a time.
func (m *Memcached) settle(n int) int {
	switch {
	case n > 0:
		m.lastOthers, m.noneSince = n, time.Time{}
	case m.lastOthers > 0:
		if m.noneSince.IsZero() {
			m.noneSince = time.Now()
		}
		if time.Since(m.noneSince) < MarkTTL(m.opts.ProbeInterval) {
			return m.lastOthers
		}
		m.lastOthers = 0
	}
	return n
}

// PeersUnknown is the count of other processes a PeerCount holds while
// no presence round has answered: others are assumed, as if seen.
const PeersUnknown = -1

// SeenBy is how long a store waits, at start, until the processes that
// were there before this one have had a presence round since its mark
// went up: the longest of their intervals, and a margin for the round
// itself.
func SeenBy(longest time.Duration) time.Duration {
	if longest <= 0 {
		return 0
	}
	return longest + max(longest/4, 100*time.Millisecond)
}

func (m *Memcached) markKey(id string) []byte {
	return []byte(m.opts.KeyPrefix + "proxy:" + id)
}

func (m *Memcached) rosterKey() []byte { return []byte(m.opts.KeyPrefix + "proxies") }

// presenceOn refreshes this process's mark on n, reads n's roster and the
// marks it lists, and keeps the roster to the live instances and this
// one. It returns the other instances whose marks n holds and the longest
// interval they announce, and false if n failed.
func (m *Memcached) presenceOn(n *node) ([]string, time.Duration, bool) {
	self := m.opts.InstanceID
	ttl := int32((MarkTTL(m.opts.ProbeInterval) + time.Second - 1) / time.Second)
	mark := appendMark(nil, presenceInterval(m.opts.ProbeInterval))
	if err := n.store(memcache.OpSet, m.markKey(self), mark, 0, ttl); m.check(n, err) || err != nil {
		return nil, 0, false
	}
	// Two processes that start together both read the roster before
	// either wrote it: the one whose write lost reads it again at once.
	for try := 0; ; try++ {
		live, longest, lost, ok := m.presenceRoster(n, self)
		if !ok || !lost || try == 2 {
			return live, longest, ok
		}
	}
}

// presenceRoster reads n's roster and the marks it lists and writes the
// roster back as it should be. It returns the other live instances, the
// longest interval they announce, whether its write lost to another
// process's, and false if n failed.
func (m *Memcached) presenceRoster(n *node, self string) (live []string, longest time.Duration, lost, ok bool) {
	rkey := m.rosterKey()
	c, err := n.pipe.Get(rkey)
	var listed []string
	found := err == nil
	if found {
		listed, _ = parseRoster(c.Value()) // an unreadable roster is replaced
	}
	cas := c.CAS()
	c.Release()
	if m.check(n, err) {
		return nil, 0, false, false
	}
	// The others' marks, all in flight at once.
	var calls []*memcache.Call
	var ids []string
	for _, id := range listed {
		if id == self {
			continue
		}
		call := memcache.NewCall(memcache.OpGet, nil, 0, 0, 0)
		n.pipe.Start(call, m.markKey(id))
		calls, ids = append(calls, call), append(ids, id)
	}
	failed := false
	for i, call := range calls {
		err := call.Wait()
		if err == nil {
			live = append(live, ids[i])
			longest = max(longest, parseMark(call.Value()))
		}
		call.Release()
		if m.check(n, err) {
			failed = true
		}
	}
	if failed {
		return nil, 0, false, false
	}
	// The roster as it should be: the live instances in the order listed,
	// and this one.
	var want []string
	for _, id := range listed {
		if id == self || slices.Contains(live, id) {
			want = append(want, id)
		}
	}
	if !slices.Contains(want, self) && len(want) < maxRoster {
		want = append(want, self)
	}
	if !found || !slices.Equal(want, listed) {
		// Another process may write the roster in between: CAS (or add),
		// and after a conflict presenceOn reads it again. The roster does
		// not expire: it is read every round, so memcached does not evict
		// it, and what it lists that is gone is dropped here.
		val := appendRoster(nil, want)
		if found {
			err = n.store(memcache.OpCAS, rkey, val, cas, 0)
		} else {
			err = n.store(memcache.OpAdd, rkey, val, 0, 0)
		}
		if m.check(n, err) {
			return nil, 0, false, false
		}
		lost = err != nil
	}
	return live, longest, lost, true
}

// WatchPeers has fn told how many other processes keep presence marks on
// the nodes (PeerWatcher).
func (m *Memcached) WatchPeers(fn func(others int)) { m.peers.Watch(fn) }

// PeerCount is the count of other processes last seen, and who is told of
// its changes: what a shared store that keeps presence marks reports
// through PeerWatcher. The zero value counts none and tells no one.
type PeerCount struct {
	mu sync.Mutex // protects the fields below, and orders calls of fn
	n  int
	fn func(others int)
}

// Set records n and tells the watcher if it changed.
func (p *PeerCount) Set(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n == p.n {
		return
	}
	p.n = n
	if p.fn != nil {
		p.fn(n)
	}
}

// Watch makes fn the watcher and tells it the count unless it is 0.
func (p *PeerCount) Watch(fn func(others int)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fn = fn
	if p.n != 0 {
		fn(p.n)
	}
}

// watchPeers subscribes the Store to the other processes' presence marks
// when its shared store keeps them.
func (s *Store) watchPeers() {
	if pw, ok := s.shared.(PeerWatcher); ok {
		pw.WatchPeers(s.peersChanged)
	}
}

// peersChanged is told how many other processes keep presence marks on
// the shared store. Under AutoTTL it bounds the hot tier while there are
// any; with async writes, which need one proxy per set of sessions, any
// is an error to log. Each change between none and some is logged once.
func (s *Store) peersChanged(others int) {
	crowded := others != 0 // PeersUnknown too
	s.others.Store(crowded)
	if crowded == s.crowdedSeen {
		return
	}
	s.crowdedSeen = crowded
	where := "on the " + s.shared.Kind() + " nodes"
	switch {
	case others == PeersUnknown && s.auto:
		s.crowded.Store(true)
		s.boundLocal()
		s.logger().Warn("no " + s.shared.Kind() + " node answered yet: other proxies are assumed until one does; local cache ttl " + AutoCrowdedTTL.String())
	case others == PeersUnknown:
		// Not auto: the ttl is as set, and s.others keeps changes from
		// being kept (keeps); nothing to log until a node answers.
	case s.opts.Async && crowded:
		s.logger().Error("another proxy seen "+where+": write: async needs one proxy per set of sessions, or changes made through the others are lost",
			"others", others)
	case s.opts.Async:
		s.logger().Info("no other proxy " + where + " any more")
	case s.auto && crowded:
		s.crowded.Store(true)
		s.boundLocal()
		s.logger().Warn("another proxy seen "+where+"; local cache ttl "+AutoCrowdedTTL.String(), "others", others)
	case s.auto:
		s.crowded.Store(false)
		s.logger().Info("no other proxy " + where + " any more; local cache trusted again")
	case crowded && s.mode == trustedMode{}:
		// A ttl of 0 that was set is kept as set, but it is worth a word.
		s.logger().Warn("another proxy seen "+where+"; local_cache.ttl: 0 is kept as set, so this proxy serves sessions from its hot tier whatever the others change (ttl: auto bounds it)",
			"others", others)
	}
}

// boundLocal shortens the hot tier's copies to AutoCrowdedTTL, so that
// those cached while this process was alone are re-read as soon as those
// cached from now on. A change kept only here while the shared store was
// down keeps its copy until it is written back.
func (s *Store) boundLocal() {
	secs := int((AutoCrowdedTTL + time.Second - 1) / time.Second)
	it := s.local.NewIterator()
	for e := it.Next(); e != nil; e = it.Next() {
		s.mu.Lock()
		_, dirty := s.dirty[string(e.Key)]
		s.mu.Unlock()
		if !dirty {
			s.local.Touch(e.Key, secs)
		}
	}
}

// Crowded reports whether the hot tier is bounded to AutoCrowdedTTL
// because another process uses the shared store (LocalTTL AutoTTL).
func (s *Store) Crowded() bool { return s.crowded.Load() }
