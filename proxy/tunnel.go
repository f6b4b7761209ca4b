package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"sessionproxy/balancer"
)

// A WebSocket handshake cannot go through HostClient, which knows no 101:
// the proxy dials the backend itself, writes the upgrade request with the
// session headers, reads the answer's head, and on 101 hijacks the client
// connection and relays bytes both ways without looking at frames. See
// "WebSocket" in docs/forwarding.md.

// isUpgrade reports whether a request asks for a WebSocket tunnel: an
// HTTP/1.1 GET without a body, with Connection: Upgrade and Upgrade:
// websocket. Anything else that names Upgrade (h2c, an Upgrade without
// Connection: Upgrade, a POST) takes the normal path, which strips the
// hop-by-hop Upgrade and Connection headers. It is the one check the plain
// path pays, and allocates nothing.
func isUpgrade(h *fasthttp.RequestHeader) bool {
	return h.IsGet() && h.ConnectionUpgrade() && equalFold(trimSpace(h.Peek(fasthttp.HeaderUpgrade)), "websocket") &&
		h.IsHTTP11() && noBody(h)
}

// noBody reports whether a request declares no body: no Content-Length
// (which fasthttp reports as -2) or 0, and not chunked (-1).
func noBody(h *fasthttp.RequestHeader) bool {
	cl := h.ContentLength()
	return cl == 0 || cl == -2
}

var (
	hdrConnection = []byte(fasthttp.HeaderConnection)
	hdrUpgrade    = []byte(fasthttp.HeaderUpgrade)
	valueUpgrade  = []byte("Upgrade")
	valueWS       = []byte("websocket")
)

// serveUpgrade is ServeHTTP for a WebSocket handshake: the request gets the
// same cleaning, forwarding headers and session as any other; the answer's
// session instructions are applied and stripped. A 101 then becomes a
// tunnel; any other answer goes to the client as it is, and the connection
// is closed.
func (p *Proxy) serveUpgrade(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	st := statePool.Get().(*requestState)
	req, resp := &ctx.Request, &ctx.Response

	perr := p.prepare(ctx, st, start)
	info := &st.info
	// Hop-by-hop cleaning removed both; the backend must see the ask.
	req.Header.SetCanonical(hdrConnection, valueUpgrade)
	req.Header.SetCanonical(hdrUpgrade, valueWS)
	var t *tunnel
	if perr == nil {
		t, info.Backend, perr = p.handshake(ctx, st.tried[:0])
	}
	if perr == nil {
		perr = p.applyResponse(ctx, st)
		if perr != nil && t != nil {
			t.abort()
		}
	}
	if perr != nil {
		if perr.Status >= 500 && !perr.quiet() {
			p.logger().Warn("proxy error", "status", perr.Status, "reason", perr.Reason,
				"method", string(req.Header.Method()), "path", string(req.URI().Path()),
				"request_id", string(st.idBuf), "upgrade", "websocket")
		}
		p.ErrorPages.write(ctx, perr)
		if perr.Status == fasthttp.StatusServiceUnavailable {
			resp.Header.Set("Retry-After", "5")
		}
	}
	resp.Header.SetCanonical(hdrXRequestID, st.idBuf)
	if perr == nil && resp.StatusCode() == fasthttp.StatusSwitchingProtocols {
		resp.Header.SetCanonical(hdrConnection, valueUpgrade)
		resp.Header.SetCanonical(hdrUpgrade, valueWS)
		resp.Header.SetNoDefaultContentType(true)
		// Written by the tunnel itself, after the hijack: fasthttp
		// would treat the 101 as an ordinary answer.
		t.head = resp.Header.AppendBytes(nil)
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(t.hijacked)
	} else {
		// The client asked to leave HTTP; whatever it gets instead ends
		// the connection, as it does for the backend.
		resp.SetConnectionClose()
	}

	p.finish(ctx, st, start)
}

// handshake sends the upgrade request to a backend and reads the head of
// its answer into ctx.Response. A handshake takes a place among
// MaxTunnels before anything else, and a backend below its max_conns
// (Pool.Take): over either limit it gets 503 and no backend is dialed. On
// a 101 it returns the tunnel to run, which holds both until it ends; any
// other answer gets a body that streams from the backend and closes the
// connection when done, and gives the tunnel's place back at once.
func (p *Proxy) handshake(ctx *fasthttp.RequestCtx, tried []*balancer.Backend) (*tunnel, *balancer.Backend, *Error) {
	reg := p.Tunnels
	if !reg.reserve(p.maxTunnels()) {
		p.Metrics.tunnelsRefused[refusedMaxTunnels].Inc()
		return nil, nil, errTunnelsFull
	}
	t, b, perr := p.dialUpgrade(ctx, tried)
	if t == nil {
		reg.release()
	}
	if perr == errBackendsFull {
		p.Metrics.tunnelsRefused[refusedMaxConns].Inc()
	}
	return t, b, perr
}

// dialUpgrade is handshake on a backend. Only a connection that could not
// be made is tried on another backend: once the request was written, the
// backend may have acted on it.
func (p *Proxy) dialUpgrade(ctx *fasthttp.RequestCtx, tried []*balancer.Backend) (*tunnel, *balancer.Backend, *Error) {
	connect, timeout := p.connectTimeout(), p.responseTimeout()
	var lastErr *Error
	for try := 0; try <= p.Retries; try++ {
		// The tunnel, if there is one, holds this count for its life:
		// its backend connection is one of b's max_conns.
		b := p.Pool.Take(tried)
		if b == nil {
			break
		}
		c, err := p.dialBackend(b, connect)
		if err != nil {
			b.End()
			b.Fail()
			p.logger().Debug("backend try failed", "backend", b.URL, "error", err, "upgrade", "websocket")
			lastErr, _ = classify(err)
			tried = append(tried, b)
			continue
		}
		t, perr := p.exchange(ctx, b, c, timeout)
		if perr != nil {
			c.Close()
			b.End()
			b.Fail()
			p.logger().Debug("backend try failed", "backend", b.URL, "error", perr.Reason, "upgrade", "websocket")
			return nil, b, perr
		}
		b.Succeed()
		return t, b, nil
	}
	if lastErr == nil {
		return nil, nil, p.noneLeft(tried)
	}
	return nil, nil, lastErr
}

// dialBackend connects to b, with TLS when its URL is https, under the same
// TLS settings as its HostClient.
func (p *Proxy) dialBackend(b *balancer.Backend, connect time.Duration) (net.Conn, error) {
	if b.Network == "unix" {
		return dialUnix(b.Addr, connect)
	}
	d := net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	c, err := d.Dial("tcp", b.Addr)
	if err != nil {
		return nil, err
	}
	if hc := p.clients[b.Index]; hc.IsTLS {
		return clientHandshake(c, hc.TLSConfig, connect)
	}
	return c, nil
}

// exchange writes the upgrade request on c and reads the answer's head
// within timeout. The caller closes c when it returns an error.
func (p *Proxy) exchange(ctx *fasthttp.RequestCtx, b *balancer.Backend, c net.Conn, timeout time.Duration) (*tunnel, *Error) {
	req, resp := &ctx.Request, &ctx.Response
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, errClosed
	}
	req.URI().DisablePathNormalizing = true
	if _, err := req.WriteTo(c); err != nil {
		if isTimeout(err) {
			return nil, errTimeout
		}
		return nil, errClosed
	}
	br := p.acquireHeadReader(c)
	resp.Reset()
	// An interim answer (100 Continue and the like) is followed by the
	// real one.
	for {
		if err := resp.Header.Read(br); err != nil {
			releaseHeadReader(br)
			return nil, headError(err)
		}
		if code := resp.StatusCode(); code >= 200 || code == fasthttp.StatusSwitchingProtocols {
			break
		}
	}
	if resp.StatusCode() != fasthttp.StatusSwitchingProtocols {
		// The answer's body streams to the client and then closes the
		// connection; Close is fasthttp's, once the body is written.
		body := &answerBody{conn: c, br: br, b: b}
		switch cl := resp.Header.ContentLength(); {
		case cl >= 0:
			body.r = io.LimitReader(br, int64(cl))
			resp.SetBodyStream(body, cl)
		case cl == -1:
			body.r = httputil.NewChunkedReader(br)
			resp.SetBodyStream(body, -1)
		default: // until the backend closes
			body.r = br
			resp.SetBodyStream(body, -1)
		}
		return nil, nil
	}
	// A backend switching to anything but what was asked for would turn
	// the connection into a protocol the client never agreed to.
	if !resp.Header.ConnectionUpgrade() || !equalFold(trimSpace(resp.Header.Peek(fasthttp.HeaderUpgrade)), "websocket") {
		releaseHeadReader(br)
		return nil, errBadResponse
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		releaseHeadReader(br)
		return nil, errClosed
	}
	t := &tunnel{backend: c, b: b, reg: p.Tunnels, idle: p.tunnelIdle()}
	// Frames the backend sent right behind its 101 are the client's.
	if n := br.Buffered(); n > 0 {
		pending, _ := br.Peek(n)
		t.backendPending = append([]byte(nil), pending...)
	}
	releaseHeadReader(br)
	return t, nil
}

// headReaders hold the backend's answer head while it is parsed: fasthttp
// needs the whole head in the reader's buffer, up to MaxResponseHeader.
var headReaders sync.Pool

func (p *Proxy) acquireHeadReader(c net.Conn) *bufio.Reader {
	size := p.maxResponseHeader()
	if br, ok := headReaders.Get().(*bufio.Reader); ok && br.Size() == size {
		br.Reset(c)
		return br
	}
	return bufio.NewReaderSize(c, size)
}

func releaseHeadReader(br *bufio.Reader) {
	br.Reset(nil)
	headReaders.Put(br)
}

func headError(err error) *Error {
	switch {
	case isTimeout(err), errors.Is(err, fasthttp.ErrTimeout):
		return errTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, fasthttp.ErrConnectionClosed):
		return errClosed
	}
	return errBadResponse
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// answerBody is the body of a backend's answer other than 101 to an
// upgrade request. fasthttp closes it once the body is written, or the
// client went away; then the backend connection goes too: it carried an
// upgrade request, and is never pooled. It counts what it relays for
// the access log, as every body stream the proxy makes does.
type answerBody struct {
	r    io.Reader
	conn net.Conn
	br   *bufio.Reader
	b    *balancer.Backend
	once sync.Once
	sent int64      // bytes handed to the client's connection
	log  pendingLog // the access-log line, written on Close
}

// Read reads the body from the backend.
func (a *answerBody) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	a.sent += int64(n)
	return n, err
}

// Close closes the backend connection and logs the request.
func (a *answerBody) Close() error {
	a.once.Do(func() {
		a.conn.Close()
		releaseHeadReader(a.br)
		a.b.End()
		a.log.done(a.sent)
	})
	return nil
}

func (a *answerBody) logWhenRelayed(log AccessLogger, ctx *fasthttp.RequestCtx, info *AccessInfo) {
	a.log.set(log, ctx, info)
}

// tunnel is one upgraded connection: the client's, hijacked from fasthttp,
// and the backend's, with bytes relayed both ways by one goroutine each.
// An idle tunnel holds two small buffers; a larger pooled one is taken
// only while data flows in bulk.
type tunnel struct {
	client, backend net.Conn
	b               *balancer.Backend // its Begin lasts as long as the tunnel
	reg             *Tunnels
	idle            time.Duration
	head            []byte       // the 101, written to the client first
	clientPending   []byte       // read by fasthttp past the upgrade request
	backendPending  []byte       // read past the backend's 101
	last            atomic.Int64 // unix nanoseconds of the last byte read either way
	once            sync.Once
	toBackend       [smallBuf]byte
	toClient        [smallBuf]byte
}

// smallBuf is each direction's own buffer: WebSocket frames of chat,
// notifications and the like fit in it.
const smallBuf = 1 << 10

// bulkBufs lend 32 KiB buffers to a direction whose reads fill its small
// one, for as long as they keep coming in large.
var bulkBufs = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// abort closes a tunnel that never started: its 101 did not go out.
func (t *tunnel) abort() {
	t.backend.Close()
	t.b.End()
	t.reg.release()
}

// hijacked runs the tunnel on the client connection fasthttp hands over.
// The server keeps hijacked connections open after this returns, which
// releases fasthttp's request state and read buffer: an idle tunnel costs
// only what the tunnel itself holds.
func (t *tunnel) hijacked(c net.Conn) {
	raw := c
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		raw = u.UnsafeConn()
	}
	t.clientPending = drainBuffered(c, raw)
	t.client = raw
	if !t.reg.add(t) {
		// Shutting down: the 101 never goes out.
		t.client.Close()
		t.abort()
		return
	}
	if err := t.write(t.client, t.head); err != nil {
		t.close()
		return
	}
	t.head = nil
	t.last.Store(time.Now().UnixNano())
	deadline := time.Now().Add(t.idle)
	t.client.SetReadDeadline(deadline)
	t.backend.SetReadDeadline(deadline)
	go t.pipe(t.backend, t.client, t.clientPending, &t.toBackend)
	go t.pipe(t.client, t.backend, t.backendPending, &t.toClient)
	t.clientPending, t.backendPending = nil, nil
}

// drainBuffered returns the bytes fasthttp's reader c has already taken off
// the connection raw: with a read deadline in the past, reads return only
// what is buffered above the socket.
func drainBuffered(c, raw net.Conn) []byte {
	if c == raw {
		return nil
	}
	var out []byte
	var buf [512]byte
	if raw.SetReadDeadline(time.Unix(1, 0)) != nil {
		return nil
	}
	for {
		n, err := c.Read(buf[:])
		out = append(out, buf[:n]...)
		if err != nil {
			break
		}
	}
	raw.SetReadDeadline(time.Time{})
	return out
}

// pipe copies src to dst until either side closes, fails, or the tunnel has
// been idle both ways for t.idle; then it closes the whole tunnel, which
// ends the other direction too.
func (t *tunnel) pipe(dst, src net.Conn, pending []byte, small *[smallBuf]byte) {
	var bulk *[32 << 10]byte
	defer func() {
		if bulk != nil {
			bulkBufs.Put(bulk)
		}
		t.close()
	}()
	if len(pending) > 0 && t.write(dst, pending) != nil {
		return
	}
	buf := small[:]
	for {
		n, err := src.Read(buf)
		if n > 0 {
			t.last.Store(time.Now().UnixNano())
			if t.write(dst, buf[:n]) != nil {
				return
			}
			switch {
			case bulk == nil && n == len(buf):
				bulk = bulkBufs.Get().(*[32 << 10]byte)
				buf = bulk[:]
			case bulk != nil && n < len(buf)/2:
				bulkBufs.Put(bulk)
				bulk, buf = nil, small[:]
			}
		}
		if err != nil {
			if isTimeout(err) && t.extend(src) {
				continue
			}
			return
		}
	}
}

// extend moves src's read deadline to t.idle after the last byte read
// either way; false means the tunnel has been idle that long.
func (t *tunnel) extend(src net.Conn) bool {
	deadline := time.Unix(0, t.last.Load()).Add(t.idle)
	if !deadline.After(time.Now()) {
		return false
	}
	return src.SetReadDeadline(deadline) == nil
}

// write writes b to dst; a peer that takes nothing for t.idle ends the
// tunnel.
func (t *tunnel) write(dst net.Conn, b []byte) error {
	if err := dst.SetWriteDeadline(time.Now().Add(t.idle)); err != nil {
		return err
	}
	_, err := dst.Write(b)
	return err
}

// close ends the tunnel; only the first call does anything.
func (t *tunnel) close() {
	t.once.Do(func() {
		t.client.Close()
		t.backend.Close()
		t.b.End()
		t.reg.remove(t)
	})
}

// Tunnels records the open tunnels, so that a shutdown can give them time
// to finish and then close them: fasthttp's Server.Shutdown does not know
// hijacked connections. It also counts them against max_tunnels, from the
// handshake on. Its zero value is ready to use. Safe for concurrent use by
// multiple goroutines.
type Tunnels struct {
	mu      sync.Mutex // protects the fields below
	open    map[*tunnel]struct{}
	held    int           // places taken by reserve: open tunnels and handshakes under way
	closing bool          // Shutdown was called: no new tunnels
	empty   chan struct{} // closed when the last tunnel ends during Shutdown
}

// reserve takes a place for a tunnel about to be opened, unless limit are
// taken; release or remove gives it back. The place is taken before the
// backend is dialed, so that handshakes in flight count too: a burst of
// them cannot go past the limit together.
func (r *Tunnels) reserve(limit int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held >= limit {
		return false
	}
	r.held++
	return true
}

// release gives back the place of a tunnel that was not opened.
func (r *Tunnels) release() {
	r.mu.Lock()
	r.held--
	r.mu.Unlock()
}

// add records t; false means Shutdown has begun and t must not start.
func (r *Tunnels) add(t *tunnel) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return false
	}
	if r.open == nil {
		r.open = map[*tunnel]struct{}{}
	}
	r.open[t] = struct{}{}
	return true
}

// remove forgets t, which was added, and gives back its place.
func (r *Tunnels) remove(t *tunnel) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.open, t)
	r.held--
	if len(r.open) == 0 && r.empty != nil {
		close(r.empty)
		r.empty = nil
	}
}

// Active returns the number of open tunnels.
func (r *Tunnels) Active() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.open)
}

// Shutdown refuses new tunnels, waits for the open ones to end until ctx
// is done, then closes those left. It returns ctx's error if it had to
// close any, else nil.
func (r *Tunnels) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.closing = true
	if len(r.open) == 0 {
		r.mu.Unlock()
		return nil
	}
	if r.empty == nil {
		r.empty = make(chan struct{})
	}
	empty := r.empty
	r.mu.Unlock()
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
	}
	r.mu.Lock()
	left := make([]*tunnel, 0, len(r.open))
	for t := range r.open {
		left = append(left, t)
	}
	r.mu.Unlock()
	for _, t := range left {
		t.close()
	}
	if len(left) == 0 {
		return nil
	}
	return ctx.Err()
}
