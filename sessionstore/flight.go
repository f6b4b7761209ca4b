package sessionstore

import (
	"bytes"
	"sync"
	"sync/atomic"
)

// flights merges concurrent loads of one session from the shared store:
// the first caller (the leader) reads it, the ones that arrive while it
// does wait and decode what it read. It is singleflight without the
// allocations: calls are pooled, keyed by a hash of the ID, and the value
// is handed over in the call's own buffer.
type flights struct {
	mu    sync.Mutex
	calls map[uint64]*flight
}

// A flight is one load from the shared store and the callers waiting for it.
type flight struct {
	id   []byte
	hash uint64

	// done is held by the leader until the result is in; followers wait
	// by locking it (and unlock it at once for the next follower).
	done    sync.Mutex
	waiters atomic.Int32 // followers that have not yet read the result
	open    bool         // followers may still join; guarded by flights.mu
	val     []byte       // the value read, copied only when someone waits
	err     error

	// What the leader's Take needs.
	store *Store
	out   *Session
	gen   uint64
}

var flightPool = sync.Pool{New: func() any { return new(flight) }}

// join returns the flight loading id, and whether the caller leads it and
// must call land. A follower calls follow.
func (f *flights) join(id []byte) (fl *flight, lead bool) {
	h := hashID(id)
	f.mu.Lock()
	if fl := f.calls[h]; fl != nil && bytes.Equal(fl.id, id) {
		fl.waiters.Add(1)
		f.mu.Unlock()
		return fl, false
	}
	fl = flightPool.Get().(*flight)
	fl.id, fl.hash, fl.err = append(fl.id[:0], id...), h, nil
	fl.done.Lock()
	if f.calls == nil {
		f.calls = make(map[uint64]*flight)
	}
	if f.calls[h] == nil {
		// On a hash collision with another ID's load the caller loads
		// alone, unregistered.
		f.calls[h], fl.open = fl, true
	}
	f.mu.Unlock()
	return fl, true
}

// close stops followers from joining fl and reports how many did.
func (f *flights) close(fl *flight) int32 {
	f.mu.Lock()
	if fl.open {
		delete(f.calls, fl.hash)
		fl.open = false
	}
	f.mu.Unlock()
	return fl.waiters.Load()
}

// land ends the leader's part: it hands err (and the value kept by keep)
// to the followers.
func (f *flights) land(fl *flight, err error) {
	waiting := f.close(fl)
	fl.err = err
	fl.store, fl.out = nil, nil
	fl.done.Unlock()
	if waiting == 0 {
		fl.recycle()
	}
}

// keep stores a copy of val for the followers, if any have joined; none
// can join after it.
func (f *flights) keep(fl *flight, val []byte) {
	if f.close(fl) > 0 {
		fl.val = append(fl.val[:0], val...)
	}
}

// follow waits for fl's leader and decodes what it read into out.
func (fl *flight) follow(out *Session) error {
	fl.done.Lock()
	//lint:ignore SA2001 a latch: held by the leader, passed on to the next follower
	fl.done.Unlock()
	err := fl.err
	if err == nil {
		err = out.Decode(fl.val)
	}
	if fl.waiters.Add(-1) == 0 {
		fl.recycle()
	}
	return err
}

// maxKeptValue bounds the value buffer a pooled flight keeps: above the
// sessions of most applications, so that shared cold reads allocate
// nothing, without one huge session pinning its buffer in the pool.
const maxKeptValue = 64 << 10

func (fl *flight) recycle() {
	if cap(fl.val) > maxKeptValue {
		fl.val = nil
	}
	fl.val, fl.err = fl.val[:0], nil
	flightPool.Put(fl)
}

// Take is the leader's share of the value read: it decodes it into the
// leader's session, fills the hot tier and keeps a copy for followers.
func (fl *flight) Take(val []byte) error {
	s := fl.store
	if err := fl.out.Decode(val); err != nil {
		return err
	}
	if s.local != nil {
		s.fillLocal(fl.id, val, fl.out, fl.gen)
	}
	s.flight.keep(fl, val)
	return nil
}
