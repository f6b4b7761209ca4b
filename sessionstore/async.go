package sessionstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// With Options.Async the local tier is the authoritative copy, as with
// memcached-session-manager's sessionBackupAsync: an update is applied to
// the local copy at once, so the same client's next request through this
// proxy sees it, and the session ID goes on a bounded queue. Workers write
// the local copy to every replica that does not hold a newer version. The
// queue holds IDs, not changes, so a session changed many times while
// queued is written once, and the replicas can never receive an older
// version after a newer one.

// asyncState is the queue of sessions waiting to be written.
type asyncState struct {
	queue chan string

	mu     sync.Mutex          // protects queued
	queued map[string]struct{} // IDs in queue; a session is queued once however often it changes

	pending atomic.Int64 // queued or being written
	inline  atomic.Int64 // writes done inline because the queue was full
	written atomic.Int64
}

const defaultAsyncWorkers = 4

func (s *Store) startAsync() {
	n := s.opts.AsyncQueue
	if n <= 0 {
		n = DefaultAsyncQueue
	}
	s.async = &asyncState{queue: make(chan string, n), queued: map[string]struct{}{}}
	for i := 0; i < defaultAsyncWorkers; i++ {
		s.wg.Add(1)
		go s.asyncWorker()
	}
}

func (s *Store) asyncWorker() {
	defer s.wg.Done()
	for {
		select {
		case id := <-s.async.queue:
			s.flushQueued(id)
		case <-s.closed:
			return
		}
	}
}

// enqueue queues id for writing unless it is queued already: the writer
// takes the local copy as it is then, with every change made meanwhile.
// It reports false when the queue is full.
func (a *asyncState) enqueue(id []byte) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.queued[string(id)]; ok {
		return true
	}
	select {
	case a.queue <- string(id):
		a.queued[string(id)] = struct{}{}
		a.pending.Add(1)
		return true
	default:
		return false
	}
}

// Pending returns how many sessions wait to be written to memcached.
func (s *Store) Pending() int {
	if s.async == nil {
		return 0
	}
	return int(s.async.pending.Load())
}

// AsyncStats returns how many queued writes were done in the background and
// how many inline because the queue was full.
func (s *Store) AsyncStats() (written, inline int64) {
	if s.async == nil {
		return 0, 0
	}
	return s.async.written.Load(), s.async.inline.Load()
}

// asyncMode applies a change to the hot tier's copy and queues the write.
// A session the hot tier does not hold is written synchronously instead.
type asyncMode struct{}

func (asyncMode) write(s *Store, w *writeContext) error {
	if !s.fromLocal(w) {
		if !w.create {
			return casMode{}.write(s, w)
		}
		w.base.recreate(w.id, w.u.Created)
	}
	if err := s.build(w); err != nil {
		return err
	}
	if err := s.local.Set(w.id, w.enc, s.localExpiry(&w.next)); err != nil {
		// Too large for the hot tier: it cannot be the authority.
		return casMode{}.write(s, w)
	}
	if w.out != nil {
		w.out.CopyFrom(&w.next)
	}
	if !s.async.enqueue(w.id) {
		// Full: write now rather than drop the change.
		s.async.inline.Add(1)
		s.flushLocked(w.id)
	}
	return nil
}

// flushQueued writes a session taken off the queue. It is unmarked first,
// so that a change made while it is written queues it again.
func (s *Store) flushQueued(id string) {
	s.async.mu.Lock()
	delete(s.async.queued, id)
	s.async.mu.Unlock()
	mu := s.stripe([]byte(id))
	mu.Lock()
	s.flushLocked([]byte(id))
	mu.Unlock()
	s.async.pending.Add(-1)
}

// flushLocked writes the hot tier's copy of id to the shared store, with
// the session's stripe held so that two writes go out in version order.
// The hot tier is authoritative, so a plain Put does.
func (s *Store) flushLocked(id []byte) {
	val, err := s.local.Get(id)
	if err != nil {
		return // evicted or expired: nothing left to write
	}
	if errors.Is(s.shared.Put(id, val), ErrUnavailable) {
		s.markDirty(id)
	}
	s.async.written.Add(1)
}

// Flush waits until every queued write is done, or ctx ends. Shutdown
// calls it so that no change is lost on SIGTERM.
func (s *Store) Flush(ctx context.Context) error {
	if s.async == nil {
		return nil
	}
	for s.async.pending.Load() > 0 {
		// Help the workers: the process is stopping anyway.
		select {
		case id := <-s.async.queue:
			s.flushQueued(id)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
