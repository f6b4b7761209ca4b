package proxy

import (
	"bytes"
	"encoding/base64"
	"net/netip"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"sessionproxy/proxy/rules"
)

// A Guard decides whether a request its route matched goes on to the
// route's Handler: allow/deny (ACL), basic_auth (BasicAuth) and
// rate_limit (RateLimit) are the kinds. Guards run after the Router has
// settled the client address (RealIP), in the order of Route.Guards.
type Guard interface {
	// Admit returns true to let the request go on. To refuse, it writes
	// the answer into ctx.Response and returns false.
	Admit(ctx *fasthttp.RequestCtx) bool
}

var (
	_ Guard = (*ACL)(nil)
	_ Guard = (*BasicAuth)(nil)
	_ Guard = (*RateLimit)(nil)
)

// serveRuled runs a matched route that has guards or header rules: the
// guards first (a refusal is answered, counted and logged here), then the
// request's header rules, the handler, and the response's header rules,
// which apply to every answer of the route, refusals included (nginx's
// add_header ... always).
func (rt *Router) serveRuled(ctx *fasthttp.RequestCtx, r *Route, t *reqTarget, matched int) {
	for _, g := range r.Guards {
		if !g.Admit(ctx) {
			start := time.Now()
			r.Headers.response(ctx)
			rt.Recorder.finish(ctx, start)
			return
		}
	}
	r.Headers.request(ctx)
	if r.Rewrite {
		rewritePath(ctx, t, r, matched)
	}
	if r.Headers != nil {
		ctx.SetUserValue(routeHeadersKey{}, r.Headers)
	}
	r.Handler.ServeHTTP(ctx)
	// A Proxy has applied them already (applyRouteHeaders); any other
	// handler's answer gets them here.
	applyRouteHeaders(ctx)
}

// routeHeadersKey holds, as a user value, the response header rules of
// the route a request matched, until they are applied.
type routeHeadersKey struct{}

// applyRouteHeaders applies the response header rules of the request's
// route once. A Proxy calls it before it logs the request and before it
// writes an HTTP/1.0 client's streamed answer itself (closeDelimited),
// after which an edit would come too late.
func applyRouteHeaders(ctx *fasthttp.RequestCtx) {
	if r, ok := ctx.UserValue(routeHeadersKey{}).(*HeaderRules); ok {
		ctx.RemoveUserValue(routeHeadersKey{})
		r.response(ctx)
	}
}

func refuse(ctx *fasthttp.RequestCtx, status int, reason string) {
	resp := &ctx.Response
	resp.Reset()
	resp.SetStatusCode(status)
	resp.Header.SetContentType("text/plain; charset=utf-8")
	resp.SetBodyString(reason)
}

// clientAddr is the request's client as section 12 defines it: the
// Router's RealIP has replaced the peer with the trusted client already.
func clientAddr(ctx *fasthttp.RequestCtx) (netip.Addr, bool) {
	return addrOf(ctx.RemoteAddr())
}

// ACL is allow/deny by address range (nginx's allow and deny, in the one
// order routes can express): an address in Deny is refused; with Allow
// set, so is every address outside it. A refusal is 403.
type ACL struct {
	Allow, Deny []netip.Prefix
}

// Admit implements Guard.
func (a *ACL) Admit(ctx *fasthttp.RequestCtx) bool {
	ip, ok := clientAddr(ctx)
	if ok && contains(a.Deny, ip) || len(a.Allow) > 0 && !(ok && contains(a.Allow, ip)) {
		refuse(ctx, fasthttp.StatusForbidden, "forbidden\n")
		return false
	}
	return true
}

func contains(list []netip.Prefix, ip netip.Addr) bool {
	for _, p := range list {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// BasicAuth asks for a user and password (RFC 7617) checked against an
// htpasswd file of bcrypt entries; a request without a valid pair gets
// 401 with WWW-Authenticate. The Authorization header goes on to the
// backend, as with nginx's auth_basic.
type BasicAuth struct {
	Users *rules.Htpasswd // required
	// challenge is the WWW-Authenticate value, built by NewBasicAuth.
	challenge []byte
}

// NewBasicAuth returns a BasicAuth for realm over users.
func NewBasicAuth(realm string, users *rules.Htpasswd) *BasicAuth {
	q := strconv.Quote(realm)
	return &BasicAuth{Users: users, challenge: []byte(`Basic realm=` + q + `, charset="UTF-8"`)}
}

var (
	hdrWWWAuthenticate = []byte("WWW-Authenticate")
	basicPrefix        = []byte("basic ")
)

// Admit implements Guard.
func (b *BasicAuth) Admit(ctx *fasthttp.RequestCtx) bool {
	v := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	if len(v) > len(basicPrefix) && equalFold(v[:len(basicPrefix)], "basic ") {
		s := scratchPool.Get().(*scratch)
		enc := bytes.TrimSpace(v[len(basicPrefix):])
		n := base64.StdEncoding.DecodedLen(len(enc))
		if cap(s.b) < n {
			s.b = make([]byte, n)
		}
		n, err := base64.StdEncoding.Decode(s.b[:n], enc)
		ok := false
		if err == nil {
			if user, pass, found := bytes.Cut(s.b[:n], []byte(":")); found {
				ok = b.Users.Verify(user, pass)
			}
		}
		scratchPool.Put(s)
		if ok {
			return true
		}
	}
	refuse(ctx, fasthttp.StatusUnauthorized, "unauthorized\n")
	ctx.Response.Header.SetCanonical(hdrWWWAuthenticate, b.challenge)
	return false
}

// RateLimit refuses a key's requests beyond a rate with 429 and
// Retry-After (rules.Limiter: nginx's limit_req with burst and nodelay).
// The key is the client address, or with BySession the session cookie;
// a request without one is counted by its address.
type RateLimit struct {
	Limiter   *rules.Limiter // required
	BySession bool
	Cookie    string // the session cookie's name, with BySession
}

var hdrRetryAfter = []byte("Retry-After")

// Admit implements Guard.
func (l *RateLimit) Admit(ctx *fasthttp.RequestCtx) bool {
	var key [1 + 16]byte // a kind byte, so that an address and a cookie never share a bucket
	k := key[:0]
	if l.BySession {
		if c := ctx.Request.Header.Cookie(l.Cookie); len(c) > 0 {
			return l.take(ctx, c, 's')
		}
	}
	if ip, ok := clientAddr(ctx); ok {
		a := ip.As16()
		k = append(append(k, 'a'), a[:]...)
	}
	return l.take(ctx, k, 0)
}

func (l *RateLimit) take(ctx *fasthttp.RequestCtx, key []byte, kind byte) bool {
	if kind != 0 {
		// A session key gets its own kind byte in front through the
		// hash's input: reuse the scratch buffer.
		s := scratchPool.Get().(*scratch)
		s.b = append(append(s.b[:0], kind), key...)
		ok, wait := l.Limiter.Allow(s.b, time.Now())
		scratchPool.Put(s)
		return l.answer(ctx, ok, wait)
	}
	ok, wait := l.Limiter.Allow(key, time.Now())
	return l.answer(ctx, ok, wait)
}

func (l *RateLimit) answer(ctx *fasthttp.RequestCtx, ok bool, wait time.Duration) bool {
	if ok {
		return true
	}
	refuse(ctx, fasthttp.StatusTooManyRequests, "too many requests\n")
	secs := int((wait + time.Second - 1) / time.Second)
	var b [20]byte
	ctx.Response.Header.SetCanonical(hdrRetryAfter, strconv.AppendInt(b[:0], int64(max(secs, 1)), 10))
	return false
}
