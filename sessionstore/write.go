package sessionstore

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// writeContext is the scratch space of one change, pooled so that the
// write path does not allocate. It is also the Merger a shared store calls
// to build the new version on the newest copy it holds.
type writeContext struct {
	s      *Store
	id     []byte
	u      *Update
	create bool
	out    *Session

	base, next, local Session
	enc               []byte
	gen               uint64 // the hot tier's invalidation count before the write (coherent.go)
}

var writePool = sync.Pool{New: func() any { return new(writeContext) }}

// Merge builds the new version on cur, the shared store's newest copy.
func (w *writeContext) Merge(cur []byte) ([]byte, error) {
	if err := w.s.base(w, cur); err != nil {
		return nil, err
	}
	if err := w.s.build(w); err != nil {
		return nil, err
	}
	return w.enc, nil
}

// A writeMode is how changes reach the shared store, chosen once when the
// Store is built. write is called with the session's stripe held.
type writeMode interface {
	write(s *Store, w *writeContext) error
}

// casMode reads the shared store, builds on its newest copy and writes
// back, leaving conflicts to the shared store's Merge: for several proxies
// sharing the store, or no authoritative hot tier.
type casMode struct{}

func (casMode) write(s *Store, w *writeContext) error {
	err := s.shared.Merge(w.id, w)
	if errors.Is(err, ErrUnavailable) && s.keeps() {
		// Nothing could take it: keep it in the hot tier and write it
		// back once the shared store answers again.
		if err := s.base(w, nil); err != nil {
			if errors.Is(err, ErrNotFound) {
				return ErrUnavailable // not held here, and the store cannot say
			}
			return err
		}
		if err := s.build(w); err != nil {
			return err
		}
		s.markDirty(w.id)
	} else if err != nil {
		return err
	}
	s.finish(w)
	return nil
}

// trustedMode builds on the hot tier's copy, which is authoritative (one
// proxy instance, local_cache.ttl 0; writes of one session are serialised
// by its stripe), and simply sets it on the shared store: one round trip
// per replica instead of a read and a compare-and-swap.
type trustedMode struct{}

func (trustedMode) write(s *Store, w *writeContext) error {
	if !s.fromLocal(w) {
		return casMode{}.write(s, w) // not held locally, or rotated away
	}
	if err := s.build(w); err != nil {
		return err
	}
	if err := s.shared.Put(w.id, w.enc); errors.Is(err, ErrUnavailable) && s.keeps() {
		s.markDirty(w.id)
	} else if err != nil {
		return err
	}
	s.finish(w)
	return nil
}

// autoMode is trustedMode while this process is the only one on the
// shared store and casMode while another is seen there (LocalTTL AutoTTL,
// peers.go): the hot tier is the authoritative copy only when nobody
// else writes.
type autoMode struct{}

func (autoMode) write(s *Store, w *writeContext) error {
	if s.crowded.Load() {
		return casMode{}.write(s, w)
	}
	return trustedMode{}.write(s, w)
}

// holds reports whether the hot tier has a copy of id (a tombstone too).
func (s *Store) holds(id []byte) bool {
	if s.local == nil {
		return false
	}
	_, err := s.local.Get(id)
	return err == nil
}

// fromLocal fills w.base from the hot tier and reports whether it held a
// live copy.
func (s *Store) fromLocal(w *writeContext) bool {
	b := &w.base
	b.Reset()
	b.ID = append(b.ID, w.id...)
	return s.local.GetFn(w.id, b.Decode) == nil && !b.Deleted
}

// change applies u to the session id. With create, a missing session is
// created; otherwise a missing one gives ErrNotFound. newID, needed when
// u.Rotate, is the ID the session moves to. out, if not nil, receives the
// session as written. A change whose request began before the session was
// rotated follows it to its new ID.
//
// Errors: ErrTooLarge (nothing written), ErrNotFound, ErrUnavailable (the
// shared store took nothing and there is no hot tier to keep it in),
// ErrConflict.
func (s *Store) change(id []byte, u *Update, create bool, newID []byte, out *Session) error {
	for hop := 0; ; hop++ {
		var err error
		if u.Invalidate {
			err = s.delete(id, u.Begun)
		} else {
			err = s.changeOnce(id, u, create, newID, out)
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

func (s *Store) changeOnce(id []byte, u *Update, create bool, newID []byte, out *Session) error {
	mu := s.stripe(id)
	mu.Lock()
	defer mu.Unlock()
	w := writePool.Get().(*writeContext)
	w.s, w.id, w.u, w.create, w.out = s, id, u, create, out
	defer func() {
		w.s, w.id, w.u, w.out = nil, nil, nil, nil
		writePool.Put(w)
	}()
	if u.Rotate {
		w.gen = s.coherent.gen(newID)
		return s.rotate(w, newID)
	}
	w.gen = s.coherent.gen(id)
	return s.mode.write(s, w)
}

// maxMoves bounds how many rotations one change follows.
const maxMoves = 3

// movedError says that the session was rotated after the change's request
// began, and to which ID.
type movedError struct{ to []byte }

func (e *movedError) Error() string { return "sessionstore: session moved to a new ID" }

// follows returns a movedError if a change of a request that began at
// begun (unix ms) follows the rotation recorded in the tombstone t.
func follows(t *Session, begun int64) error {
	if !t.Deleted || len(t.MovedTo) == 0 || begun == 0 || begun >= t.MovedAt {
		return nil
	}
	return &movedError{to: append([]byte(nil), t.MovedTo...)}
}

// base fills w.base with the freshest copy of w.id: cur (the shared
// store's newest), or the hot tier's if newer (the shared store restarted
// empty, or took nothing while it was down), or a new session when
// w.create.
func (s *Store) base(w *writeContext, cur []byte) error {
	b := &w.base
	b.Reset()
	b.ID = append(b.ID, w.id...)
	found := cur != nil && b.Decode(cur) == nil
	if s.local != nil {
		l := &w.local
		if s.local.GetFn(w.id, l.Decode) == nil && (!found || l.Version > b.Version) {
			b.CopyFrom(l)
			b.ID = append(b.ID[:0], w.id...)
			found = true
		}
	}
	switch {
	case found && !b.Deleted:
		return nil
	case !w.create && found:
		if err := follows(b, w.u.Begun); err != nil {
			return err
		}
		return ErrNotFound
	case !w.create:
		return ErrNotFound
	}
	b.recreate(w.id, w.u.Created)
	return nil
}

// recreate makes s a new, empty session at id, created at created (unix
// ms; 0 is now). It keeps s's version, so that the new session still
// outranks a tombstone it replaces.
func (s *Session) recreate(id []byte, created int64) {
	version := s.Version
	s.Reset()
	s.ID = append(s.ID, id...)
	s.Created, s.Version = created, version
	if s.Created == 0 {
		s.Created = time.Now().UnixMilli()
	}
}

// build makes w.next (w.u applied to w.base, one version up, touched now)
// and its encoding, refusing a session over MaxSize.
func (s *Store) build(w *writeContext) error {
	w.u.applyTo(&w.next, &w.base)
	w.next.Version = w.base.Version + 1
	w.next.Touched = time.Now().Unix()
	w.next.Expires = s.expiresFor(w.next.Touched, w.next.TTL)
	w.enc = w.next.AppendEncode(w.enc[:0])
	if len(w.enc) > s.opts.MaxSize {
		return tooLarge(len(w.enc), s.opts.MaxSize)
	}
	return nil
}

// finish puts a written session in the hot tier and hands it to the
// caller.
func (s *Store) finish(w *writeContext) {
	if s.local != nil {
		s.fillLocal(w.next.ID, w.enc, &w.next, w.gen)
	}
	if w.out != nil {
		w.out.CopyFrom(&w.next)
	}
}

// rotate writes the session under newID and leaves at its old ID a
// tombstone that names the new one.
func (s *Store) rotate(w *writeContext, newID []byte) error {
	if !ValidID(newID) {
		return fmt.Errorf("sessionstore: rotate needs a valid new ID")
	}
	cur, err := s.shared.Get(w.id)
	if err != nil && !errors.Is(err, ErrNotFound) && !(errors.Is(err, ErrUnavailable) && s.keeps() && s.holds(w.id)) {
		// Without a copy here to build on, the unread session would
		// count as missing: the client's cookie expired while the
		// session stays under the ID it was to leave (finding R3,
		// docs/guarantees.md).
		return err
	}
	for try := 1; ; try++ {
		if err := s.base(w, cur); err != nil {
			return err
		}
		if err := s.build(w); err != nil {
			return err
		}
		w.next.ID = append(w.next.ID[:0], newID...)
		w.next.Version = uint64(try) // a rebuilt copy replaces the one before
		w.enc = w.next.AppendEncode(w.enc[:0])
		if err := s.keep(newID, s.shared.PutIfNewer(newID, w.enc)); err != nil {
			return err
		}
		s.finish(w)
		// The old ID's tombstone goes only over the copy the rotation
		// built on: a write another proxy made to the old ID in between
		// would be lost under it (the fault harness's finding B). Then
		// the rotation is built again on that newer copy.
		t := rotationEnd{base: w.base.Version, movedTo: newID, s: s}
		err := s.shared.Merge(w.id, &t)
		if errors.Is(err, errRotationRaced) && try < MaxCASTries {
			cur = t.newer
			continue
		}
		return s.endOld(w.id, &t, err)
	}
}

// errRotationRaced is rotationEnd's answer when the old ID holds a copy
// newer than the one the rotation built on.
var errRotationRaced = errors.New("sessionstore: the session changed while it was rotated")

// rotationEnd is the Merger that writes a rotation's tombstone at the old
// ID: over the copy the rotation built on (or an older one, or none), never
// over a newer one, which it keeps in newer for the rotation to build on.
type rotationEnd struct {
	s       *Store
	base    uint64 // the version the rotation built on
	movedTo []byte
	newer   []byte
	enc     []byte
}

// Merge implements Merger.
func (t *rotationEnd) Merge(cur []byte) ([]byte, error) {
	if cur != nil {
		if v, _, err := peekVersion(cur); err == nil && v > t.base {
			t.newer = append(t.newer[:0], cur...)
			return nil, errRotationRaced
		}
	}
	t.enc = t.s.tombstoneValue(t.enc[:0], t.base+1, t.movedTo)
	return t.enc, nil
}

// endOld finishes a rotation's tombstone as tombstone does: in the hot
// tier too, and kept there for writing back when no node took it.
func (s *Store) endOld(id []byte, t *rotationEnd, err error) error {
	if errors.Is(err, errRotationRaced) {
		return fmt.Errorf("sessionstore: rotation lost %d races for the old ID", MaxCASTries)
	}
	if t.enc == nil { // the store never called Merge: no node answered
		t.enc = s.tombstoneValue(nil, t.base+1, t.movedTo)
	}
	if s.local != nil && (err == nil || s.keeps()) {
		var ts Session
		if ts.Decode(t.enc) == nil {
			s.local.Set(id, t.enc, s.localExpiry(&ts))
		}
	}
	return s.keep(id, err)
}

// tombstoneValue appends the encoded tombstone of a session at version;
// movedTo, if not nil, is the ID a rotation moved it to.
func (s *Store) tombstoneValue(dst []byte, version uint64, movedTo []byte) []byte {
	now := time.Now()
	t := Session{Deleted: true, Version: version, Touched: now.Unix()}
	t.Expires = s.expires(t.Touched)
	if movedTo != nil {
		t.MovedTo, t.MovedAt = movedTo, now.UnixMilli()
	}
	return t.AppendEncode(dst)
}

// keeps reports whether a change the shared store could not take is kept
// in the hot tier and written back later (answered as done): when there
// is a hot tier, and no Redis WaitReplicas, whose whole point is that an
// answered write is on the replicas. Nor with a hot tier the server keeps
// coherent (Redis client_cache): it is there so that several proxies see
// each other's changes at once, with no presence marks to say whether
// they are there, and a change kept in one of them is one the others
// cannot see (finding R1, docs/guarantees.md). Otherwise only while this
// process is the one writer of its sessions (no other process's presence
// mark seen), or its hot tier is trusted as configured (local_cache.ttl:
// 0, one proxy instance). With other proxies on the store (auto, or a
// ttl), a change kept here is one they cannot see: the contract's `write:
// sync` is "stored before the client gets the response", and a change
// through one proxy is seen by the others within the ttl (CONTRACT 2, 11,
// 12). So there it is not acknowledged: ErrUnavailable, which the proxy
// answers 503 with Retry-After (docs/guarantees.md, finding A).
func (s *Store) keeps() bool {
	return s.local != nil && s.opts.Redis.WaitReplicas == 0 && s.coherent == nil &&
		(!s.others.Load() || s.mode == trustedMode{})
}

// keep turns the shared store's ErrUnavailable into a change kept in the
// hot tier for writing back later, when the Store keeps such changes.
func (s *Store) keep(id []byte, err error) error {
	if !errors.Is(err, ErrUnavailable) {
		return err
	}
	if !s.keeps() {
		return err
	}
	s.markDirty(id)
	return nil
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
	var cur, other Session
	found := s.local != nil && s.local.GetFn(id, cur.Decode) == nil
	v, err := s.shared.Get(id)
	if err == nil && other.Decode(v) == nil && (!found || other.Version > cur.Version) {
		cur.CopyFrom(&other)
		found = true
	}
	if err != nil && !errors.Is(err, ErrNotFound) && !(found && s.keeps()) {
		// The held version is unknown: a tombstone at a guessed one may
		// be older than the session held, which the conditional write
		// takes as superseded and answers as done (finding R2,
		// docs/guarantees.md), and the logout would not happen.
		return err
	}
	if found && cur.Deleted {
		return follows(&cur, begun)
	}
	return s.tombstone(id, cur.Version+1, nil)
}

// tombstone writes a tombstone at version over id; movedTo, if not nil,
// is the ID a rotation moved the session to.
func (s *Store) tombstone(id []byte, version uint64, movedTo []byte) error {
	enc := s.tombstoneValue(nil, version, movedTo)
	err := s.shared.PutIfNewer(id, enc)
	if s.local != nil && (err == nil || s.keeps()) {
		var t Session
		if t.Decode(enc) == nil {
			s.local.Set(id, enc, s.localExpiry(&t))
		}
	}
	return s.keep(id, err)
}

func (s *Store) markDirty(id []byte) {
	s.mu.Lock()
	s.dirty[string(id)] = struct{}{}
	s.ndirty.Store(int64(len(s.dirty)))
	s.mu.Unlock()
	if v, err := s.local.Get(id); err == nil {
		if m, err := peek(v); err == nil {
			s.local.Touch(id, s.keptExpiry(m.expires))
		}
	}
}

// isDirty reports whether id holds a change only the hot tier has; one
// atomic load while nothing is kept, as on every write outside an outage.
func (s *Store) isDirty(id []byte) bool {
	if s.ndirty.Load() == 0 {
		return false
	}
	s.mu.Lock()
	_, ok := s.dirty[string(id)]
	s.mu.Unlock()
	return ok
}

// keptExpiry is the hot-tier life, in seconds, of a change kept while the
// shared store takes nothing: the session's own, never the hot tier's
// bound (local_cache.ttl, or auto's 1s once other proxies are seen). The
// copy is the only one; expiring with that bound, writeBackDirty found it
// gone and the change was lost.
func (s *Store) keptExpiry(expires int64) int {
	return int(max(expires-time.Now().Unix(), 1))
}

// Dirty returns how many changes wait for the shared store to take them.
func (s *Store) Dirty() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.dirty)
}

// writeBackInterval is how often changes kept in the hot tier while the
// shared store took nothing are tried again.
const writeBackInterval = 200 * time.Millisecond

func (s *Store) writeBackLoop() {
	defer s.wg.Done()
	t := time.NewTicker(writeBackInterval)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
		}
		if s.Dirty() > 0 {
			s.writeBackDirty()
		}
	}
}

// writeBackDirty writes the hot tier's copies of sessions changed while
// the shared store took nothing. Sessions the hot tier has evicted since
// are lost; that is the price of keeping changes through a total outage.
func (s *Store) writeBackDirty() {
	s.mu.Lock()
	ids := make([]string, 0, len(s.dirty))
	for id := range s.dirty {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	written := 0
	for _, id := range ids {
		bid := []byte(id)
		val, err := s.local.Get(bid)
		if err == nil {
			err = s.shared.PutIfNewer(bid, val)
		}
		if errors.Is(err, ErrUnavailable) {
			continue
		}
		s.mu.Lock()
		delete(s.dirty, id)
		s.ndirty.Store(int64(len(s.dirty)))
		s.mu.Unlock()
		written++
	}
	if written > 0 {
		s.logger().Info("wrote back sessions kept locally during the outage", "count", written, "left", s.Dirty())
	}
}
