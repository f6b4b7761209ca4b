package sessionstore

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/coocood/freecache"
	"golang.org/x/sync/singleflight"
)

// Options configure a Store. A zero field means the default in its comment.
type Options struct {
	Nodes        []Node        // memcached nodes; none keeps sessions in the local tier only
	Replicas     int           // copies of each session on distinct nodes (default 2)
	KeyPrefix    string        // memcached key prefix (default "sp:")
	Timeout      time.Duration // per memcached operation and dial (default 100ms)
	MaxIdleConns int           // idle connections kept per node (default 64)

	TTL     time.Duration // sliding idle lifetime of a session (default 30m)
	MaxSize int           // largest encoded session (default 64 KiB)

	LocalSize  int              // bytes of the freecache hot tier; 0 turns it off
	LocalCache *freecache.Cache // if not nil, the hot tier to use instead of a new one (a reload keeps its predecessor's)
	LocalTTL   time.Duration    // 0: trust local copies; >0: re-read from memcached after this

	// Async writes to memcached in the background: the local tier holds
	// the new version at once (read-your-writes through this proxy) and a
	// queue of AsyncQueue sessions (default 4096) feeds the writers; when
	// it is full the write is done inline, never dropped. It needs the
	// local tier as the authoritative copy, so it is ignored when
	// LocalSize is 0 or LocalTTL is set.
	Async      bool
	AsyncQueue int

	ProbeInterval time.Duration // how often a down node is pinged (default 1s)
	Logger        *slog.Logger  // node state changes (default slog.Default())
}

// Source says where Load found a session.
type Source int

// Sources of a loaded session.
const (
	FromLocal Source = iota
	FromMemcached
)

// String returns "local" or "memcached", the names used in metrics and logs.
func (s Source) String() string {
	if s == FromLocal {
		return "local"
	}
	return "memcached"
}

// Store holds sessions: an in-process freecache tier in front of memcached
// nodes, each session on Replicas of them chosen by rendezvous hashing.
// Safe for concurrent use by multiple goroutines.
type Store struct {
	opts  Options
	local *freecache.Cache // nil when off
	nodes []*node

	// stripes serialise the writes of one session within this process, so
	// that concurrent requests merge their changes instead of racing on
	// CAS; across processes, memcached's CAS does it.
	stripes [256]sync.Mutex

	flight singleflight.Group // merges concurrent memcached loads of one session

	mu    sync.Mutex          // protects dirty
	dirty map[string]struct{} // sessions changed while no node could take them

	async *asyncState // nil unless Options.Async

	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// New returns a Store. It fails if the options leave nowhere to keep
// sessions (no nodes and no local tier) or name too many nodes.
func New(o Options) (*Store, error) {
	if o.Replicas <= 0 {
		o.Replicas = 2
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = "sp:"
	}
	if o.Timeout <= 0 {
		o.Timeout = 100 * time.Millisecond
	}
	if o.MaxIdleConns <= 0 {
		o.MaxIdleConns = 64
	}
	if o.TTL <= 0 {
		o.TTL = 30 * time.Minute
	}
	if o.MaxSize <= 0 {
		o.MaxSize = 64 << 10
	}
	if len(o.Nodes) == 0 && o.LocalSize <= 0 && o.LocalCache == nil {
		return nil, errors.New("sessionstore: no memcached nodes and no local tier: sessions would be kept nowhere")
	}
	if len(o.Nodes) > maxNodes {
		return nil, fmt.Errorf("sessionstore: at most %d memcached nodes", maxNodes)
	}
	s := &Store{opts: o, dirty: map[string]struct{}{}, closed: make(chan struct{})}
	switch {
	case o.LocalCache != nil:
		s.local = o.LocalCache
	case o.LocalSize > 0:
		s.local = freecache.NewCache(o.LocalSize)
	}
	for _, n := range o.Nodes {
		s.nodes = append(s.nodes, newNode(n, o.Timeout, o.MaxIdleConns))
	}
	for _, n := range s.nodes {
		s.wg.Add(1)
		go s.monitor(n)
	}
	if o.Async && s.local != nil && o.LocalTTL == 0 && len(s.nodes) > 0 {
		s.startAsync()
	}
	return s, nil
}

// Close stops background probes and writers; call Flush first to write
// what is queued. The Store must not be used afterwards; closing it again
// does nothing.
func (s *Store) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
	s.wg.Wait()
}

// Embedded reports whether the store has no memcached nodes and keeps
// sessions in this process only.
func (s *Store) Embedded() bool { return len(s.nodes) == 0 }

// Local returns the hot tier, or nil; for statistics.
func (s *Store) Local() *freecache.Cache { return s.local }

// NodeState is one memcached node's configuration, health and catch-up
// counters.
type NodeState struct {
	Node
	State           State
	Up              bool          // State is StateUp: the node serves reads
	HandoffPending  int           // missed writes waiting for the node's return
	HandoffReplayed int64         // missed writes replayed to it since start
	Copied          int64         // sessions copied back by full copies
	Catchups        int64         // completed catch-ups
	LastCatchup     time.Duration // how long the last catch-up took
}

// Nodes returns every node and its state, in configuration order.
func (s *Store) Nodes() []NodeState {
	out := make([]NodeState, len(s.nodes))
	for i, n := range s.nodes {
		st := n.load()
		out[i] = NodeState{
			Node: n.Node, State: st, Up: st == StateUp,
			HandoffPending:  n.handoff.len(),
			HandoffReplayed: n.handoff.replayed.Load(),
			Copied:          n.copied.Load(),
			Catchups:        n.catchups.Load(),
			LastCatchup:     time.Duration(n.lastCatchupMs.Load()) * time.Millisecond,
		}
	}
	return out
}

func (s *Store) probeInterval() time.Duration {
	if s.opts.ProbeInterval > 0 {
		return s.opts.ProbeInterval
	}
	return time.Second
}

func (s *Store) key(id []byte) string { return s.opts.KeyPrefix + string(id) }

// expiry is the memcached lifetime of a write made now: the TTL plus a
// quarter, because an unchanged session is only rewritten once a quarter of
// the TTL has passed since its last write (see NeedsRefresh).
func (s *Store) expiry() int32 {
	return s.expiryAfter(time.Now().Unix())
}

// expiryAfter is the memcached lifetime left to a copy last written at
// touched (unix seconds): a repaired replica expires with its source.
func (s *Store) expiryAfter(touched int64) int32 {
	now := time.Now().Unix()
	secs := touched + int64((s.opts.TTL+s.opts.TTL/4+time.Second-1)/time.Second) - now
	secs = max(secs, 1)
	if secs > 30*24*3600 {
		// memcached reads larger values as a unix time.
		return int32(now + secs)
	}
	return int32(secs)
}

// localExpiry is the freecache lifetime of an entry written or read now.
func (s *Store) localExpiry(sess *Session) int {
	left := sess.Touched + int64((s.opts.TTL+s.opts.TTL/4)/time.Second) - time.Now().Unix()
	if s.opts.LocalTTL > 0 {
		left = min(left, int64((s.opts.LocalTTL+time.Second-1)/time.Second))
	}
	return int(max(left, 1))
}

// NeedsRefresh reports whether a session that is being used but not
// changed should be written again to keep it alive: once a quarter of the
// TTL has passed since its last write.
func (s *Store) NeedsRefresh(sess *Session) bool {
	return time.Now().Unix()-sess.Touched >= int64(s.opts.TTL/4/time.Second)
}

// setLocal caches an encoded session. An entry too large for freecache
// (about LocalSize/1024) is simply not cached locally.
func (s *Store) setLocal(id, enc []byte, sess *Session) {
	if s.local == nil {
		return
	}
	if err := s.local.Set(id, enc, s.localExpiry(sess)); err != nil {
		s.local.Del(id)
	}
}

// Load reads the session id into out: from the local tier, else from its
// memcached replicas, taking the highest version and repairing replicas
// that hold an older one or none. It returns ErrNotFound when no replica
// has it (or it was invalidated) and ErrUnavailable when none could answer.
func (s *Store) Load(id []byte, out *Session) (Source, error) {
	out.ID = append(out.ID[:0], id...)
	if s.local != nil {
		err := s.local.GetFn(id, out.Decode)
		if err == nil {
			if out.Deleted {
				return FromLocal, ErrNotFound
			}
			return FromLocal, nil
		}
	}
	if len(s.nodes) == 0 {
		return FromLocal, ErrNotFound
	}
	v, err, _ := s.flight.Do(string(id), func() (any, error) { return s.loadRemote(id) })
	if err != nil {
		return FromMemcached, err
	}
	if err := out.Decode(v.([]byte)); err != nil {
		return FromMemcached, err
	}
	if out.Deleted {
		return FromMemcached, ErrNotFound
	}
	return FromMemcached, nil
}

// replicaRead is what one replica answered.
type replicaRead struct {
	node    *node
	item    *memcache.Item // nil: miss
	version uint64
}

// readReplicas gets id from each node with gets (so CAS IDs are known).
// Nodes that fail are marked down and left out of the result.
func (s *Store) readReplicas(key string, nodes []*node, out []replicaRead) []replicaRead {
	out = out[:0]
	for _, n := range nodes {
		it, err := n.client.Get(key)
		if s.check(n, err) {
			continue
		}
		r := replicaRead{node: n}
		if err == nil {
			v, _, perr := peekVersion(it.Value)
			if perr == nil {
				r.item, r.version = it, v
			} else {
				// A value we cannot read is treated as absent and
				// overwritten by the next write.
				s.logger().Warn("corrupt session value", "node", n.ID, "key", key)
			}
		}
		out = append(out, r)
	}
	return out
}

// newest returns the index of the read with the highest version, or -1.
func newest(reads []replicaRead) int {
	best := -1
	for i, r := range reads {
		if r.item != nil && (best < 0 || r.version > reads[best].version) {
			best = i
		}
	}
	return best
}

func (s *Store) loadRemote(id []byte) ([]byte, error) {
	var p placement
	nodes := s.replicas(id, &p)
	if len(nodes) == 0 {
		return nil, ErrUnavailable
	}
	key := s.key(id)
	var buf [maxNodes]replicaRead
	reads := s.readReplicas(key, nodes, buf[:])
	if len(reads) == 0 {
		return nil, ErrUnavailable
	}
	best := newest(reads)
	if best < 0 {
		return nil, ErrNotFound
	}
	val := reads[best].item.Value
	var sess Session
	if err := sess.Decode(val); err != nil {
		return nil, err
	}
	for _, r := range reads {
		if r.item == nil || r.version < reads[best].version {
			s.writeIfNewer(r.node, key, val, reads[best].version, s.expiryAfter(sess.Touched))
		}
	}
	s.setLocal(id, val, &sess)
	return val, nil
}

// writeIfNewer stores val (at version) on n unless n already holds that
// version or a newer one. It is how replicas are repaired and written
// without ever replacing a newer copy with an older one.
func (s *Store) writeIfNewer(n *node, key string, val []byte, version uint64, exp int32) bool {
	for try := 0; try < 4; try++ {
		it, err := n.client.Get(key)
		if s.check(n, err) {
			return false
		}
		if err == nil {
			if v, _, perr := peekVersion(it.Value); perr == nil && v >= version {
				return true
			}
			it.Value, it.Expiration = val, exp
			err = n.client.CompareAndSwap(it)
		} else {
			err = n.client.Add(&memcache.Item{Key: key, Value: val, Expiration: exp})
		}
		if err == nil {
			return true
		}
		if s.check(n, err) {
			return false
		}
		// Someone wrote in between: look again.
	}
	return false
}

func (s *Store) stripe(id []byte) *sync.Mutex {
	return &s.stripes[hashBytes(fnvOffset, id)%uint64(len(s.stripes))]
}

func tooLarge(size, limit int) error {
	return fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, size, limit)
}

// writeAll stores val (at version, last written at touched) on every
// replica of id that is up and does not hold a newer version, and returns
// how many hold it now.
func (s *Store) writeAll(id []byte, val []byte, version uint64, touched int64) int {
	key := s.key(id)
	exp := s.expiryAfter(touched)
	var p placement
	s.place(id, &p)
	written := 0
	for _, n := range p.write[:p.nWrit] {
		if s.writeIfNewer(n, key, val, version, exp) {
			written++
		}
	}
	s.hint(id, &p)
	return written
}

// writeContext is the scratch space of one Update.
type writeContext struct {
	base, next, local Session
	enc               []byte
	reads             [maxNodes]replicaRead
}

var writePool = sync.Pool{New: func() any { return new(writeContext) }}

// maxCASTries bounds the retries of a write that loses CAS races to other
// proxy instances; writers within one process are serialised first.
const maxCASTries = 8

// Update applies u to the session id and writes it to every replica that is
// up, and to the local tier. With create, a missing session is created
// (Created is now); otherwise a missing one gives ErrNotFound. newID, needed
// when u.Rotate, is the ID the session moves to. out receives the session
// as written (its ID is newID after a rotation).
//
// Errors: ErrTooLarge (nothing written), ErrNotFound, ErrUnavailable (no
// node took the write and there is no local tier to keep it in),
// ErrConflict. When no node is up but the local tier is on, the change is
// kept locally and written back once a node returns.
func (s *Store) Update(id []byte, u *Update, create bool, newID []byte, out *Session) error {
	for hop := 0; ; hop++ {
		var err error
		if u.Invalidate {
			err = s.delete(id, u.Begun)
		} else {
			err = s.update(id, u, create, newID, out)
		}
		m, moved := err.(*movedError) // never wrapped; errors.As would allocate here
		if !moved {
			return err
		}
		if hop == maxMoves {
			return ErrNotFound
		}
		// The request began before a rotation: its changes belong to the
		// session under its new ID.
		id, create = m.to, false
	}
}

// maxMoves bounds how many rotations one update follows.
const maxMoves = 3

// movedError says that the session was rotated after the update's request
// began, and to which ID.
type movedError struct{ to []byte }

func (e *movedError) Error() string { return "sessionstore: session moved to a new ID" }

// follows reports whether an update or delete of a request that began at
// begun (unix ms) follows the rotation recorded in the tombstone t.
func follows(t *Session, begun int64) error {
	if !t.Deleted || len(t.MovedTo) == 0 || begun == 0 || begun >= t.MovedAt {
		return nil
	}
	return &movedError{to: append([]byte(nil), t.MovedTo...)}
}

func (s *Store) update(id []byte, u *Update, create bool, newID []byte, out *Session) error {
	if s.async != nil && !u.Rotate {
		if done, err := s.updateAsync(id, u, create, out); done {
			return err
		}
	}
	mu := s.stripe(id)
	mu.Lock()
	defer mu.Unlock()
	w := writePool.Get().(*writeContext)
	defer writePool.Put(w)
	if s.trustLocal() && !u.Rotate {
		if done, err := s.updateTrusted(id, u, create, w, out); done {
			return err
		}
	}

	var key string
	var p placement
	nodes := s.replicas(id, &p)
	if len(nodes) > 0 || p.nWrit > 0 {
		key = s.key(id)
	}
	for try := 0; try < maxCASTries; try++ {
		reads := s.readReplicas(key, nodes, w.reads[:])
		if err := s.base(id, reads, create, u, w); err != nil {
			return err
		}
		u.applyTo(&w.next, &w.base)
		w.next.Version = w.base.Version + 1
		w.next.Touched = time.Now().Unix()
		w.enc = w.next.AppendEncode(w.enc[:0])
		if len(w.enc) > s.opts.MaxSize {
			return tooLarge(len(w.enc), s.opts.MaxSize)
		}
		if u.Rotate {
			return s.rotate(id, newID, w, out)
		}
		written, conflict := s.writeReplicas(key, reads, w)
		if conflict {
			continue
		}
		// Nodes catching up take the write too, but were not read: they
		// get it only if they hold nothing newer.
		var buf [maxNodes]*node
		for _, n := range p.catchingUp(buf[:0]) {
			s.writeIfNewer(n, key, w.enc, w.next.Version, s.expiryAfter(w.next.Touched))
		}
		s.hint(id, &p)
		return s.finishWrite(id, w, written, out)
	}
	return ErrConflict
}

// trustLocal reports whether the local tier is the authoritative copy: on,
// with no re-read interval (local_cache.ttl: 0, one proxy instance).
func (s *Store) trustLocal() bool {
	return s.local != nil && s.opts.LocalTTL == 0 && len(s.nodes) > 0
}

// updateTrusted is Update when the local copy is authoritative: this
// process is the only writer (writes of one session are serialised by its
// stripe), so the new version is built on the local copy and simply set on
// every replica, two round trips instead of four (gets and cas on each).
// A replica that came back stale or empty is overwritten with the newest
// version. It reports false when the local tier does not hold the session,
// for the caller to take the general path.
func (s *Store) updateTrusted(id []byte, u *Update, create bool, w *writeContext, out *Session) (bool, error) {
	b := &w.base
	b.Reset()
	b.ID = append(b.ID, id...)
	if s.local.GetFn(id, b.Decode) != nil || b.Deleted {
		return false, nil // not held locally, or rotated away: read the replicas
	}
	u.applyTo(&w.next, b)
	w.next.Version = b.Version + 1
	w.next.Touched = time.Now().Unix()
	w.enc = w.next.AppendEncode(w.enc[:0])
	if len(w.enc) > s.opts.MaxSize {
		return true, tooLarge(len(w.enc), s.opts.MaxSize)
	}
	return true, s.finishWrite(id, w, s.setAll(id, w.enc, w.next.Touched), out)
}

// setAll sets val on every replica of id that is up, without looking at
// what they hold: only for an authoritative local copy (updateTrusted and
// async writes). It returns how many took it.
func (s *Store) setAll(id, val []byte, touched int64) int {
	key := s.key(id)
	exp := s.expiryAfter(touched)
	var p placement
	s.place(id, &p)
	written := 0
	for _, n := range p.write[:p.nWrit] {
		err := n.client.Set(&memcache.Item{Key: key, Value: val, Expiration: exp})
		if err == nil {
			written++
		} else {
			s.check(n, err)
		}
	}
	s.hint(id, &p)
	return written
}

// base fills w.base with the freshest copy of id: the newest replica, or
// the local copy if that is newer (replicas restarted empty, or every node
// was down when it was written), or a new session when create is set.
func (s *Store) base(id []byte, reads []replicaRead, create bool, u *Update, w *writeContext) error {
	b := &w.base
	b.Reset()
	b.ID = append(b.ID, id...)
	found := false
	if i := newest(reads); i >= 0 {
		if err := b.Decode(reads[i].item.Value); err == nil {
			found = true
		}
	}
	if s.local != nil {
		l := &w.local
		if s.local.GetFn(id, l.Decode) == nil && (!found || l.Version > b.Version) {
			b.CopyFrom(l)
			b.ID = append(b.ID[:0], id...)
			found = true
		}
	}
	if found && !b.Deleted {
		return nil
	}
	if found && b.Deleted && !create {
		if err := follows(b, u.Begun); err != nil {
			return err
		}
		return ErrNotFound
	}
	if !create {
		if len(s.nodes) > 0 && len(reads) == 0 {
			return ErrUnavailable
		}
		return ErrNotFound
	}
	version := b.Version // a recreated ID must still outrank its tombstone
	b.Reset()
	b.ID = append(b.ID, id...)
	b.Created = u.Created
	if b.Created == 0 {
		b.Created = time.Now().UnixMilli()
	}
	b.Version = version
	return nil
}

// writeReplicas writes w.enc to each node read: CAS where it held a value,
// add where it held none. A CAS conflict or failed add means another
// process wrote in between; the caller starts over from a fresh read.
func (s *Store) writeReplicas(key string, reads []replicaRead, w *writeContext) (written int, conflict bool) {
	for i, r := range reads {
		var err error
		if r.item != nil {
			r.item.Value, r.item.Expiration = w.enc, s.expiry()
			err = r.node.client.CompareAndSwap(r.item)
		} else {
			err = r.node.client.Add(&memcache.Item{Key: key, Value: w.enc, Expiration: s.expiry()})
		}
		switch {
		case err == nil:
			written++
		case s.check(r.node, err):
		case i == 0:
			return written, true
		default:
			// The primary took the write; only this replica moved on.
			// Repair it unless it already holds something newer.
			if s.writeIfNewer(r.node, key, w.enc, w.next.Version, s.expiryAfter(w.next.Touched)) {
				written++
			}
		}
	}
	return written, false
}

// finishWrite updates the local tier and records a change that no node
// took, to be written back later.
func (s *Store) finishWrite(id []byte, w *writeContext, written int, out *Session) error {
	if written == 0 && len(s.nodes) > 0 {
		if s.local == nil {
			return ErrUnavailable
		}
		s.markDirty(id)
	}
	s.setLocal(id, w.enc, &w.next)
	if out != nil {
		out.CopyFrom(&w.next)
	}
	return nil
}

// rotate writes the session under newID and leaves a tombstone at id.
func (s *Store) rotate(id, newID []byte, w *writeContext, out *Session) error {
	if !ValidID(newID) {
		return fmt.Errorf("sessionstore: rotate needs a valid new ID")
	}
	w.next.ID = append(w.next.ID[:0], newID...)
	w.next.Version = 1
	w.enc = w.next.AppendEncode(w.enc[:0])
	written := s.writeAll(newID, w.enc, w.next.Version, w.next.Touched)
	if err := s.finishWrite(newID, w, written, out); err != nil {
		return err
	}
	return s.tombstone(id, w.base.Version+1, newID)
}

// Delete invalidates the session id everywhere. It leaves a tombstone
// rather than deleting, so that a replica that was down and still holds an
// older copy cannot bring the session back. Deleting a session that is
// gone already changes nothing (a rotation's tombstone keeps its new ID).
func (s *Store) Delete(id []byte) error {
	return s.delete(id, 0)
}

// delete is Delete for a request that began at begun (unix ms): if the
// session was rotated after that, it returns a movedError to follow.
func (s *Store) delete(id []byte, begun int64) error {
	mu := s.stripe(id)
	mu.Lock()
	defer mu.Unlock()
	var cur, l Session
	found := false
	if s.local != nil && s.local.GetFn(id, l.Decode) == nil {
		cur.CopyFrom(&l)
		found = true
	}
	var p placement
	nodes := s.replicas(id, &p)
	var buf [maxNodes]replicaRead
	if i := newest(s.readReplicas(s.key(id), nodes, buf[:])); i >= 0 && (!found || buf[i].version > cur.Version) {
		if l.Decode(buf[i].item.Value) == nil {
			cur.CopyFrom(&l)
			found = true
		}
	}
	if found && cur.Deleted {
		return follows(&cur, begun)
	}
	return s.tombstone(id, cur.Version+1, nil)
}

// tombstone writes a tombstone at version over id; movedTo, if not nil,
// is the ID a rotation moved the session to.
func (s *Store) tombstone(id []byte, version uint64, movedTo []byte) error {
	t := Session{Deleted: true, Version: version, Touched: time.Now().Unix()}
	if movedTo != nil {
		t.MovedTo, t.MovedAt = movedTo, time.Now().UnixMilli()
	}
	enc := t.AppendEncode(nil)
	written := s.writeAll(id, enc, version, t.Touched)
	if s.local != nil {
		s.local.Set(id, enc, s.localExpiry(&t))
	}
	if written == 0 && len(s.nodes) > 0 {
		if s.local == nil {
			return ErrUnavailable
		}
		s.markDirty(id)
	}
	return nil
}

func (s *Store) markDirty(id []byte) {
	s.mu.Lock()
	s.dirty[string(id)] = struct{}{}
	s.mu.Unlock()
}

// Dirty returns how many changes wait for a node to come back.
func (s *Store) Dirty() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.dirty)
}

// writeBackDirty writes the local copies of sessions changed while no node
// was up to their replicas. Sessions the local tier has evicted since are
// lost; that is the price of keeping changes through a total outage.
func (s *Store) writeBackDirty() {
	s.mu.Lock()
	ids := make([]string, 0, len(s.dirty))
	for id := range s.dirty {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		bid := []byte(id)
		val, err := s.local.Get(bid)
		if err != nil {
			s.mu.Lock()
			delete(s.dirty, id)
			s.mu.Unlock()
			continue
		}
		var sess Session
		if sess.Decode(val) != nil {
			continue
		}
		if s.writeAll(bid, val, sess.Version, sess.Touched) > 0 {
			s.mu.Lock()
			delete(s.dirty, id)
			s.mu.Unlock()
		}
	}
	if n := s.Dirty(); n > 0 {
		s.logger().Warn("sessions still waiting for a memcached node", "count", n)
	} else if len(ids) > 0 {
		s.logger().Info("wrote back sessions kept locally during the outage", "count", len(ids))
	}
}
