package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"sessionproxy/sessionstore"
)

// Sessions carries sessions between the store and the backends: it reads
// the session cookie, hands the session to the backend in X-Session-*
// request headers, and applies the backend's X-Session-* response headers.
// Fields are settings; do not change them after the first request. Safe
// for concurrent use by multiple goroutines.
type Sessions struct {
	// Store holds the sessions. Required.
	Store *sessionstore.Store

	// Cookie is the session cookie's name (default SPSESSIONID).
	Cookie string

	// CookieSecure adds Secure to the cookie; it is also added on TLS
	// connections.
	CookieSecure bool

	// SameSite is the cookie's SameSite value: Lax, Strict or None
	// (default Lax).
	SameSite string

	// Ignore, if not nil, matches request paths that get no session at all
	// (memcached-session-manager's requestUriIgnorePattern).
	Ignore *regexp.Regexp

	// CreateAlways stores and cookies every new session, even when the
	// backend sets nothing; by default a session is created on its first
	// write (create: on_write).
	CreateAlways bool

	// NewOnStoreDown starts a fresh session when a client's session cannot
	// be loaded because the store is down; by default such a request gets
	// 503 (store_down: reject), never a silent new session.
	NewOnStoreDown bool

	// Logger receives rejected updates and store errors (default slog.Default()).
	Logger *slog.Logger

	once    sync.Once // init, run by the Proxy
	metrics *Metrics
	attrs   []byte // "; Path=/; HttpOnly; SameSite=…"
}

// Lookup results, as counted in sessionproxy_session_lookups_total.
const (
	lookupLocal = iota
	lookupMemcached
	lookupMiss
	lookupError
	numLookups
)

var lookupNames = [numLookups]string{"local", "memcached", "miss", "error"}

var errStoreDown = &Error{fasthttp.StatusServiceUnavailable, "session store unavailable"}

func (s *Sessions) init(m *Metrics, gauges *metrics.Set) {
	s.metrics = m
	for i, n := range s.Store.Nodes() {
		node := func() sessionstore.NodeState { return s.Store.Nodes()[i] }
		gauges.NewGauge(fmt.Sprintf(`sessionproxy_memcached_up{node=%q}`, n.ID), func() float64 {
			if node().Up {
				return 1
			}
			return 0
		})
		gauges.NewGauge(fmt.Sprintf(`sessionproxy_handoff_pending{node=%q}`, n.ID), func() float64 {
			return float64(node().HandoffPending)
		})
		gauges.NewGauge(fmt.Sprintf(`sessionproxy_handoff_replayed_total{node=%q}`, n.ID), func() float64 {
			return float64(node().HandoffReplayed)
		})
		gauges.NewGauge(fmt.Sprintf(`sessionproxy_memcached_copied_total{node=%q}`, n.ID), func() float64 {
			return float64(node().Copied)
		})
		gauges.NewGauge(fmt.Sprintf(`sessionproxy_memcached_catchups_total{node=%q}`, n.ID), func() float64 {
			return float64(node().Catchups)
		})
		gauges.NewGauge(fmt.Sprintf(`sessionproxy_memcached_last_catchup_seconds{node=%q}`, n.ID), func() float64 {
			return node().LastCatchup.Seconds()
		})
	}
	if local := s.Store.Local(); local != nil {
		gauges.NewGauge("sessionproxy_local_cache_entries", func() float64 { return float64(local.EntryCount()) })
		gauges.NewGauge("sessionproxy_local_cache_hit_rate", local.HitRate)
	}
	gauges.NewGauge("sessionproxy_sessions_pending_writeback", func() float64 { return float64(s.Store.Dirty()) })
	gauges.NewGauge("sessionproxy_session_async_pending", func() float64 { return float64(s.Store.Pending()) })
	gauges.NewGauge("sessionproxy_session_async_written", func() float64 { w, _ := s.Store.AsyncStats(); return float64(w) })
	gauges.NewGauge("sessionproxy_session_async_inline", func() float64 { _, i := s.Store.AsyncStats(); return float64(i) })
	sameSite := s.SameSite
	if sameSite == "" {
		sameSite = "Lax"
	}
	s.attrs = []byte("; Path=/; HttpOnly; SameSite=" + sameSite)
	if s.Cookie == "" {
		s.Cookie = "SPSESSIONID"
	}
}

func (s *Sessions) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

// sessionState is one request's session, kept between load and apply.
type sessionState struct {
	active   bool   // session handling applies to this request
	lookup   string // for the access log
	isNew    bool   // this request started the session
	exists   bool   // loaded from the store
	hadValid bool   // the client sent a well-formed session cookie
	id       []byte
	newID    []byte
	sess     sessionstore.Session
	update   sessionstore.Update
	buf      []byte
}

func (st *sessionState) reset() {
	st.active, st.isNew, st.exists, st.hadValid = false, false, false, false
	st.lookup = "none"
	st.id, st.newID, st.buf = st.id[:0], st.newID[:0], st.buf[:0]
	st.sess.Reset()
	st.update.Reset()
}

// load resolves the request's session and adds the X-Session-* request
// headers (the client's own were removed before).
func (s *Sessions) load(ctx *fasthttp.RequestCtx, st *sessionState) *Error {
	st.reset()
	// A response that comes back after a rotation its request did not
	// know of follows the session to its new ID (sessionstore.Update).
	st.update.Begun = time.Now().UnixMilli()
	if s.Ignore != nil && s.Ignore.Match(ctx.Path()) {
		st.lookup = "ignored"
		return nil
	}
	st.active = true
	if c := ctx.Request.Header.Cookie(s.Cookie); len(c) > 0 && sessionstore.ValidID(c) {
		st.hadValid = true
		src, err := s.Store.Load(c, &st.sess)
		switch {
		case err == nil:
			st.exists = true
			st.id = append(st.id, c...)
			st.lookup = src.String()
			s.metrics.lookups[lookupLocal+int(src)].Inc()
		case errors.Is(err, sessionstore.ErrNotFound):
			st.lookup = "miss"
			s.metrics.lookups[lookupMiss].Inc()
		default:
			st.lookup = "error"
			s.metrics.lookups[lookupError].Inc()
			if !s.NewOnStoreDown {
				return errStoreDown
			}
		}
	}
	h := &ctx.Request.Header
	if !st.exists {
		// Unknown, forged or malformed IDs are never adopted.
		st.isNew = true
		st.id = sessionstore.AppendNewID(st.id[:0])
		st.sess.Reset()
		st.sess.Created = time.Now().UnixMilli()
		h.Set("X-Session-New", "1")
	}
	h.SetBytesV("X-Session-Id", st.id)
	st.buf = strconv.AppendInt(st.buf[:0], st.sess.Created, 10)
	h.SetBytesV("X-Session-Created", st.buf)
	for i := 0; i < st.sess.Len(); i++ {
		name, value := st.sess.Attr(i)
		st.buf = append(append(st.buf[:0], "X-Session-Attr-"...), name...)
		h.AddBytesKV(st.buf, value)
	}
	return nil
}

// apply reads the backend's X-Session-* response headers, removes them all,
// and applies them to the session. An update that cannot be applied is not
// applied at all: the client gets 502 with the reason.
func (s *Sessions) apply(ctx *fasthttp.RequestCtx, st *sessionState, e *headerEditor) *Error {
	h := &ctx.Response.Header
	if !st.active {
		e.stripSessionHeaders(h)
		return nil
	}
	u := &st.update // reset by load
	e.reset()
	var bad error
	for k, v := range h.All() {
		if !hasPrefixFold(k, sessionHeaderPrefix) {
			continue
		}
		e.remember(k)
		if bad == nil {
			bad = parseInstruction(u, k[len(sessionHeaderPrefix):], v)
		}
	}
	for _, k := range e.keys {
		h.DelBytes(k)
	}
	if bad != nil {
		return s.reject(ctx, bad)
	}

	if u.Invalidate {
		return s.invalidate(ctx, st)
	}
	if st.isNew {
		u.Rotate = false // a new session has a fresh ID already
		u.Created = st.sess.Created
	}
	needed := !u.Empty() || (st.isNew && s.CreateAlways) || (st.exists && s.Store.NeedsRefresh(&st.sess))
	if !needed {
		if st.lookup == "miss" {
			// The client's cookie names a session that no longer exists
			// and none replaces it: expire it, or every later request
			// would look it up again.
			s.setCookie(ctx, nil, st)
		}
		return nil
	}
	if u.Rotate {
		st.newID = sessionstore.AppendNewID(st.newID[:0])
	}
	err := s.Store.Update(st.id, u, st.isNew, st.newID, nil)
	switch {
	case err == nil:
	case errors.Is(err, sessionstore.ErrTooLarge):
		return s.reject(ctx, err)
	case errors.Is(err, sessionstore.ErrNotFound):
		// Invalidated or expired by another request meanwhile: there is
		// no session left to change.
		s.setCookie(ctx, nil, st)
		return nil
	default:
		s.logger().Error("session write failed", "error", err, "session", string(st.id))
		return errStoreDown
	}
	switch {
	case u.Rotate:
		s.setCookie(ctx, st.newID, st)
	case st.isNew:
		s.setCookie(ctx, st.id, st)
	}
	return nil
}

// parseInstruction records one X-Session-<rest>: <v> response header.
// Headers it does not know (a backend echoing X-Session-Id) are dropped.
func parseInstruction(u *sessionstore.Update, rest, v []byte) error {
	switch {
	case hasPrefixFold(rest, "set-"):
		return u.Set(rest[len("set-"):], v)
	case equalFold(rest, "unset"):
		var err error
		connectionTokens(v, func(name []byte) {
			if err == nil {
				err = u.Unset(name)
			}
		})
		return err
	case equalFold(rest, "invalidate"):
		on, err := flag(rest, v)
		u.Invalidate = u.Invalidate || on
		return err
	case equalFold(rest, "rotate"):
		on, err := flag(rest, v)
		u.Rotate = u.Rotate || on
		return err
	}
	return nil
}

func flag(name, v []byte) (bool, error) {
	v = trimSpace(v)
	switch {
	case equalFold(v, "1"), equalFold(v, "true"):
		return true, nil
	case len(v) == 0, equalFold(v, "0"), equalFold(v, "false"):
		return false, nil
	}
	return false, fmt.Errorf("X-Session-%s must be 1, got %q", name, v)
}

func (s *Sessions) reject(ctx *fasthttp.RequestCtx, err error) *Error {
	s.metrics.rejected.Inc()
	reason := err.Error()
	switch {
	case errors.Is(err, sessionstore.ErrBadName):
		reason = "bad attribute name" + reason[len(sessionstore.ErrBadName.Error()):]
	case errors.Is(err, sessionstore.ErrTooLarge):
		reason = "session over max_size" + reason[len(sessionstore.ErrTooLarge.Error()):]
	}
	s.logger().Error("backend sent an unusable session update", "reason", reason,
		"path", string(ctx.Path()), "request_id", string(ctx.Request.Header.Peek("X-Request-Id")))
	return &Error{fasthttp.StatusBadGateway, "invalid session update: " + reason}
}

func (s *Sessions) invalidate(ctx *fasthttp.RequestCtx, st *sessionState) *Error {
	if st.exists {
		if err := s.Store.Update(st.id, &st.update, false, nil, nil); err != nil && !errors.Is(err, sessionstore.ErrNotFound) {
			s.logger().Error("session invalidate failed", "error", err, "session", string(st.id))
			return errStoreDown
		}
	}
	if st.exists || st.hadValid {
		s.setCookie(ctx, nil, st)
	}
	return nil
}

// setCookie sets the session cookie to id, or expires it when id is nil.
// The header is written by hand so that its attributes read exactly as
// documented (fasthttp's Cookie writes them in its own spelling).
func (s *Sessions) setCookie(ctx *fasthttp.RequestCtx, id []byte, st *sessionState) {
	b := append(append(st.buf[:0], s.Cookie...), '=')
	b = append(b, id...)
	if id == nil {
		b = append(b, "; Max-Age=0"...)
	}
	b = append(b, s.attrs...)
	if s.CookieSecure || ctx.IsTLS() {
		b = append(b, "; Secure"...)
	}
	st.buf = b
	ctx.Response.Header.AddBytesKV(setCookieKey, b)
}

var setCookieKey = []byte(fasthttp.HeaderSetCookie)

func (s *Sessions) nodeStatus() []NodeStatus {
	out := []NodeStatus{}
	for _, n := range s.Store.Nodes() {
		out = append(out, NodeStatus{ID: n.ID, Addr: n.Addr, Up: n.Up, Failover: n.Failover,
			State: n.State.String(), HandoffPending: n.HandoffPending, HandoffReplayed: n.HandoffReplayed,
			Copied: n.Copied, Catchups: n.Catchups, LastCatchupMs: n.LastCatchup.Milliseconds()})
	}
	return out
}

// SessionJSON is the document of GET /sessions/<id>.
type SessionJSON struct {
	ID         string            `json:"id"`
	Created    int64             `json:"created"`
	Version    uint64            `json:"version"`
	Attributes map[string]string `json:"attributes"`
}

// adminSession answers 404 and returns false unless sessions are on and id
// is well formed.
func (p *Proxy) adminSession(w http.ResponseWriter, id string) bool {
	switch {
	case p.Sessions == nil:
		writeText(w, http.StatusNotFound, "sessions are not enabled")
	case !sessionstore.ValidID([]byte(id)):
		writeText(w, http.StatusNotFound, "no such session")
	default:
		return true
	}
	return false
}

func (p *Proxy) serveSessionGet(w http.ResponseWriter, id string) {
	if !p.adminSession(w, id) {
		return
	}
	var sess sessionstore.Session
	_, err := p.Sessions.Store.Load([]byte(id), &sess)
	switch {
	case errors.Is(err, sessionstore.ErrNotFound):
		writeText(w, http.StatusNotFound, "no such session")
		return
	case err != nil:
		writeText(w, http.StatusServiceUnavailable, "session store unavailable")
		return
	}
	doc := SessionJSON{ID: id, Created: sess.Created, Version: sess.Version, Attributes: map[string]string{}}
	for i := 0; i < sess.Len(); i++ {
		n, v := sess.Attr(i)
		doc.Attributes[string(n)] = string(v)
	}
	writeJSON(w, http.StatusOK, doc)
}

func (p *Proxy) serveSessionDelete(w http.ResponseWriter, id string) {
	if !p.adminSession(w, id) {
		return
	}
	if err := p.Sessions.Store.Delete([]byte(id)); err != nil {
		writeText(w, http.StatusServiceUnavailable, "session store unavailable")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
