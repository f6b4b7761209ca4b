package sessionstore

import (
	"errors"
	"fmt"
	"time"
)

// The session lifecycle: a request's session is opened from its cookie,
// the backend's answer becomes a change, and Commit creates, changes,
// rotates, invalidates or refreshes the session and says what becomes of
// the cookie. The caller (the proxy) only turns headers into a change and
// a result into headers and cookies.

// Lookup is what Open found for a request's session cookie.
type Lookup uint8

// Lookups, as counted in sessionproxy_session_lookups_total.
const (
	LookupNone   Lookup = iota // no cookie, or not a well-formed ID (never looked up)
	LookupLocal                // found in the hot tier
	LookupShared               // found in the shared store
	LookupMiss                 // a well-formed ID the store does not know
	LookupError                // the store could not answer
	NumLookups
)

var lookupNames = [NumLookups]string{"none", "local", "memcached", "miss", "error"}

// String returns the name used in metrics and logs: none, local, memcached,
// miss or error.
func (l Lookup) String() string {
	if l < NumLookups {
		return lookupNames[l]
	}
	return "unknown"
}

// Request is one request's session from Open to Commit. Its zero value is
// ready for Open, which resets it, so that a pooled Request is reused
// without allocating.
type Request struct {
	// Session is the session the backend sees: as loaded, or a new one
	// (a fresh ID, Created now) that is stored only if Commit says so.
	Session Session
	// Change is what the backend asked for; the caller fills it between
	// Open and Commit.
	Change Update
	Lookup Lookup
	New    bool // this request started the session

	hadCookie    bool // the client sent a well-formed session ID
	newID        []byte
	cookieMaxAge int32 // CookieMaxAge
}

func (r *Request) reset() {
	r.Session.Reset()
	r.Change.Reset()
	r.Lookup, r.New, r.hadCookie, r.cookieMaxAge = LookupNone, false, false, 0
	r.newID = r.newID[:0]
}

// Open resolves a request's session cookie (its value, or nil) into
// r.Session. A cookie that is not a well-formed ID is ignored without a
// lookup, and an ID the store does not know is never adopted: the request
// gets a fresh one. It returns ErrUnavailable when the session cannot be
// loaded because the store is down, unless Options.NewOnUnavailable.
func (s *Store) Open(r *Request, cookie []byte) error {
	r.reset()
	// A change that comes back after a rotation its request did not know
	// of follows the session to its new ID.
	r.Change.Begun = time.Now().UnixMilli()
	if len(cookie) > 0 && ValidID(cookie) {
		r.hadCookie = true
		src, err := s.Load(cookie, &r.Session)
		switch {
		case err == nil && s.tooOld(&r.Session):
			s.endTooOld(r)
		case err == nil:
			r.Lookup = LookupLocal
			if src == FromShared {
				r.Lookup = LookupShared
			}
			return nil
		case errors.Is(err, ErrNotFound):
			r.Lookup = LookupMiss
		default:
			r.Lookup = LookupError
			if !s.opts.NewOnUnavailable {
				return ErrUnavailable
			}
		}
	}
	r.New = true
	r.Session.Reset()
	r.Session.ID = AppendNewID(r.Session.ID[:0])
	r.Session.Created = time.Now().UnixMilli()
	return nil
}

// CookieAction is what Commit asks the caller to do with the session
// cookie.
type CookieAction uint8

// Cookie actions.
const (
	CookieKeep   CookieAction = iota // leave it as it is
	CookieSet                        // set it to the ID Commit returns (a new or rotated session)
	CookieExpire                     // expire it: the session is gone, or never existed
)

// commit applies r.Change to the session: it creates a new session on its
// first write (or at once with Options.CreateAlways), changes, rotates
// (to the ID the backend drew, or a new one) or invalidates it, or
// rewrites an unchanged one that is due a refresh of its sliding expiry.
// An Invalidate with sets ends the session and starts a new one holding
// those sets (Django's flush() then a write). It returns what to do with
// the cookie and, for CookieSet, the ID to set it to (valid until r is
// reused). Errors: ErrTooLarge and ErrBadID (nothing applied: the
// backend's fault) and ErrUnavailable or ErrConflict (the store could not
// take it).
func (s *Store) commit(r *Request) (CookieAction, []byte, error) {
	u := &r.Change
	id := r.Session.ID
	if u.Invalidate {
		if len(u.sets) > 0 {
			return s.restart(r)
		}
		if !r.New {
			switch err := s.change(id, u, false, nil, nil); {
			case err == nil:
				CountEnded(EndInvalidated)
			case !errors.Is(err, ErrNotFound):
				return CookieKeep, nil, err
			}
		}
		if !r.New || r.hadCookie {
			return CookieExpire, nil, nil
		}
		return CookieKeep, nil, nil
	}
	if r.New {
		u.Rotate = false // a new session has a fresh ID already
		u.Created = r.Session.Created
		if len(u.rotateTo) > 0 {
			// The backend told its app the session's ID is the one it
			// drew: the new session takes it (if it is stored at all).
			if err := s.unknown(u.rotateTo); err != nil {
				return CookieKeep, nil, err
			}
			id = append(r.Session.ID[:0], u.rotateTo...)
			r.Session.ID = id
		}
	}
	if u.Empty() && !(r.New && s.opts.CreateAlways) && (r.New || !s.needsRefresh(&r.Session)) {
		if r.Lookup == LookupMiss {
			// The cookie names a session that no longer exists and none
			// replaces it: expire it, or every later request would look
			// it up again.
			return CookieExpire, nil, nil
		}
		return CookieKeep, nil, nil
	}
	if u.Rotate {
		if err := s.drawNewID(r); err != nil {
			return CookieKeep, nil, err
		}
	}
	r.cookieMaxAge = r.Session.TTL
	if u.ttlSet {
		r.cookieMaxAge = u.ttl
	}
	switch err := s.change(id, u, r.New, r.newID, nil); {
	case errors.Is(err, ErrNotFound):
		// Invalidated or expired by another request meanwhile.
		return CookieExpire, nil, nil
	case err != nil:
		return CookieKeep, nil, err
	case u.Rotate:
		return CookieSet, r.newID, nil
	case r.New, u.ttlSet, r.cookieMaxAge > 0:
		// A persistent cookie is sent again with every write of its
		// session, so that it slides with it; a changed ttl changes it.
		return CookieSet, id, nil
	}
	return CookieKeep, nil, nil
}

// drawNewID sets r.newID, the ID a rotated or restarted session takes:
// the backend's (X-Session-Rotate: <id>), which must be unknown to the
// store, else a new one.
func (s *Store) drawNewID(r *Request) error {
	if to := r.Change.rotateTo; len(to) > 0 {
		if err := s.unknown(to); err != nil {
			return err
		}
		r.newID = append(r.newID[:0], to...)
		return nil
	}
	r.newID = AppendNewID(r.newID[:0])
	return nil
}

// restart ends r's session, if it was stored, and starts a new one under
// a new ID (the backend's, with RotateTo) holding r.Change's sets. What the
// backend's fault can refuse (a held ID, a new session over MaxSize) is
// checked before anything is written, so that such an update is not
// applied at all; then the old session is deleted first, so that a store
// failure leaves the user logged out rather than in both sessions.
func (s *Store) restart(r *Request) (CookieAction, []byte, error) {
	u := &r.Change
	if err := s.drawNewID(r); err != nil {
		return CookieKeep, nil, err
	}
	var probe Session // the new session as build will write it, near enough to size it
	u.applyTo(&probe, &Session{ID: r.newID, Created: time.Now().UnixMilli(), Version: 1})
	probe.Touched, probe.Expires = time.Now().Unix(), s.expires(time.Now().Unix())
	if n := len(probe.AppendEncode(nil)); n > s.opts.MaxSize {
		return CookieKeep, nil, tooLarge(n, s.opts.MaxSize)
	}
	if !r.New {
		switch err := s.change(r.Session.ID, u, false, nil, nil); {
		case err == nil:
			CountEnded(EndInvalidated)
		case !errors.Is(err, ErrNotFound):
			return CookieKeep, nil, err
		}
	}
	r.cookieMaxAge = 0
	if u.ttlSet {
		r.cookieMaxAge = u.ttl
	}
	// Nothing of the old session carries over: its unsets mean nothing to
	// the new one, which gets the sets alone.
	u.Invalidate, u.Rotate = false, false
	u.unsets = u.unsets[:0]
	u.Created = time.Now().UnixMilli()
	if err := s.change(r.newID, u, true, nil, nil); err != nil {
		return CookieKeep, nil, err
	}
	return CookieSet, r.newID, nil
}

// unknown returns nil if the store holds nothing at all under id (not even
// a tombstone, so that no ended session's ID comes back to life), ErrBadID
// if it does, and the store's error if it cannot tell.
func (s *Store) unknown(id []byte) error {
	if s.local != nil {
		if _, err := s.local.Get(id); err == nil {
			return fmt.Errorf("%w: %q is held by the store", ErrBadID, id)
		}
	}
	switch _, err := s.shared.Get(id); {
	case err == nil:
		return fmt.Errorf("%w: %q is held by the store", ErrBadID, id)
	case errors.Is(err, ErrNotFound):
		return nil
	default:
		return err
	}
}
