package memcached

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"time"

	"sessionproxy/internal/memcache"
	"sessionproxy/sessionstore"
)

// Presence marks (sessionstore's peers.go says what they are for).
//
// On memcached, a process's mark is the key <prefix>proxy:<instance>
// holding its refresh interval in milliseconds, refreshed every probe
// interval and expiring after MarkTTL by the node's own clock; the roster <prefix>proxies lists the instances that wrote
// one, so that a process finds the others with one get and a get of each
// listed mark, never a scan. A process adds itself to the roster with CAS
// and drops the instances whose marks have expired. Every node that takes
// writes carries the marks and a roster, so that proxies that share any
// one node answering see each other.

// presenceInterval is how often marks are refreshed and read: the probe
// interval, but not so often that a store tuned for fast failure
// detection spends its nodes on marks.
func presenceInterval(probe time.Duration) time.Duration {
	return max(probe, 100*time.Millisecond)
}

// Roster limits: an ID is 1 to sessionstore.MaxInstanceID bytes of
// [0-9A-Za-z_-], and a roster lists at most maxRoster of them (past it, a process is not
// listed, and others see it by no mark: a deployment of more than 256
// proxies over one set of nodes is far beyond what it is built for).
const (
	maxRoster = 256
)

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
		if !sessionstore.ValidInstanceID(id) || slices.Contains(ids, id) || len(ids) == maxRoster {
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
		return sessionstore.DefaultProbeInterval
	}
	ms := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return sessionstore.DefaultProbeInterval
		}
		ms = ms*10 + int(c-'0')
	}
	d := time.Duration(ms) * time.Millisecond
	if d <= 0 || d > maxMarkInterval {
		return sessionstore.DefaultProbeInterval
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
		m.peers.Set(sessionstore.PeersUnknown)
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
		if time.Since(m.noneSince) < sessionstore.MarkTTL(m.opts.ProbeInterval) {
			return m.lastOthers
		}
		m.lastOthers = 0
	}
	return n
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
	ttl := int32((sessionstore.MarkTTL(m.opts.ProbeInterval) + time.Second - 1) / time.Second)
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
