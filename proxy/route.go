package proxy

import (
	"bytes"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"sessionproxy/internal/urlpath"
	"sessionproxy/proxy/rules"
)

// Handler serves the requests of one route. *Proxy (an upstream) and
// *Static (files below a directory) are the two kinds.
type Handler interface {
	ServeHTTP(ctx *fasthttp.RequestCtx)
}

var (
	_ Handler = (*Proxy)(nil)
	_ Handler = (*Static)(nil)
	_ Handler = (*Router)(nil)
)

// Route sends the requests it matches to Handler. An empty Host or Path
// matches anything.
type Route struct {
	// Host is a lower-case host name matched exactly, or "*.example.com"
	// for the subdomains of example.com (not example.com itself). The
	// request's host (an absolute-form target's, else Host) is compared
	// without its port and trailing dot, in any case.
	Host string

	// Path is a prefix of the normalised path (see normalizePath: %-escapes
	// decoded once, ";" parameters, "..", "." and "//" resolved),
	// compared byte for byte.
	Path string

	// Rewrite replaces the matched Path with RewritePrefix before the
	// request is handed on, as nginx's proxy_pass with a URI does.
	Rewrite       bool
	RewritePrefix string

	// Exact makes Path match the whole normalised path only (nginx's
	// "location =").
	Exact bool

	// Regex, if not nil, is matched against the normalised path instead
	// of Path (nginx's "location ~" and "~*"; RE2, compiled at load).
	Regex *rules.PathRegex

	// Guards decide, in order, whether a matched request reaches Handler
	// (allow/deny, basic_auth, rate_limit); the first that refuses
	// answers it.
	Guards []Guard

	// Headers, if not nil, edits the request before Handler and the
	// response after it.
	Headers *HeaderRules

	Handler Handler

	// Metrics, if not nil, counts the requests the route matches
	// (Metrics.Route, found when the configuration is loaded).
	Metrics *RouteMetrics
}

// matches reports whether r matches a request for host (its Host header
// or the host of an absolute-form target, port included) and path
// (normalised). It does not allocate.
func (r *Route) matches(host, path []byte) bool {
	_, ok := r.match(host, path)
	return ok
}

// match reports whether the route matches, and how many bytes of path its
// Path covers.
func (r *Route) match(host, path []byte) (n int, ok bool) {
	return r.matchHost(matchHost(host), path)
}

// matchHost is match with the host already through matchHost (reqline.go),
// which the Router does once for its whole table.
func (r *Route) matchHost(host, path []byte) (n int, ok bool) {
	if r.Host != "" && !hostMatches(r.Host, host) {
		return 0, false
	}
	switch {
	case r.Regex != nil:
		if bytes.IndexByte(path, '%') < 0 {
			return 0, r.Regex.Match(path)
		}
		// As for prefixes (prefixLen), the %2F and %25 that
		// normalizePath leaves escaped are read as "/" and "%": a regex
		// for ^/admin/ matches /admin%2Fx, as nginx decodes it.
		s := scratchPool.Get().(*scratch)
		s.b = appendUnescapedSlashes(s.b[:0], path)
		ok = r.Regex.Match(s.b)
		scratchPool.Put(s)
		return 0, ok
	case r.Exact:
		n, ok = prefixLen(path, r.Path)
		return n, ok && n == len(path)
	}
	return prefixLen(path, r.Path)
}

// prefixLen reports whether path, a normalised path, starts with prefix,
// and how many of its bytes that prefix covers. The %2F and %25 that
// normalizePath leaves escaped are read as the "/" and "%" they stand
// for: /admin%2Fx is matched by /admin/, as nginx and every backend that
// decodes its path read it, instead of slipping past that route to
// another upstream where the app sees /admin/x.
func prefixLen(path []byte, prefix string) (int, bool) {
	i := 0
	for j := 0; j < len(prefix); j++ {
		if i >= len(path) {
			return 0, false
		}
		c := path[i]
		if c == '%' && i+2 < len(path) && path[i+1] == '2' {
			switch path[i+2] {
			case 'F', 'f':
				c, i = '/', i+2
			case '5':
				c, i = '%', i+2
			}
		}
		if c != prefix[j] {
			return 0, false
		}
		i++
	}
	return i, true
}

// appendUnescapedSlashes appends path with its %2F and %25 read as the
// "/" and "%" they stand for.
func appendUnescapedSlashes(dst, path []byte) []byte {
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c == '%' && i+2 < len(path) && path[i+1] == '2' {
			switch path[i+2] {
			case 'F', 'f':
				c, i = '/', i+2
			case '5':
				c, i = '%', i+2
			}
		}
		dst = append(dst, c)
	}
	return dst
}

// stripPort returns the host of a Host header value without its port;
// "[::1]:8080" gives "[::1]".
func stripPort(h []byte) []byte {
	for i := len(h) - 1; i >= 0; i-- {
		switch h[i] {
		case ':':
			return h[:i]
		case ']':
			return h
		}
	}
	return h
}

// hostMatches compares a lower-case pattern with a host in any case.
func hostMatches(pattern string, host []byte) bool {
	if len(pattern) > 2 && pattern[0] == '*' && pattern[1] == '.' {
		suffix := pattern[1:] // ".example.com": subdomains only
		return len(host) > len(suffix) && equalFold(host[len(host)-len(suffix):], suffix)
	}
	return equalFold(host, pattern)
}

// Router sends each request to the Handler of the first Route that matches
// it, or to Default. Before matching it settles the client's address
// (RealIP) and answers the plain listener with a redirect to HTTPS when
// asked to. Fields are settings: set them before the first request. Safe
// for concurrent use by multiple goroutines.
type Router struct {
	Routes  []Route
	Default Handler // requests no route matches: the "default" upstream

	// RealIP, if not nil, decides the client address from trusted peers'
	// X-Forwarded-For.
	RealIP *RealIP

	// RedirectHTTPSPort, if not empty, makes every request that did not
	// come over TLS a 308 to the same URL on https with this port ("443"
	// is left out of the URL).
	RedirectHTTPSPort string

	// Upstreams lists the proxies of every upstream, "default" first, for
	// the admin listener's /status and /metrics.
	Upstreams []*Proxy

	// Recorder counts and logs the redirects; nil: not counted.
	Recorder *Recorder

	index *routeIndex // BuildIndex's; nil: walk the table
}

// scratch is a per-request buffer for building paths and URLs.
type scratch struct{ b []byte }

var scratchPool = sync.Pool{New: func() any { return &scratch{b: make([]byte, 0, 256)} }}

// ServeHTTP routes one request. It is a fasthttp.RequestHandler.
//
// It reads the request line first (reqline.go): a version other than
// HTTP/1.0 or 1.1 gets 505, a path that climbs above "/" or does not
// decode gets 400. Routes match on the normalised path, and on the host
// of an absolute-form target (GET http://host/x) when there is one, which
// also replaces Host. The target itself goes on as the client wrote it
// unless a route rewrites it.
func (rt *Router) ServeHTTP(ctx *fasthttp.RequestCtx) {
	rt.RealIP.apply(ctx) // also with none: it clears an earlier request's client
	h := &ctx.Request.Header
	if !supportedVersion(h) {
		rt.refuse(ctx, errVersion)
		return
	}
	origin, form := splitTarget(h.RequestURI())
	if authorityHasUserinfo(h, origin, form) {
		rt.refuse(ctx, errUserinfo)
		return
	}
	if form == absoluteForm {
		// The request line's host wins over Host (RFC 9112, section
		// 3.2.2), for the routes and for the backend; fasthttp's parse
		// of it is lower-cased and without userinfo.
		h.SetHostBytes(ctx.Request.URI().Host())
	}
	host := h.Host()
	t := targetPool.Get().(*reqTarget)
	var err error
	if form == otherForm {
		// "*" or CONNECT's authority: no path; no route with a path
		// matches it.
		t.path = append(t.path[:0], origin...)
	} else {
		raw := pathOf(origin)
		t.path, err = normalizePath(t.path[:0], raw)
		// The backend gets the URI's original path, then "?" and the
		// query if there is one. fasthttp reads an origin-form
		// //x/http://y as a host x and a path /http://y, and drops the
		// "?" of an empty query: put back what the client sent.
		sent := raw
		if len(origin) == len(raw)+1 && origin[len(raw)] == '?' {
			sent = origin
		}
		if u := ctx.Request.URI(); !bytes.Equal(u.PathOriginal(), sent) {
			u.SetPathBytes(sent)
		}
	}
	switch {
	case err == errPathClimbs:
		rt.refuse(ctx, errClimb)
	case err != nil || hasFragment(origin):
		rt.refuse(ctx, errPath)
	case rt.RedirectHTTPSPort != "" && !ctx.IsTLS():
		rt.redirect(ctx, host, origin)
	default:
		ctx.SetUserValue(targetKey{}, t)
		rt.route(ctx, host, t)
		ctx.RemoveUserValue(targetKey{})
	}
	targetPool.Put(t)
}

// route hands the request to the first route that matches it.
func (rt *Router) route(ctx *fasthttp.RequestCtx, host []byte, t *reqTarget) {
	mh := matchHost(host)
	if x := rt.index; x != nil {
		if i, n, ok := x.first(rt.Routes, mh, t.path); ok {
			rt.serve(ctx, &rt.Routes[i], t, n)
			return
		}
		rt.Default.ServeHTTP(ctx)
		return
	}
	for i := range rt.Routes {
		r := &rt.Routes[i]
		if n, ok := r.matchHost(mh, t.path); ok {
			rt.serve(ctx, r, t, n)
			return
		}
	}
	rt.Default.ServeHTTP(ctx)
}

// serve hands the request to r, which matched it, n bytes of its path.
func (rt *Router) serve(ctx *fasthttp.RequestCtx, r *Route, t *reqTarget, n int) {
	if r.Metrics == nil {
		rt.serveRoute(ctx, r, t, n)
		return
	}
	start := time.Now()
	rt.serveRoute(ctx, r, t, n)
	r.Metrics.count(time.Since(start))
}

// serveRoute is serve without the route's counting.
func (rt *Router) serveRoute(ctx *fasthttp.RequestCtx, r *Route, t *reqTarget, n int) {
	if len(r.Guards) > 0 || r.Headers != nil {
		rt.serveRuled(ctx, r, t, n) // guards.go
		return
	}
	if r.Rewrite {
		rewritePath(ctx, t, r, n)
	}
	r.Handler.ServeHTTP(ctx)
}

// refuse answers a request the Router sends nowhere, with the error
// pages of the default upstream.
func (rt *Router) refuse(ctx *fasthttp.RequestCtx, e *Error) {
	start := time.Now()
	var pages *ErrorPages
	if len(rt.Upstreams) > 0 {
		pages = rt.Upstreams[0].ErrorPages
	}
	pages.write(ctx, e)
	rt.Recorder.finish(ctx, start)
}

// rewritePath replaces the matched prefix of the normalised path, in t
// for the checks that follow (sessions' ignore pattern) and in the URI
// for the backend, %-escaped again: the normalised path is decoded.
func rewritePath(ctx *fasthttp.RequestCtx, t *reqTarget, r *Route, matched int) {
	s := scratchPool.Get().(*scratch)
	b := append(s.b[:0], r.RewritePrefix...)
	rest := t.path[matched:]
	if len(b) > 0 && b[len(b)-1] == '/' && len(rest) > 0 && rest[0] == '/' {
		rest = rest[1:]
	}
	b = append(b, rest...)
	t.path = append(t.path[:0], b...)
	b = urlpath.AppendEscaped(b[:0], t.path)
	ctx.Request.URI().SetPathBytes(b)
	s.b = b
	scratchPool.Put(s)
}

// redirect answers 308 to https://<host without port>[:port]<path and
// query as the client sent them>. A request without a host has no URL
// to send the client to: 400.
func (rt *Router) redirect(ctx *fasthttp.RequestCtx, host, origin []byte) {
	host = stripPort(host)
	if len(host) == 0 {
		rt.refuse(ctx, errNoHost)
		return
	}
	start := time.Now()
	s := scratchPool.Get().(*scratch)
	b := append(s.b[:0], "https://"...)
	b = append(b, host...)
	if rt.RedirectHTTPSPort != "443" {
		b = append(append(b, ':'), rt.RedirectHTTPSPort...)
	}
	if len(origin) == 0 || origin[0] != '/' {
		b = append(b, '/') // http://host or http://host?q
	}
	b = append(b, origin...)
	resp := &ctx.Response
	resp.Reset()
	resp.SetStatusCode(fasthttp.StatusPermanentRedirect)
	resp.Header.SetCanonical(hdrLocation, b)
	s.b = b
	scratchPool.Put(s)
	rt.Recorder.finish(ctx, start)
}

var hdrLocation = []byte("Location")

// Recorder counts and logs the requests that no Proxy answers: static
// files and redirects. A nil Recorder records nothing.
type Recorder struct {
	Metrics   *Metrics     // required
	AccessLog AccessLogger // nil: not logged
}

var infoPool = sync.Pool{New: func() any { return new(AccessInfo) }}

// finish gives the response its X-Request-Id, counts it and logs it.
func (r *Recorder) finish(ctx *fasthttp.RequestCtx, start time.Time) {
	s := scratchPool.Get().(*scratch)
	if id := ctx.Request.Header.Peek("X-Request-Id"); len(id) > 0 {
		s.b = append(s.b[:0], id...)
	} else {
		s.b = appendRequestID(s.b[:0])
		ctx.Request.Header.SetCanonical(hdrXRequestID, s.b) // for the access log
	}
	ctx.Response.Header.SetCanonical(hdrXRequestID, s.b)
	if r != nil {
		d := time.Since(start)
		r.Metrics.none.count(ctx.Response.StatusCode(), d)
		if r.AccessLog != nil {
			info := infoPool.Get().(*AccessInfo)
			*info = AccessInfo{Start: start, Duration: d, Session: "none"}
			logAccess(r.AccessLog, ctx, info)
			infoPool.Put(info)
		}
	}
	scratchPool.Put(s)
}

// UpstreamName names p's pool in /status and in the upstream label of its
// backends' metrics: Upstream, or "default".
func (p *Proxy) UpstreamName() string { return p.upstream() }

func (p *Proxy) upstream() string {
	if p.Upstream == "" {
		return "default"
	}
	return p.Upstream
}

// shareClients makes p send through the backend connections of
// p.ClientsFrom, whose gauges already describe them.
func (p *Proxy) shareClients() {
	src := p.ClientsFrom
	src.once.Do(src.init)
	p.clients, p.gauges = src.clients, src.gauges
	if p.FastCGI != nil && src.FastCGI != nil && *p.FastCGI != *src.FastCGI {
		// Another script rule (FrontController): the transport holds
		// it, so p has transports of its own to the same backends,
		// whose requests Pool.Take counts with src's and whose gauges
		// src's describe.
		p.clients = p.newClients()
	}
	if p.Sessions != nil {
		p.Sessions.once.Do(func() { p.Sessions.init(p.Metrics, p.gauges) })
	}
}
