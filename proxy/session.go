package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"sync"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"sessionproxy/internal/promtext"
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

	// CookieDomain, if set, is the cookie's Domain; CookiePath its Path
	// (default "/"). Both are on every Set-Cookie, deletions included, or
	// a browser would keep the cookie a deletion was meant for.
	CookieDomain string
	CookiePath   string

	// Ignore, if not nil, matches request paths that get no session at all
	// (memcached-session-manager's requestUriIgnorePattern). It is matched
	// against the normalised path ("%2e%2e", "..;x" and "//" resolved),
	// after a route's rewrite_prefix.
	Ignore *regexp.Regexp

	// Logger receives rejected updates and store errors (default slog.Default()).
	Logger *slog.Logger

	once    sync.Once // init, run by the Proxy
	metrics *Metrics
	attrs   []byte // "; Path=/; HttpOnly; SameSite=…"
}

var errStoreDown = &Error{fasthttp.StatusServiceUnavailable, "session store unavailable"}

func (s *Sessions) init(m *Metrics, gauges *metrics.Set) {
	s.metrics = m
	// The store names its own gauges: what is worth watching depends on
	// its kind, which the request path need not know.
	s.Store.RegisterMetrics(func(m sessionstore.Metric) {
		typ := promtext.Gauge
		if m.Counter {
			typ = promtext.Counter
		}
		promtext.Describe(promtext.Family(m.Name), typ, m.Help)
		gauges.NewGauge(m.Name, m.Value) // the library's gauge reads a func; promtext gives it typ
	})
	sameSite := s.SameSite
	if sameSite == "" {
		sameSite = "Lax"
	}
	s.attrs = cookieAttrs(s.CookieDomain, s.CookiePath, sameSite)
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
	active bool // session handling applies to this request
	req    sessionstore.Request
	buf    []byte
}

// lookup is the access log's word for the request's session lookup.
func (st *sessionState) lookup() string {
	if !st.active {
		return "ignored"
	}
	return st.req.Lookup.String()
}

// cookieID returns the session cookie's value: the first that is a
// well-formed ID when the client sent several of the name, else the first.
// A browser sends every cookie of the name that matches the request, the
// most specific path first, so one a sibling subdomain tossed
// (Domain=.example.com; Path=/app) with a value that is no ID came first
// and stood for "no session": the user seemed logged out on those paths
// while the real cookie was sent too. Tomcat likewise reads past an ID it
// cannot use. A first value that is an ID, the usual case, is taken as
// fasthttp finds it; the walk over the cookies does not allocate.
func (s *Sessions) cookieID(h *fasthttp.RequestHeader) []byte {
	v := h.Cookie(s.Cookie)
	if sessionstore.ValidID(v) {
		return v
	}
	for k, w := range h.Cookies() {
		if string(k) == s.Cookie && sessionstore.ValidID(w) {
			return w
		}
	}
	return v
}

// load resolves the request's session and adds the X-Session-* request
// headers (the client's own were removed before).
func (s *Sessions) load(ctx *fasthttp.RequestCtx, st *sessionState) *Error {
	if s.Ignore != nil {
		// An unreadable path was refused by the Router; without one it
		// reads as "" here and gets its session.
		path, _ := normalPath(ctx)
		st.active = !s.Ignore.Match(path)
	} else {
		st.active = true
	}
	if !st.active {
		return nil
	}
	r := &st.req
	err := s.Store.Open(r, s.cookieID(&ctx.Request.Header))
	if r.Lookup != sessionstore.LookupNone {
		s.metrics.lookups[r.Lookup].Inc()
	}
	if err != nil {
		return errStoreDown
	}
	h := &ctx.Request.Header
	if r.New {
		h.Set("X-Session-New", "1")
	}
	h.SetBytesV("X-Session-Id", r.Session.ID)
	st.buf = strconv.AppendInt(st.buf[:0], r.Session.Created, 10)
	h.SetBytesV("X-Session-Created", st.buf)
	for i := 0; i < r.Session.Len(); i++ {
		name, value := r.Session.Attr(i)
		st.buf = append(append(st.buf[:0], "X-Session-Attr-"...), name...)
		h.AddBytesKV(st.buf, value)
	}
	return nil
}

// apply reads the backend's X-Session-* response headers, removes them all,
// and commits them to the session. An update that cannot be applied is not
// applied at all: the client gets 502.
func (s *Sessions) apply(ctx *fasthttp.RequestCtx, st *sessionState, e *headerEditor) *Error {
	h := &ctx.Response.Header
	if !st.active {
		e.stripSessionHeaders(h)
		return nil
	}
	u := &st.req.Change
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
	action, id, err := s.Store.Commit(&st.req)
	switch {
	case errors.Is(err, sessionstore.ErrTooLarge), errors.Is(err, sessionstore.ErrBadID):
		return s.reject(ctx, err)
	case err != nil:
		s.logger().Error("session write failed", "error", err, "session", sessionstore.LogID(st.req.Session.ID))
		return errStoreDown
	}
	switch action {
	case sessionstore.CookieSet:
		s.setCookie(ctx, id, st.req.CookieMaxAge(), st)
	case sessionstore.CookieExpire:
		s.setCookie(ctx, nil, 0, st)
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
		// An adapter whose framework must know the new ID at once names
		// one it drew (CONTRACT.md section 13); anything that is not a
		// flag must be such an ID.
		on, err := flag(rest, v)
		if err != nil {
			return u.RotateTo(trimSpace(v))
		}
		u.Rotate = u.Rotate || on
		return nil
	case equalFold(rest, "max-age"):
		return parseMaxAge(u, v)
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
	case errors.Is(err, sessionstore.ErrBadTTL):
		reason = "X-Session-Max-Age: " + reason[len("sessionstore: "):]
	case errors.Is(err, sessionstore.ErrBadID):
		reason = "X-Session-Rotate: unusable session ID" + reason[len(sessionstore.ErrBadID.Error()):]
	}
	s.logger().Error("backend sent an unusable session update", "reason", reason,
		"path", string(ctx.Path()), "request_id", string(ctx.Request.Header.Peek("X-Request-Id")))
	// The details name the backend's headers and sizes: the log's, not
	// the client's.
	return errBadUpdate
}

// setCookie sets the session cookie to id, or expires it when id is nil.
// maxAge > 0 makes it a persistent cookie of that many seconds (the
// session's own ttl). The header is written by hand so that its
// attributes read exactly as documented (fasthttp's Cookie writes them in
// its own spelling).
func (s *Sessions) setCookie(ctx *fasthttp.RequestCtx, id []byte, maxAge int32, st *sessionState) {
	b := append(append(st.buf[:0], s.Cookie...), '=')
	b = append(b, id...)
	if id == nil {
		b = append(b, "; Max-Age=0"...)
	} else if maxAge > 0 {
		b = append(b, "; Max-Age="...)
		b = strconv.AppendInt(b, int64(maxAge), 10)
	}
	b = append(b, s.attrs...)
	if s.CookieSecure || ctx.IsTLS() {
		b = append(b, "; Secure"...)
	}
	st.buf = b
	ctx.Response.Header.AddBytesKV(setCookieKey, b)
}

var setCookieKey = []byte(fasthttp.HeaderSetCookie)
