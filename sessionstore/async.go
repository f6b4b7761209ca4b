package sessionstore

import (
	"context"
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

const (
	defaultAsyncQueue   = 4096
	defaultAsyncWorkers = 4
)

func (s *Store) startAsync() {
	n := s.opts.AsyncQueue
	if n <= 0 {
		n = defaultAsyncQueue
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

// flushQueued writes a session taken off the queue. It is unmarked first,
// so that a change made while it is written queues it again.
func (s *Store) flushQueued(id string) {
	s.async.mu.Lock()
	delete(s.async.queued, id)
	s.async.mu.Unlock()
	s.flushOne([]byte(id))
	s.async.pending.Add(-1)
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

// updateAsync applies u to the local copy and queues the write. It reports
// false when the session is not in the local tier, so the caller writes
// synchronously instead.
func (s *Store) updateAsync(id []byte, u *Update, create bool, out *Session) (bool, error) {
	mu := s.stripe(id)
	mu.Lock()
	w := writePool.Get().(*writeContext)
	defer writePool.Put(w)
	w.base.Reset()
	w.base.ID = append(w.base.ID, id...)
	err := s.local.GetFn(id, w.base.Decode)
	switch {
	case err == nil && !w.base.Deleted:
	case create && (err != nil || w.base.Deleted):
		version := w.base.Version
		w.base.Reset()
		w.base.ID = append(w.base.ID, id...)
		w.base.Created, w.base.Version = u.Created, version
		if w.base.Created == 0 {
			w.base.Created = time.Now().UnixMilli()
		}
	default:
		mu.Unlock()
		return false, nil
	}
	u.applyTo(&w.next, &w.base)
	w.next.Version = w.base.Version + 1
	w.next.Touched = time.Now().Unix()
	w.enc = w.next.AppendEncode(w.enc[:0])
	if len(w.enc) > s.opts.MaxSize {
		mu.Unlock()
		return true, tooLarge(len(w.enc), s.opts.MaxSize)
	}
	if err := s.local.Set(id, w.enc, s.localExpiry(&w.next)); err != nil {
		// Too large for the local tier: it cannot be the authority.
		mu.Unlock()
		return false, nil
	}
	if out != nil {
		out.CopyFrom(&w.next)
	}
	mu.Unlock()

	if !s.async.enqueue(id) {
		// Full: write now rather than drop the change.
		s.async.inline.Add(1)
		s.flushOne(id)
	}
	return true, nil
}

// flushOne writes the local copy of id to its replicas. Async needs the
// local tier to be authoritative, so, as in updateTrusted, a plain set
// does; the stripe lock keeps two writes of one session in version order.
func (s *Store) flushOne(id []byte) {
	mu := s.stripe(id)
	mu.Lock()
	defer mu.Unlock()
	val, err := s.local.Get(id)
	if err != nil {
		return // evicted or expired: nothing left to write
	}
	var sess Session
	if sess.Decode(val) != nil {
		return
	}
	if s.setAll(id, val, sess.Touched) == 0 && len(s.nodes) > 0 {
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
