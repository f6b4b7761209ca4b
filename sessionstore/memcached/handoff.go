package memcached

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"sessionproxy/internal/memcache"
	"sessionproxy/sessionstore"
)

// Hinted handoff: a write or tombstone that one of a session's nodes
// missed because it was down is remembered here and replayed to the node
// when it answers again, before it serves reads. With a state directory
// (MemcachedOptions.StateDir) each hint is the missed write itself, kept in
// the node's hint file (hintfile.go), so that it survives a restart of the
// proxy and is replayed even while the replicas that took the write are
// away. Without one, hints are session IDs in memory, and the replay copies
// the newest version the other replicas hold. Either way replaying twice or
// late does no harm: writeIfNewer never puts an older version over a newer
// one.

// maxHints bounds the sessions a node's hints name (a hint file is also
// bounded by its size, MemcachedOptions.HintFileMax). Past it the node is
// marked for a full copy when it returns, which finds every session it
// should hold on the other nodes, so nothing is lost, only more work done.
const maxHints = 1 << 17

// handoff is one node's missed writes.
type handoff struct {
	mu       sync.Mutex
	refs     map[string]hintRef // by session ID: its newest hint
	overflow bool               // more missed than the hints hold: copy everything back
	recopy   bool               // a full copy was interrupted: do it again
	log      *hintLog           // nil: no state directory, hints live in memory only

	replayed atomic.Int64 // hints replayed to the node, for metrics
}

// pendingHint is one hint taken for replay.
type pendingHint struct {
	id  string
	ref hintRef
}

// add records that the node missed the write of val to id. It returns an
// error, once, when the hint could not be kept (the file is over its
// bound or cannot be written): the node is then marked for a full copy.
func (h *handoff) add(id, val []byte) error {
	var version uint64
	if mt, err := peek(val); err == nil {
		version = mt.version
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.addLocked(id, val, version)
}

// addIfDown is add if state (the node's) is still StateDown, and reports
// whether it was. The look and the hint are one step under h.mu, which
// catchUp's takes hold too: a hint added once the node left down is
// never replayed by the catch-up that its last take has ended (it waits
// for the next one, while the node, up, serves the version before the
// write). Not added, the caller writes the node itself (hint).
func (h *handoff) addIfDown(state *atomic.Int32, id, val []byte) (bool, error) {
	var version uint64
	if mt, err := peek(val); err == nil {
		version = mt.version
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if sessionstore.State(state.Load()) != sessionstore.StateDown {
		return false, nil
	}
	return true, h.addLocked(id, val, version)
}

// addLocked is add with h.mu held; version is val's.
func (h *handoff) addLocked(id, val []byte, version uint64) error {
	if h.refs == nil {
		h.refs = map[string]hintRef{}
	}
	if h.overflow {
		return nil // the full copy brings it
	}
	cur, ok := h.refs[string(id)]
	if ok && cur.version > version {
		return nil // a newer hint supersedes this one
	}
	ref := hintRef{off: -1, version: version}
	switch {
	case !ok && len(h.refs) >= maxHints:
		// The index of the hints is bounded in memory too: tiny
		// sessions would otherwise cost more memory than the file
		// holds on disk.
		return h.markFull(errTooManyHints)
	case h.log != nil:
		off, err := h.log.append(id, val)
		if errors.Is(err, errHintFull) && h.compact() {
			off, err = h.log.append(id, val)
		}
		if err != nil {
			return h.markFull(err)
		}
		ref.off, ref.gen = off, h.log.gen
	}
	h.refs[string(id)] = ref
	return nil
}

var errTooManyHints = fmt.Errorf("more than %d sessions missed", maxHints)

// compact rewrites a full hint file with the newest hint of each ID only,
// and reports whether that left a quarter of it free; called with h.mu
// held.
func (h *handoff) compact() bool {
	refs, err := h.log.compact(h.refs)
	if err != nil {
		return false
	}
	h.refs = refs
	return h.log.size <= h.log.max*3/4
}

// markFull marks the node for a full copy, on disk too when it has a hint
// file, because cause kept a hint from being recorded. Called with h.mu
// held.
func (h *handoff) markFull(cause error) error {
	h.overflow = true
	if h.log == nil {
		return cause
	}
	if err := h.log.setFull(true); err != nil {
		return fmt.Errorf("%w; the full-copy mark could not be written either (%v), so it lasts only while this process runs", cause, err)
	}
	return cause
}

func (h *handoff) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.refs)
}

// pending reports whether the node has missed anything: hints or a
// full-copy mark.
func (h *handoff) pending() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.refs) > 0 || h.overflow
}

// full reports whether the node is marked for a full copy.
func (h *handoff) full() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.overflow
}

// path is the hint file's name, for logs ("" without one).
func (h *handoff) path() string {
	if h.log == nil {
		return ""
	}
	return h.log.path
}

// take empties the handoff and returns what it held: the hints, whether
// they overflowed, and whether a full copy is due anyway (recopy). The
// records and the full-copy mark stay in the hint file until done: a
// process that stops in the middle of a replay leaves them for the next
// one.
func (h *handoff) take() (hints []pendingHint, overflow, recopy bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, ref := range h.refs {
		hints = append(hints, pendingHint{id, ref})
	}
	clear(h.refs)
	overflow, h.overflow = h.overflow, false
	recopy, h.recopy = h.recopy, false
	return hints, overflow, recopy
}

// putBack returns what a catch-up could not finish: hints not replayed,
// the overflow, and a full copy still due (recopy).
func (h *handoff) putBack(hints []pendingHint, overflow, recopy bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.refs == nil {
		h.refs = map[string]hintRef{}
	}
	for _, p := range hints {
		if h.log != nil && p.ref.off >= 0 && p.ref.gen != h.log.gen {
			// Its record was left out of a compaction made while it was
			// being replayed: the hint stays, replayed from the other
			// replicas (and, like any hint without a record, lasts only
			// while this process runs).
			p.ref.off = -1
		}
		if cur, ok := h.refs[p.id]; !ok || cur.version < p.ref.version {
			h.refs[p.id] = p.ref
		}
	}
	h.overflow = h.overflow || overflow
	h.recopy = h.recopy || recopy
}

// errHintMoved says that a hint's record is no longer where it was: the
// file was compacted or closed after the hint was taken.
var errHintMoved = errors.New("hint record moved by a compaction")

// value returns the missed write a hint holds, or nil when it holds none
// (no hint file).
func (h *handoff) value(id string, ref hintRef) ([]byte, error) {
	if ref.off < 0 {
		return nil, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.log == nil || ref.gen != h.log.gen {
		return nil, errHintMoved
	}
	return h.log.read(ref.off, id)
}

// done is called once the node is up after a catch-up (with a full copy
// if full): the full-copy mark is cleared unless the node was marked again
// meanwhile, and the hint file, if nothing is left to replay, is emptied.
func (h *handoff) done(full bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.log == nil {
		return nil
	}
	var err error
	if full && !h.overflow {
		err = h.log.setFull(false)
	}
	if len(h.refs) == 0 && !h.overflow {
		err = errors.Join(err, h.log.reset())
	}
	return err
}

// sync writes the hint file's new records to stable storage.
func (h *handoff) sync() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.log == nil {
		return nil
	}
	return h.log.sync()
}

// closeLog syncs and closes the hint file; it is removed if it holds
// nothing to replay.
func (h *handoff) closeLog() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.log == nil {
		return nil
	}
	err := h.log.close(len(h.refs) == 0 && !h.overflow)
	h.log = nil
	return err
}

// hint records the write of val to id for every node that should hold it
// and missed it: one that is down now (it failed during the write), and
// one that was down when the write chose its nodes but answers again
// since. The monitor may have taken that one's hints and even marked it up
// meanwhile, so it is brought the newest copy at once; a hint is left only
// if that fails. So is one the write chose that failed it (failed) and
// answers again since, the catch-up that took it back perhaps over:
// judged by its state alone, it took the write. A node seen down that
// leaves down before its hint is added (addIfDown) is one of those. It
// costs a few atomic loads when all took the write.
func (m *Memcached) hint(id, val []byte, p *placement, failed []*node) {
	for _, n := range p.owners(m.opts.Replicas) {
		if !n.writable() && m.addHintIfDown(n, id, val) {
			continue
		}
		if (!p.writes(n) || slices.Contains(failed, n)) && !m.copyOne(n, id) {
			m.addHint(n, id, val)
		}
	}
}

// addHint records a hint for n, and says so when it could not be kept.
func (m *Memcached) addHint(n *node, id, val []byte) {
	m.hintKept(n, n.handoff.add(id, val))
}

// addHintIfDown is addHint if n is still down (handoff.addIfDown), and
// reports whether it was.
func (m *Memcached) addHintIfDown(n *node, id, val []byte) bool {
	added, err := n.handoff.addIfDown(&n.state, id, val)
	m.hintKept(n, err)
	return added
}

// hintKept says so when a hint could not be kept (err).
func (m *Memcached) hintKept(n *node, err error) {
	if err != nil {
		m.logger().Error("memcached node: missed writes no longer recorded; it gets a full copy before it serves reads again",
			"node", n.ID, "file", n.handoff.path(), "error", err)
	}
}

// copyBatch is how many sessions a full copy moves per round trip, and
// copyPause the rest between batches, so that a catch-up of a million
// sessions does not starve the requests being served meanwhile.
var (
	copyBatch = 100
	copyPause = 2 * time.Millisecond
)

// catchUp makes a node that answers again whole: it replays the hints it
// missed and, when it lost its data (restarted) or the hints overflowed,
// copies back every session it should hold from the other nodes. Only then
// is it up. If the node fails meanwhile it is down again and the hints not
// yet replayed wait for its next return. It returns the nodes it could
// not read, being down (for its full copy, or for a hint's session held
// by no readable node): what only they hold is still to be copied to n
// once they answer (the monitor does, see reconcile).
//
// A node whose hints overflowed (or could not be written) missed writes
// that nothing records: it stays catching up, serving no reads, until its
// full copy has read every other node, so that a version it holds from
// before it went away is never served while the newer one is on a node
// that is away too.
func (m *Memcached) catchUp(n *node, full bool) (unread []*node) {
	start := time.Now()
	hints, overflow, recopy := n.handoff.take()
	full = full || overflow || recopy
	for i, h := range hints {
		if n.load() != sessionstore.StateCatchingUp || m.closing() {
			n.handoff.putBack(hints[i:], overflow, full)
			return nil
		}
		unread = m.replay(n, h, unread)
	}
	if full {
		// It reads every readable node, the ones a hint's replay found
		// unreadable included if they answer again meanwhile.
		var err error
		if unread, err = m.copyFromEach(n, m.nodes); err != nil {
			n.handoff.putBack(nil, overflow, true)
			if errors.Is(err, errClosed) {
				return nil
			}
			// Still catching up: the monitor tries again next interval.
			m.logger().Warn("memcached catch-up: full copy failed, trying again", "node", n.ID, "error", err)
			return nil
		}
		if overflow && len(unread) > 0 {
			n.handoff.putBack(nil, true, true)
			m.logger().Warn("memcached node missed writes that no hint records: it serves no reads until it has been copied from every other node",
				"node", n.ID, "waiting_for", nodeIDs(unread))
			return unread
		}
	}
	// Writes that chose their nodes just before the node came back may
	// have left hints after the first take: replay those too.
	late, lateOverflow, _ := n.handoff.take()
	for _, h := range late {
		unread = m.replay(n, h, unread)
	}
	if lateOverflow || !n.state.CompareAndSwap(int32(sessionstore.StateCatchingUp), int32(sessionstore.StateUp)) {
		n.handoff.putBack(late, lateOverflow, full)
		return nil
	}
	if err := n.handoff.done(full); err != nil {
		m.logger().Warn("hint file: could not be emptied after its replay (replaying it again is harmless)",
			"node", n.ID, "file", n.handoff.path(), "error", err)
	}
	took := time.Since(start)
	n.lastCatchupMs.Store(took.Milliseconds())
	n.catchups.Add(1)
	m.logger().Info("memcached node up", "node", n.ID, "addr", n.Addr, "catch_up", took.String(),
		"replayed", len(hints)+len(late), "full_copy", full)
	return unread
}

func nodeIDs(nodes []*node) []string {
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID
	}
	return ids
}

// replay brings n the write of one of its hints. When that fails, the
// hint is kept if n failed meanwhile (its next catch-up replays it);
// otherwise the session may be held only by a node not readable now (it
// took the write n missed, then failed too): those nodes are added to
// unread, for the monitor to copy from once they answer. Dropped, the
// session would stay on that node alone.
func (m *Memcached) replay(n *node, h pendingHint, unread []*node) []*node {
	if m.replayOne(n, h) {
		n.handoff.replayed.Add(1)
		return unread
	}
	if !n.writable() {
		n.handoff.putBack([]pendingHint{h}, false, false)
		return unread
	}
	return addUnreadable(unread, m.nodes, n)
}

// replayOne writes to n the missed write a hint holds, or, for a hint
// without one (no hint file, or a record that no longer reads), the newest
// version the readable replicas hold. It reports whether n holds it now.
func (m *Memcached) replayOne(n *node, h pendingHint) bool {
	if h.ref.off >= 0 {
		val, err := n.handoff.value(h.id, h.ref)
		if err == nil && val != nil {
			var kb [64]byte
			return m.writeIfNewer(n, m.appendKey(kb[:0], []byte(h.id)), val)
		}
		m.logger().Warn("hint file: a record no longer reads; copying its session from the other replicas",
			"node", n.ID, "file", n.handoff.path(), "offset", h.ref.off, "error", err)
	}
	return m.copyOne(n, []byte(h.id))
}

// addUnreadable adds to dst each node of nodes, n excepted, that is not
// readable and not in dst yet.
func addUnreadable(dst, nodes []*node, n *node) []*node {
	for _, o := range nodes {
		if o != n && !o.readable() && !slices.Contains(dst, o) {
			dst = append(dst, o)
		}
	}
	return dst
}

// copyOne writes to n the newest version of id that its readable replicas
// hold, unless n holds that version or a newer one. It reports whether n
// holds it now. (What only a proxy's hot tier held while every node was
// down is written back by that proxy's Store.)
func (m *Memcached) copyOne(n *node, id []byte) bool {
	var p placement
	var kb [64]byte
	key := m.appendKey(kb[:0], id)
	var buf [maxNodes]replicaRead
	reads := m.readReplicas(key, m.replicas(id, &p), nil, buf[:])
	defer releaseReads(reads)
	i := newest(reads)
	if i < 0 {
		return false // held nowhere: expired or never written
	}
	return m.writeIfNewer(n, key, reads[i].val)
}

// copyAll copies to n every session it should hold that the other
// readable nodes have in a newer version or n lacks: memcached lists its
// keys with lru_crawler metadump. A catch-up runs it, and so does every
// proxy at start, so that replicas that drifted apart while no proxy ran
// (a tombstone one missed) are made whole again.
func (m *Memcached) copyAll(n *node) error {
	_, err := m.copyFromEach(n, m.nodes)
	return err
}

// copyFromEach is copyAll from the nodes of from only, and returns those
// it did not copy from: the ones not readable (down, or catching up
// themselves), which may hold sessions n lacks, and after an error the
// source that failed and the ones after it.
func (m *Memcached) copyFromEach(n *node, from []*node) (left []*node, err error) {
	for i, src := range from {
		switch {
		case src == n:
		case !src.readable():
			left = append(left, src)
		default:
			if err := m.copyFrom(src, n); err != nil {
				return append(left, from[i:]...), err
			}
		}
	}
	return left, nil
}

// copyFrom copies to n the sessions src holds that n should hold. The
// listing is read to its end first, as fast as memcached sends it, into an
// unlinked temporary file of the keys n should hold; the copy then reads
// the file batch by batch. So memory holds one batch of keys however many
// src holds, and the listing, which walks src's hash table and delays its
// gets while it is open, stays open only as long as memcached takes to
// send it, not as long as the copy.
func (m *Memcached) copyFrom(src, n *node) error {
	f, err := os.CreateTemp("", "sessionproxy-keys-*")
	if err != nil {
		return fmt.Errorf("full copy to %s: %w", n.ID, err)
	}
	os.Remove(f.Name()) // gone with the process, whatever happens to it
	defer f.Close()
	w := bufio.NewWriterSize(f, 64<<10)
	err = m.eachKey(src, func(key []byte) error {
		if m.closing() {
			return errClosed
		}
		var p placement
		m.place(key[len(m.opts.KeyPrefix):], &p)
		if !p.holds(n, m.opts.Replicas) {
			return nil
		}
		w.Write(key)
		return w.WriteByte('\n') // keys hold no white space
	})
	var ne net.Error
	if errors.As(err, &ne) {
		// src refused or dropped the listing, or hung: it is down, as
		// any other traffic would find, so that a catch-up waits for it
		// instead of listing it again and again.
		m.markDown(src, err)
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		return err
	}
	keys := bufio.NewScanner(bufio.NewReaderSize(f, 64<<10))
	batch := make([]string, 0, copyBatch)
	pause := time.NewTimer(copyPause)
	defer pause.Stop()
	for keys.Scan() {
		batch = append(batch, keys.Text())
		if len(batch) < copyBatch {
			continue
		}
		if err := m.copyBatch(src, n, batch); err != nil {
			return err
		}
		batch = batch[:0]
		pause.Reset(copyPause)
		select {
		case <-m.closed:
			return errClosed
		case <-pause.C:
		}
	}
	if err := keys.Err(); err != nil {
		return fmt.Errorf("full copy to %s: reading back the keys: %w", n.ID, err)
	}
	return m.copyBatch(src, n, batch)
}

// copyBatch copies keys from src to dst: first the version flags of
// every key on both sides (one pipelined write and read each), then, for
// the keys whose versions may differ, one batch of gets on each side (all
// its commands in one write) and one write per session dst lacks or holds
// an older version of. Replicas that agree, as they do at most starts, so
// cost no value read.
func (m *Memcached) copyBatch(src, dst *node, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	if !dst.writable() {
		return fmt.Errorf("node %s is down", dst.ID)
	}
	keys, err := m.differing(src, dst, keys)
	if err != nil || len(keys) == 0 {
		return err
	}
	bkeys := byteKeys(keys)
	have, err := getAll(src, bkeys)
	defer releaseCalls(have)
	if err != nil {
		m.check(src, err)
		return fmt.Errorf("reading the sessions to copy from %s: %w", src.ID, err)
	}
	held, err := getAll(dst, bkeys)
	defer releaseCalls(held)
	if err != nil {
		m.check(dst, err)
		return fmt.Errorf("reading the sessions %s holds: %w", dst.ID, err)
	}
	for i, key := range bkeys {
		if have[i].Wait() != nil {
			continue // gone since the listing
		}
		val := have[i].Value()
		mt, err := peek(val)
		if err != nil {
			continue
		}
		if held[i].Wait() == nil {
			if om, err := peek(held[i].Value()); err == nil && om.version >= mt.version {
				continue
			}
		}
		if m.writeIfNewer(dst, key, val) {
			dst.copied.Add(1)
		} else if !dst.writable() {
			return fmt.Errorf("node %s failed", dst.ID)
		}
	}
	return nil
}

// getAll gets keys from n in one batch, its commands in one write, and
// waits for every answer. A miss is not an error: its call says so. The
// error is the first other one. Release the calls after use, also on an
// error.
func getAll(n *node, keys [][]byte) ([]*memcache.Call, error) {
	calls := make([]*memcache.Call, len(keys))
	for i := range calls {
		calls[i] = memcache.NewCall(memcache.OpGet, nil, 0, 0, 0)
	}
	n.pipe.StartAll(calls, keys)
	var first error
	for _, c := range calls {
		if err := c.Wait(); err != nil && !errors.Is(err, memcache.ErrCacheMiss) {
			first = cmp.Or(first, err)
		}
	}
	return calls, first
}

// byteKeys is keys as the client takes them.
func byteKeys(keys []string) [][]byte {
	b := make([][]byte, len(keys))
	for i, k := range keys {
		b[i] = []byte(k)
	}
	return b
}

// differing returns the keys src holds whose copy on dst may be older:
// dst lacks it, or holds it with other version flags, or one side holds
// it without them (versionFlags). It reads the client flags only, never
// the values.
func (m *Memcached) differing(src, dst *node, keys []string) ([]string, error) {
	bkeys := byteKeys(keys)
	have, held := flagCalls(len(keys)), flagCalls(len(keys))
	defer releaseCalls(have)
	defer releaseCalls(held)
	src.pipe.StartAll(have, bkeys)
	dst.pipe.StartAll(held, bkeys)
	var need []string
	var srcErr, dstErr error
	for i, k := range keys {
		serr, derr := have[i].Wait(), held[i].Wait()
		switch {
		case serr != nil && serr != memcache.ErrCacheMiss:
			srcErr = cmp.Or(srcErr, serr)
		case derr != nil && derr != memcache.ErrCacheMiss:
			dstErr = cmp.Or(dstErr, derr)
		case serr != nil:
			// gone since the listing
		case derr == nil && have[i].Flags() != 0 && have[i].Flags() == held[i].Flags():
			// the same version on both
		default:
			need = append(need, k)
		}
	}
	if srcErr != nil {
		m.check(src, srcErr)
		return nil, fmt.Errorf("reading the versions to copy from %s: %w", src.ID, srcErr)
	}
	if dstErr != nil {
		m.check(dst, dstErr)
		return nil, fmt.Errorf("reading the versions %s holds: %w", dst.ID, dstErr)
	}
	return need, nil
}

// flagCalls returns n pooled calls asking for a key's flags.
func flagCalls(n int) []*memcache.Call {
	calls := make([]*memcache.Call, n)
	for i := range calls {
		calls[i] = memcache.NewCall(memcache.OpFlags, nil, 0, 0, 0)
	}
	return calls
}

func releaseCalls(calls []*memcache.Call) {
	for _, c := range calls {
		c.Release()
	}
}
