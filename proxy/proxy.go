// Package proxy is sessionproxy's HTTP reverse proxy: it balances requests
// across backends, retries the safe ones and carries sessions to backends in
// X-Session-* headers.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"sessionproxy/balancer"
)

// Proxy forwards requests to the backends of a Pool. Fields are settings;
// set them before the first request and do not change them afterwards. A
// zero field means the default given in its comment. Safe for concurrent
// use by multiple goroutines.
type Proxy struct {
	// Settings are what every Proxy of one configuration shares. They are
	// given whole, never field by field, so that a setting cannot be
	// dropped on one route and silently take its default there.
	Settings

	// Pool holds the backends and the balancing policy. Required.
	Pool *balancer.Pool

	// Sessions, if not nil, loads each request's session before forwarding
	// and applies the backend's session headers after.
	Sessions *Sessions

	// Upstream names the pool in /status and in the upstream label of
	// backend metrics (default "default").
	Upstream string

	// ClientsFrom, if not nil, is a Proxy of the same Pool whose backend
	// connections and gauges p shares: a route without session work is a
	// second Proxy over the upstream's clients.
	ClientsFrom *Proxy

	// Pipeline, if above 0, pipelines requests to each plain-HTTP backend:
	// at most this many in flight on one connection, written back to
	// back (docs/config.md, "pipeline"). 0 sends one request per
	// connection at a time.
	Pipeline int

	// FastCGI, if not nil, makes every backend of Pool a FastCGI server
	// (fastcgi:// or fastcgi+unix: URLs, PHP-FPM) and says which script
	// a request runs.
	FastCGI *FastCGI

	once    sync.Once
	clients []*fasthttp.HostClient // by Backend.Index
	gauges  *metrics.Set           // this configuration's backends and nodes
	counts  *upstreamMetrics       // Metrics' counters of this upstream
}

// AccessInfo is what the proxy knows about a finished request beyond the
// request and response themselves.
type AccessInfo struct {
	Start    time.Time
	Duration time.Duration
	Backend  *balancer.Backend // nil if none answered
	Session  string            // session lookup result: local, memcached, miss, new, error, none
	// SessionID is the first bytes of the session ID the backend saw
	// (X-Session-Id), zero without session handling: a copy, as the ID's
	// buffer is reused before a streamed answer is logged.
	SessionID [6]byte
	// Upstream is how long the backends took to answer, tries included
	// (nginx's $upstream_response_time); 0 if none was tried.
	Upstream time.Duration

	// Bytes is the response body's bytes relayed to the client (the
	// body alone, as nginx's $body_bytes_sent; chunk framing is not
	// counted), or -1 if unknown. For a streamed body it is known, and
	// the access log called, only once the body has been relayed:
	// Duration then covers the body too.
	Bytes int64
}

func (p *Proxy) init() {
	if p.Metrics == nil {
		p.Metrics = NewMetrics()
	}
	if p.Tunnels == nil {
		p.Tunnels = new(Tunnels)
	}
	p.Metrics.countTunnels(p.Tunnels)
	p.counts = p.Metrics.upstream(p.upstream())
	if p.ClientsFrom != nil {
		p.shareClients()
		return
	}
	p.clients = p.newClients()
	p.gauges = metrics.NewSet()
	for _, b := range p.Pool.Backends {
		p.gauges.NewGauge(fmt.Sprintf(`sessionproxy_backend_up{upstream=%q,backend=%q}`, p.upstream(), b.URL), func() float64 {
			if b.Available() {
				return 1
			}
			return 0
		})
		p.gauges.NewGauge(fmt.Sprintf(`sessionproxy_backend_active{upstream=%q,backend=%q}`, p.upstream(), b.URL), func() float64 {
			return float64(b.Inflight())
		})
		p.gauges.NewGauge(fmt.Sprintf(`sessionproxy_backend_fails{upstream=%q,backend=%q}`, p.upstream(), b.URL), func() float64 {
			return float64(b.Fails())
		})
		// A counter, which promtext types as one (see metrics.go).
		p.gauges.NewGauge(fmt.Sprintf(`sessionproxy_backend_failures_total{upstream=%q,backend=%q}`, p.upstream(), b.URL), func() float64 {
			return float64(b.Failures())
		})
	}
	if p.Sessions != nil {
		p.Sessions.once.Do(func() { p.Sessions.init(p.Metrics, p.gauges) })
	}
}

// newClients makes a HostClient for each backend of the pool.
func (p *Proxy) newClients() []*fasthttp.HostClient {
	connect, maxHeader := p.connectTimeout(), p.maxResponseHeader()
	response, readIdle := p.responseTimeout(), p.readIdle()
	clients := make([]*fasthttp.HostClient, len(p.Pool.Backends))
	for i, b := range p.Pool.Backends {
		// The balancer keeps requests in flight and tunnels under
		// b.Limit() together (Pool.Take); HostClient's own cap is the
		// same number, so its pool, which also holds idle connections,
		// never refuses a request the balancer let through for want of
		// a connection slot that Take had already counted.
		maxConns := b.Limit()
		t := transportSettings{backend: b, responseTimeout: response, readIdle: readIdle, logger: p.logger(), fastcgi: p.FastCGI}
		clients[i] = newHostClient(b, t, connect, maxConns, maxHeader)
		if p.Pipeline > 0 && !clients[i].IsTLS && p.FastCGI == nil {
			clients[i].Transport = newPipeline(clients[i].Transport, t,
				pipelineSettings{depth: p.Pipeline, maxConns: maxConns, connect: connect, readBuffer: maxHeader})
		}
	}
	return clients
}

// NewBackend makes a balancer.Backend from a backend URL such as
// http://127.0.0.1:9001, checked by balancer.ParseBackendURL. Its URL is
// normalised to scheme://host[:port] and its address gets the scheme's
// default port when the URL names none.
func NewBackend(rawURL string, weight int, backup bool) (*balancer.Backend, error) {
	u, err := balancer.ParseBackendURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("proxy: backend %w", err)
	}
	switch u.Scheme {
	case "unix", "fastcgi+unix":
		return &balancer.Backend{URL: u.Scheme + ":" + u.Path, Addr: u.Path, Network: "unix", Weight: weight, Backup: backup}, nil
	case "fastcgi":
		return &balancer.Backend{URL: "fastcgi://" + u.Host, Addr: u.Host, Weight: weight, Backup: backup}, nil
	}
	addr := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			addr += ":443"
		} else {
			addr += ":80"
		}
	}
	return &balancer.Backend{URL: u.Scheme + "://" + u.Host, Addr: addr, Weight: weight, Backup: backup}, nil
}

// backendMaxIdle closes a backend connection idle this long, pooled or
// pipelined: below the 5s keep-alive timeout of Node.js and other common
// servers, so that a connection is rarely closed by the backend just as a
// request is written to it.
const backendMaxIdle = 4 * time.Second

func newHostClient(b *balancer.Backend, t transportSettings, connect time.Duration, maxConns, maxHeader int) *fasthttp.HostClient {
	dialer := &fasthttp.TCPDialer{Concurrency: 0}
	hc := &fasthttp.HostClient{
		Addr:  b.Addr,
		IsTLS: strings.HasPrefix(b.URL, "https://"),
		TLSConfig: &tls.Config{
			ServerName: hostOnly(b.Addr),
		},
		MaxConns:            maxConns,
		MaxConnWaitTimeout:  connect,
		MaxIdleConnDuration: backendMaxIdle,
		// The proxy retries on its own, across backends. fasthttp may
		// redo a request on a fresh connection when a pooled one turned
		// out stale (retryStaleConn): any request whose first write found
		// the connection written to or closed by the backend, since
		// nothing was sent, and an idempotent one once when the
		// connection closed under it (fasthttp's default of 5
		// tries replays PUTs to a slow backend).
		MaxIdemponentCallAttempts: 4,
		RetryIfErr:                retryStaleConn,
		NoDefaultUserAgentHeader:  true,
		DisablePathNormalizing:    true,
		// fasthttp's read buffer is also the cap on a response header:
		// it must hold a backend setting a session of max_size.
		ReadBufferSize:  maxHeader,
		WriteBufferSize: 16 << 10,
	}
	tr := newTransport(hc.AcquireConn, hc.CloseConn, hc.ReleaseConn, t)
	hc.Transport = tr
	if t.fastcgi != nil {
		hc.Transport = newFastCGITransport(tr, *t.fastcgi, maxHeader)
	}
	hc.Dial = func(addr string) (net.Conn, error) {
		var c net.Conn
		var err error
		if b.Network == "unix" {
			c, err = dialUnix(addr, connect)
		} else {
			c, err = dialer.DialDualStackTimeout(addr, connect) // [::1] and localhost on ::1: DialTimeout is IPv4 only
		}
		if err != nil {
			return nil, err
		}
		c = newIdleCheckConn(c)
		if !hc.IsTLS {
			return c, nil
		}
		return clientHandshake(c, hc.TLSConfig, connect)
	}
	return hc
}

// dialUnix connects to the Unix socket at path. fasthttp's dialers are
// TCP only; its HostClient takes any net.Conn from Dial.
func dialUnix(path string, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("unix", path, timeout)
}

// clientHandshake completes the TLS handshake before HostClient sees the
// connection (it takes one with a Handshake method for TLS already). Left
// to the first request's write, the handshake's last write, which follows
// its reads, would be peeked by the idle check as the start of a second
// request, and session tickets a TLS 1.3 server sends behind its Finished
// would fail it.
func clientHandshake(c net.Conn, cfg *tls.Config, timeout time.Duration) (net.Conn, error) {
	tc := tls.Client(c, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		// A connection never made: classify counts it as a dial error.
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: c.RemoteAddr(), Err: err}
	}
	handshakeDone(c)
	return tc, nil
}

func hostOnly(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

// retryStaleConn is HostClient's RetryIfErr: see MaxIdemponentCallAttempts
// in newHostClient.
func retryStaleConn(req *fasthttp.Request, attempts int, err error) (resetTimeout, retry bool) {
	if errors.Is(err, errStaleConn) {
		return false, true
	}
	if attempts > 1 || !idempotent(&req.Header) {
		return false, false
	}
	return false, err == io.EOF || err == fasthttp.ErrConnectionClosed || err == errUnanswered
}

// forwardable reports whether fasthttp can write req to a backend as it is.
// HTTP/1.0 allows a request without Host, which HostClient refuses to send;
// an absolute URI names the host instead.
func forwardable(req *fasthttp.Request) bool {
	return len(req.Header.Host()) > 0 || len(req.URI().Host()) > 0
}

// refusal returns the proxy's answer to a request it does not send on,
// or nil. CONNECT asks for a tunnel, which a reverse proxy does not make:
// sent on, it reaches a backend that may close the connection (Node does),
// and three such requests would take a healthy backend out of rotation.
func refusal(req *fasthttp.Request) *Error {
	switch {
	case !req.Header.IsHTTP11():
		// HTTP/1.0 was made HTTP/1.1 in ServeHTTP: the rest (2.0, 9.9)
		// fasthttp would send on as written. The Router answers them
		// before any route; this is for a Proxy served alone.
		return errVersion
	case req.Header.IsConnect():
		return errConnect
	case !forwardable(req):
		return errNoHost
	case hasUserinfo(req):
		return errUserinfo
	}
	return nil
}

// requestState is what one request needs between receiving it and answering.
// It is pooled, so the hot path does not allocate.
type requestState struct {
	hdr     headerEditor
	session sessionState
	idBuf   []byte
	info    AccessInfo
	tried   [4]*balancer.Backend // backends a retried request failed on
}

var statePool = sync.Pool{New: func() any { return new(requestState) }}

// ServeHTTP proxies one request. It is a fasthttp.RequestHandler.
func (p *Proxy) ServeHTTP(ctx *fasthttp.RequestCtx) {
	p.once.Do(p.init)
	if isUpgrade(&ctx.Request.Header) && p.FastCGI == nil {
		// A FastCGI script cannot take over a connection: the request
		// runs as any other, without its Upgrade header.
		p.serveUpgrade(ctx) // tunnel.go
		return
	}
	start := time.Now()
	st := statePool.Get().(*requestState)
	req, resp := &ctx.Request, &ctx.Response
	// fasthttp sends a client's Connection: close on to the backend and
	// would tear down the pool; remember it for the client side only.
	clientClose := req.Header.ConnectionClose()
	if p.pipelines() {
		holdApart(req) // pipeline.go: judged on the client's request, which prepare rewrites
	}
	// Backends get HTTP/1.1 whatever the client spoke (fasthttp has read
	// the client's version for its own side already); the access log
	// gets the client's version back.
	http10 := !req.Header.IsHTTP11() && string(req.Header.Protocol()) == "HTTP/1.0"
	if http10 {
		req.Header.SetProtocolBytes(valueHTTP11)
	}
	perr := p.prepare(ctx, st, start)
	info := &st.info
	if perr == nil {
		sent := time.Now()
		info.Backend, perr = p.forward(ctx, st.tried[:0])
		info.Upstream = time.Since(sent)
	}
	if perr == nil {
		perr = p.applyResponse(ctx, st)
	}
	if perr != nil {
		if perr.Status >= 500 && !perr.quiet() {
			p.logger().Warn("proxy error", "status", perr.Status, "reason", perr.Reason,
				"method", string(req.Header.Method()), "path", string(req.URI().Path()),
				"request_id", string(st.idBuf))
		}
		p.ErrorPages.write(ctx, perr)
		if perr == errBodyTooBig || perr == errBodyBroken || perr == errReadTimeout {
			// The rest of the client's body may still be on the way.
			resp.SetConnectionClose()
		}
		if perr.Status == fasthttp.StatusServiceUnavailable {
			resp.Header.Set("Retry-After", "5")
		}
	}
	resp.Header.SetCanonical(hdrXRequestID, st.idBuf)
	if clientClose {
		resp.SetConnectionClose()
	}
	if http10 {
		req.Header.SetProtocolBytes(valueHTTP10)
	}
	applyRouteHeaders(ctx) // guards.go: before the access log and an HTTP/1.0 body's write
	if perr == nil && p.Compression.Proxied() {
		// Before finish: the access log counts the compressed bytes.
		p.Compression.Apply(ctx)
	}
	p.finish(ctx, st, start)
	if http10 {
		closeDelimited(ctx)
	}
}

// prepare readies a request for a backend: hop-by-hop and forged headers
// out, forwarding headers and the request id in, then the refusals and
// the session load. A non-nil answer means no backend is to see it; none
// is charged for it.
func (p *Proxy) prepare(ctx *fasthttp.RequestCtx, st *requestState, start time.Time) *Error {
	req := &ctx.Request
	st.hdr.readForwarded(&req.Header) // before cleaning reorders the lines
	st.hdr.cleanRequest(&req.Header, p.UnderscoresInHeaders, peerTrusted(ctx))
	req.Header.ResetConnectionClose()
	// fasthttp's server has answered 100 Continue already (or refused
	// the request before it reached a handler): sent on, the expectation
	// would have the backend answer 100 again to the proxy. In HTTP/1.0
	// it is to be ignored (RFC 9110, section 10.1.1), and the backend now
	// gets HTTP/1.1.
	if equalFold(req.Header.Peek(fasthttp.HeaderExpect), "100-continue") {
		req.Header.Del(fasthttp.HeaderExpect)
	}
	req.UseHostHeader = true // keep the client's Host
	// fasthttp would add Content-Type: application/octet-stream to a
	// body that came without one; the backend gets what the client sent.
	req.Header.SetNoDefaultContentType(true)
	st.hdr.setForwarded(ctx)
	if p.FastCGI != nil {
		st.hdr.buf = setFastCGIConn(ctx, st.hdr.buf) // fastcgi.go
	}
	// The id is copied: a Peek'd slice would move as headers change.
	if requestID := req.Header.Peek("X-Request-Id"); len(requestID) > 0 {
		st.idBuf = append(st.idBuf[:0], requestID...)
	} else {
		st.idBuf = appendRequestID(st.idBuf[:0])
		req.Header.SetCanonical(hdrXRequestID, st.idBuf)
	}
	// info and tried live in the pooled state: the access-log hook and
	// the balancer's interface call would move them to the heap.
	st.info = AccessInfo{Start: start, Session: "none"}
	if perr := refusal(req); perr != nil {
		return perr
	}
	if p.Sessions == nil {
		return nil
	}
	perr := p.Sessions.load(ctx, &st.session)
	st.info.Session = st.session.lookup()
	if st.session.active {
		copy(st.info.SessionID[:], st.session.req.Session.ID)
	}
	return perr
}

// applyResponse cleans a backend's response headers and applies its
// session instructions, or strips them when the proxy carries no sessions.
func (p *Proxy) applyResponse(ctx *fasthttp.RequestCtx, st *requestState) *Error {
	st.hdr.cleanResponse(&ctx.Response.Header)
	if p.Sessions != nil {
		return p.Sessions.apply(ctx, &st.session, &st.hdr)
	}
	st.hdr.stripSessionHeaders(&ctx.Response.Header)
	return nil
}

// finish counts and logs a request whose answer is ready, and gives its
// state back to the pool.
func (p *Proxy) finish(ctx *fasthttp.RequestCtx, st *requestState, start time.Time) {
	info := &st.info
	info.Duration = time.Since(start)
	p.counts.count(ctx.Response.StatusCode(), info.Duration)
	if p.AccessLog != nil {
		logAccess(p.AccessLog, ctx, info)
	}
	statePool.Put(st) // Sessions.load resets the session state it uses
}

// forward sends the request to a backend, and on failure to others while
// the request may safely be sent again. The backend's answer is left in
// ctx.Response.
func (p *Proxy) forward(ctx *fasthttp.RequestCtx, tried []*balancer.Backend) (*balancer.Backend, *Error) {
	var lastErr *Error
	// fasthttp takes the stream off the request once it has sent it.
	streamed := ctx.Request.IsBodyStream()
	for try := 0; try <= p.Retries; try++ {
		b := p.Pool.Take(tried) // counts the request on b (Begin)
		if b == nil {
			break
		}
		hc := p.clients[b.Index]
		// HostClient refuses a request whose URI scheme is not its own:
		// the URI's scheme is the client's side (http on a plain listener,
		// or whatever an absolute-form request named), the backend's is
		// the backend URL's.
		if hc.IsTLS {
			ctx.Request.URI().SetSchemeBytes(valueHTTPS)
		} else {
			ctx.Request.URI().SetSchemeBytes(valueHTTP)
		}
		err := hc.Do(&ctx.Request, &ctx.Response)
		if body, ok := ctx.Response.BodyStream().(relayedBody); ok {
			// The backend is busy until its body is relayed.
			body.relayTo(ctx)
		} else {
			b.End()
		}
		if err == nil {
			b.Succeed()
			return b, nil
		}
		perr, how := classify(err)
		if how.backendsFault() {
			b.Fail()
		}
		p.logger().Debug("backend try failed", "backend", b.URL, "error", err)
		lastErr = perr
		tried = append(tried, b)
		if how == unforwardable || how == clientFailed || how.reached() && !idempotent(&ctx.Request.Header) {
			break
		}
		if streamed && how != connectFailed && how != localLimit && how != staleConn {
			// What the client sent of its body is gone.
			break
		}
	}
	if lastErr == nil {
		return nil, p.noneLeft(tried)
	}
	return nil, lastErr
}

// noneLeft is the answer when the balancer has no backend left for a
// request that failed on none: 503 when some were passed over only for
// being at max_conns (busy, not broken: nginx's max_conns makes a server
// unavailable the same way, and the request is not queued), else 502.
func (p *Proxy) noneLeft(tried []*balancer.Backend) *Error {
	if p.Pool.Saturated(tried) {
		return errBackendsFull
	}
	return errNoBackend
}
