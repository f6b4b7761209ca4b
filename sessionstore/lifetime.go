package sessionstore

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Lifetimes (CONTRACT.md section 16): a session's own idle ttl, which a
// backend sets for "remember me" (X-Session-Max-Age), the absolute
// Options.MaxAge, and the count of sessions ended, by reason.

// MaxTTL is the longest idle ttl a backend may give one session, in
// seconds: 400 days, the longest a browser keeps a cookie (RFC 6265bis),
// so that a session never outlives every cookie that could name it by
// more than a whim of the backend.
const MaxTTL = 400 * 24 * 3600

// ErrBadTTL means a backend asked for a session ttl that is negative,
// not a number or over MaxTTL; the update was not applied.
var ErrBadTTL = fmt.Errorf("sessionstore: session ttl must be 0 to %d seconds", MaxTTL)

// SetTTL records that the session's idle ttl becomes seconds: its own,
// with a persistent cookie of that Max-Age, or with 0 the store's again
// (and a session cookie). It returns an error wrapping ErrBadTTL, and
// records nothing, if seconds is out of range.
func (u *Update) SetTTL(seconds int64) error {
	if seconds < 0 || seconds > MaxTTL {
		return fmt.Errorf("%w: got %d", ErrBadTTL, seconds)
	}
	u.ttl, u.ttlSet = int32(seconds), true
	return nil
}

// expiresFor is expires for a session whose own ttl is ttl seconds (0:
// the store's).
func (s *Store) expiresFor(touched int64, ttl int32) int64 {
	if ttl <= 0 {
		return s.expires(touched)
	}
	d := time.Duration(ttl) * time.Second
	return touched + int64((d+d/4+time.Second-1)/time.Second)
}

// refreshDue reports whether a session used but not changed is written
// again (needsRefresh). A session with its own ttl has a persistent cookie
// that is sent again with every write of the session: it is rewritten
// once half its ttl has passed, so that the cookie slides with it
// (CONTRACT.md section 16) without a Set-Cookie on every request.
func (s *Store) refreshDue(sess *Session) bool {
	if sess.TTL <= 0 {
		return time.Now().Unix()-sess.Touched >= int64(s.opts.TTL/4/time.Second)
	}
	return time.Now().Unix()-sess.Touched >= int64(sess.TTL/2)
}

// tooOld reports whether sess has outlived Options.MaxAge.
func (s *Store) tooOld(sess *Session) bool {
	return s.opts.MaxAge > 0 && time.Now().UnixMilli()-sess.Created >= s.opts.MaxAge.Milliseconds()
}

// CookieMaxAge is the Max-Age, in seconds, of the cookie that Commit's
// CookieSet asks for: the session's own ttl, or 0 for a session cookie.
func (r *Request) CookieMaxAge() int32 { return r.cookieMaxAge }

// EndReason is why a session ended, as counted in
// sessionproxy_sessions_ended_total{reason}.
type EndReason uint8

// End reasons.
const (
	EndInvalidated     EndReason = iota // the backend's X-Session-Invalidate (or a restart)
	EndAdmin                            // DELETE /sessions/<id> or ?principal=
	EndMaxAge                           // past Options.MaxAge on its next load
	EndMaxPerPrincipal                  // its principal's newer sessions were over the limit
	NumEndReasons
)

var endNames = [NumEndReasons]string{"invalidated", "admin", "max_age", "max_per_principal"}

// String returns the reason's label: invalidated, admin, max_age or
// max_per_principal.
func (r EndReason) String() string {
	if r < NumEndReasons {
		return endNames[r]
	}
	return "unknown"
}

// endCounts counts the sessions ended by this process, by reason. The
// counts belong to the package, not to a Store, so that they outlive the
// Store a config reload replaces, like the proxy's other counters.
var endCounts [NumEndReasons]atomic.Uint64

// CountEnded counts one session ended for reason. The Store counts those
// it ends itself (Commit, Open past MaxAge, Delete with DeleteAs); code
// that ends sessions by other means calls it once per session ended.
func CountEnded(reason EndReason) {
	if reason < NumEndReasons {
		endCounts[reason].Add(1)
	}
}

// Ended returns how many sessions this process ended for reason.
func Ended(reason EndReason) uint64 {
	if reason < NumEndReasons {
		return endCounts[reason].Load()
	}
	return 0
}

// DeleteAs is Delete, counting the session as ended for reason when it
// was live.
func (s *Store) DeleteAs(id []byte, reason EndReason) error {
	var cur Session
	_, lerr := s.Load(id, &cur)
	if err := s.Delete(id); err != nil {
		return err
	}
	if lerr == nil {
		CountEnded(reason)
	}
	return nil
}

// endTooOld ends r's session, loaded past Options.MaxAge, as an invalidate
// would, and leaves r to start a new one: the client's cookie names a
// session that no longer exists (LookupMiss). A store that cannot take the
// tombstone now is left to expire it; the session is not served either
// way.
func (s *Store) endTooOld(r *Request) {
	if err := s.Delete(r.Session.ID); err != nil {
		s.logger().Warn("could not delete a session past max_age", "session", LogID(r.Session.ID), "error", err)
	}
	CountEnded(EndMaxAge)
	r.Lookup = LookupMiss
}

// TTLOf is the idle lifetime of sess: its own, else the store's.
func (s *Store) TTLOf(sess *Session) time.Duration {
	if sess.TTL > 0 {
		return time.Duration(sess.TTL) * time.Second
	}
	return s.opts.TTL
}
