package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"log/slog"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"sessionproxy/balancer"
)

// pipeline is the RoundTripper of a backend whose upstream pipelines
// (docs/config.md, "pipeline"): requests without a streamed body are
// written back to back on a few connections, several in one write when
// they queue up, at most depth of them awaiting an answer on one
// connection, and the answers are read in order. A request that may not
// share a connection (shareable) goes through fallback, the backend's
// ordinary transport, whose connections are not shared.
//
// In a pipeline an answer is told from the next one only by its framing,
// so bytes a backend sends beyond the answer it owes would be read as the
// next request's answer, another client's. Any sign of them ends the
// connection (see strayAhead and settle), and the requests written
// behind, or being written, are failed with errUnanswered (see cause and
// unread), which sends them again on another connection.
//
// Each connection has a writer and a reader goroutine. A response that
// is streamed (larger than MaxBufferedBody, chunked, until close, or an
// event stream) holds the connection's reader until its body is relayed:
// no request is queued onto the connection meanwhile, and the requests
// already written behind it wait their turn, at most depth-1 of them. A
// response that ends its connection (until close, Connection: close) or
// may never end (text/event-stream) fails the requests written behind it
// with errUnanswered at once: the idempotent ones are tried again, the
// others get 502.
type pipeline struct {
	fallback        fasthttp.RoundTripper
	backend         *balancer.Backend
	addr            string
	depth           int
	maxConns        int
	connect         time.Duration
	responseTimeout time.Duration
	readIdle        time.Duration
	readBuffer      int
	minConns        int           // pipelineConns
	slowHead        time.Duration // pipelineSlowHead
	dialer          fasthttp.TCPDialer

	// bodies relays streamed responses: the settings and pool of the
	// upstreamBody of a pipelined connection, whose ends hand the
	// connection's reader back (bodyRead) or end the connection
	// (bodyBroken).
	bodies transport[*pipeConn]

	mu    sync.Mutex
	conns []*pipeConn // open and taking requests
}

// pipelineSettings are what a pipeline needs beyond the transport
// settings.
type pipelineSettings struct {
	depth      int
	maxConns   int
	connect    time.Duration
	readBuffer int
}

// pipelineMaxIdle closes a pipelined connection idle this long, as for
// pooled connections (backendMaxIdle).
const pipelineMaxIdle = backendMaxIdle

// pipelineConns is how many connections a backend gets before requests
// queue behind others: two requests that wait on each other (a slow one
// and the one that releases it) then do not wait for ever.
const pipelineConns = 2

// pipelineSlowHead is how long a connection's oldest request may have
// waited for its answer while more are queued behind it.
const pipelineSlowHead = 20 * time.Millisecond

// errUnanswered is a pipelined request written, or being written, behind
// a response that ended, or was to hold for ever, its connection: it may
// have reached the backend, which did nothing wrong, or sent bytes beyond
// an earlier answer, which can no longer be told from this one's.
// HostClient sends it again (retryStaleConn): shared requests are
// idempotent.
var errUnanswered = errors.New("proxy: pipelined request left unanswered when its connection ended")

// unshared is the key of the user value that keeps a request off pipelined
// connections: see holdApart.
type unshared struct{}

// pipelines reports whether any of p's backends is pipelined: only then
// does a request need holdApart.
func (p *Proxy) pipelines() bool {
	for _, hc := range p.clients {
		if _, ok := hc.Transport.(*pipeline); ok {
			return true
		}
	}
	return false
}

// holdApart notes on req, a client's request as it came, before prepare
// makes it the backend's (HTTP/1.1, no Connection: close), whether it is
// not to share a pipelined connection (CONTRACT.md section 12): only a
// client's HTTP/1.1 request that keeps its connection does, and never a
// HEAD or a conditional or range request (conditional), nor one that is
// not idempotent or has a body. The answer to a HEAD or a conditional
// request may have no body, whatever its Content-Length says, and a range
// is a body backends often frame wrongly: bytes a buggy backend sends
// beyond it would be read as the next answer. A pipelined connection can
// end under the requests written behind an answer through nobody's fault
// (the backend's keep-alive limit, a client leaving a long download,
// stray bytes); those behind are then sent again on another connection
// (retryStaleConn), which is safe only for an idempotent request without a
// body, so a POST or a request with a body behind would cost its user a
// 502 for someone else's departure. Nothing is noted, and nothing allocated, for the
// common request.
func holdApart(req *fasthttp.Request) {
	h := &req.Header
	// ContentLength: -2 no body, -1 chunked, >= 0 a length.
	n := h.ContentLength()
	if !h.IsHTTP11() || h.ConnectionClose() || h.IsHead() || !idempotent(h) || n > 0 || n == -1 ||
		conditional(h) {
		req.SetUserValue(unshared{}, true)
	}
}

// conditionalHeaders name the request headers that make a request
// conditional or ask for a range.
var conditionalHeaders = [...]string{"If-None-Match", "If-Modified-Since", "If-Match",
	"If-Unmodified-Since", "If-Range", "Range"}

// conditional reports whether h, a client's request header, has a header
// named If-<anything> or Range. It reads the header block as received,
// one pass (six lookups by name cost about ten times as much), and looks
// the names up only for a header that was not parsed from the wire.
func conditional(h *fasthttp.RequestHeader) bool {
	raw := h.RawHeaders()
	if len(raw) == 0 {
		for _, name := range conditionalHeaders {
			if len(h.Peek(name)) > 0 {
				return true
			}
		}
		return false
	}
	return conditionalRaw(raw)
}

// conditionalRaw reports whether a header block, as a client sent it, has
// a line whose name starts with If- or is Range. A folded line (one that
// starts with a space or tab) continues the one before.
func conditionalRaw(raw []byte) bool {
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if len(line) < 3 || line[0]|0x20 != 'i' && line[0]|0x20 != 'r' {
			continue // most lines
		}
		if hasPrefixFold(line, "if-") ||
			hasPrefixFold(line, "range") && len(line) > 5 && (line[5] == ':' || line[5] == ' ' || line[5] == '\t') {
			return true
		}
	}
	return false
}

// shareable reports whether req may go on a pipelined connection: not
// held apart by holdApart, nor streaming its body, nor closing its
// connection, nor HEAD.
func shareable(req *fasthttp.Request) bool {
	return !req.IsBodyStream() && !req.Header.ConnectionClose() && !req.Header.IsHead() &&
		req.UserValue(unshared{}) == nil
}

func newPipeline(fallback fasthttp.RoundTripper, t transportSettings, s pipelineSettings) *pipeline {
	p := &pipeline{
		fallback: fallback, backend: t.backend, addr: t.backend.Addr,
		depth: s.depth, maxConns: s.maxConns, connect: s.connect, readBuffer: s.readBuffer,
		responseTimeout: t.responseTimeout, readIdle: t.readIdle,
		minConns: pipelineConns, slowHead: pipelineSlowHead,
	}
	logger := t.logger
	if logger == nil {
		logger = slog.Default()
	}
	p.bodies = transport[*pipeConn]{backend: t.backend, responseTimeout: t.responseTimeout, readIdle: t.readIdle,
		logger: logger, closeConn: bodyBroken, releaseConn: bodyRead}
	return p
}

// pipeWork is one request on its way through a pipelined connection. The
// caller waits on done; until then the connection's goroutines own it.
type pipeWork struct {
	req     *fasthttp.Request
	resp    *fasthttp.Response
	written time.Time // when it was put in the connection's write buffer
	seq     uint64    // its place among the requests written on the connection, from 1
	sent    bool      // some of it may have reached the backend
	err     error
	done    chan struct{}
}

var pipeWorkPool = sync.Pool{New: func() any { return &pipeWork{done: make(chan struct{}, 1)} }}

// RoundTrip sends req on a pipelined connection, or through fallback when
// it may not be pipelined.
func (p *pipeline) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	if !shareable(req) {
		return p.fallback.RoundTrip(hc, req, resp)
	}
	w := pipeWorkPool.Get().(*pipeWork)
	w.req, w.resp = req, resp
	queued, err := p.queue(w)
	if !queued {
		*w = pipeWork{done: w.done}
		pipeWorkPool.Put(w)
		if err != nil {
			return false, err
		}
		// Every connection this backend may have is open and full.
		return p.fallback.RoundTrip(hc, req, resp)
	}
	<-w.done
	err, sent := w.err, w.sent
	*w = pipeWork{done: w.done}
	pipeWorkPool.Put(w)
	switch {
	case err == nil:
		return false, nil
	case !sent:
		// Nothing of it left the proxy: any request may be sent again.
		return true, errStaleConn
	}
	return true, err
}

// queue puts w on a connection: the busiest with room whose oldest
// request is not waiting long, since the more requests wait on one
// connection the more go out in one write; an idle one if none is busy;
// a new one when none may take it, or when the backend has fewer than
// minConns. It reports false, with no error, when the backend has maxConns
// pipelined connections and none may take w.
func (p *pipeline) queue(w *pipeWork) (bool, error) {
	now := time.Now()
	p.mu.Lock()
	var pick *pipeConn
	for i := 0; i < len(p.conns); {
		c := p.conns[i]
		// A connection relaying a streamed body has nothing in flight
		// and is busy all the same: its idle time starts at the end.
		if c.inflight == 0 && !c.streaming && now.Sub(c.idleSince) > pipelineMaxIdle {
			p.kill(c) // removes c from p.conns
			continue
		}
		i++
		if c.streaming || c.inflight >= p.depth || pick != nil && pick.inflight >= c.inflight {
			continue
		}
		// An answer slow in coming holds up everything behind it:
		// nothing more goes behind it.
		if c.inflight > 0 && now.UnixNano()-c.headStart.Load() > int64(p.slowHead) {
			continue
		}
		pick = c
	}
	if pick != nil && pick.inflight == 0 && staleIdle(pick.check) {
		// A connection that sat idle is checked before anything is
		// written to it: bytes the backend sent meanwhile, or its
		// close, would be read as this request's answer.
		p.kill(pick)
		pick = nil
	}
	if pick != nil && (pick.inflight == 0 || len(p.conns) >= p.minConns) {
		if pick.inflight == 0 {
			pick.headStart.Store(now.UnixNano()) // until its reader starts the wait
		}
		pick.inflight++
		p.mu.Unlock()
		pick.write(w)
		return true, nil
	}
	full := len(p.conns) >= p.maxConns
	p.mu.Unlock()
	if full {
		return false, nil
	}
	c, err := p.dial()
	if err != nil {
		return false, err
	}
	p.mu.Lock()
	p.conns = append(p.conns, c)
	c.headStart.Store(now.UnixNano())
	c.inflight++
	p.mu.Unlock()
	c.write(w)
	return true, nil
}

// dial opens a pipelined connection and starts its goroutines.
func (p *pipeline) dial() (*pipeConn, error) {
	var conn net.Conn
	var err error
	if p.backend.Network == "unix" {
		conn, err = dialUnix(p.addr, p.connect)
	} else {
		conn, err = p.dialer.DialDualStackTimeout(p.addr, p.connect)
	}
	if err != nil {
		return nil, err
	}
	c := &pipeConn{
		p: p, conn: conn, check: newIdleCheckConn(conn),
		bw:      bufio.NewWriterSize(conn, 16<<10),
		readq:   make(chan *pipeWork, p.depth),
		dead:    make(chan struct{}),
		bodyEnd: make(chan bool, 1),
		idle:    time.NewTimer(pipelineMaxIdle),
	}
	c.in.conn, c.in.written = conn, &c.written
	c.br = bufio.NewReaderSize(&c.in, p.readBuffer)
	go c.readLoop()
	return c, nil
}

// retire takes c out of service: no request is queued onto it any more,
// and those not yet written are handed back unsent. Called with p.mu held.
func (p *pipeline) retire(c *pipeConn) {
	if c.retired.Load() {
		return
	}
	c.retired.Store(true)
	close(c.dead)
	if i := slices.Index(p.conns, c); i >= 0 {
		p.conns = slices.Delete(p.conns, i, i+1)
	}
}

// kill retires c and closes its connection. Called with p.mu held.
func (p *pipeline) kill(c *pipeConn) {
	p.retire(c)
	c.conn.Close()
}

// pipeConn is one pipelined backend connection: its callers write the
// requests, its reader goroutine reads the answers.
type pipeConn struct {
	p       *pipeline
	conn    net.Conn
	check   net.Conn // conn behind its idle check (peeks the socket)
	bw      *bufio.Writer
	br      *bufio.Reader
	readq   chan *pipeWork // every request queued onto c, in the order written (or handed back unsent)
	dead    chan struct{}  // closed by retire
	bodyEnd chan bool      // a streamed body was relayed (true) or broke off
	idle    *time.Timer    // reader's: ends a connection left idle
	retired atomic.Bool    // set under p.mu with dead's close

	// The write side: each request is written by its caller's goroutine
	// under wmu; the last of the callers waiting for wmu flushes, so that
	// requests that queue up while one is being flushed go out together.
	wmu     sync.Mutex
	writers atomic.Int32 // callers writing or waiting for wmu
	werr    error        // under wmu: the first write error; nothing is written after it
	// written counts the requests written, each from before its first
	// byte may leave: an answer's first byte cannot come before it.
	written atomic.Uint64
	// headStart is when the wait for the oldest answer began (unix ns).
	headStart atomic.Int64

	// The reader's own (and a streamed body's, while the reader waits).
	headSince time.Time // when the previous answer was read: the next one's wait starts then, or at its write
	in        arrivals  // under br

	// Under p.mu.
	inflight  int       // queued and not yet answered
	streaming bool      // the reader is relaying a streamed body
	idleSince time.Time // when inflight last went to 0, or a streamed body ended with none in flight
}

// Conn is c's network connection.
func (c *pipeConn) Conn() net.Conn { return c.conn }

// write writes w, whose place on c queue reserved, and hands it to the
// reader, unsent if c was retired or broke before its turn.
func (c *pipeConn) write(w *pipeWork) {
	c.writers.Add(1)
	c.wmu.Lock()
	now := time.Now()
	if c.werr == nil && !c.retired.Load() {
		if c.bw.Buffered() == 0 {
			c.werr = c.conn.SetWriteDeadline(now.Add(c.p.responseTimeout))
		}
		if c.werr == nil {
			w.seq = c.written.Add(1)
			c.werr = w.req.Write(c.bw)
			w.sent = true
		}
		w.written = now
	}
	// The last caller in flushes for all: those that wrote before it
	// left their requests in the buffer.
	if c.writers.Add(-1) == 0 && c.werr == nil && c.bw.Buffered() > 0 {
		c.werr = c.bw.Flush()
	}
	if c.werr != nil {
		if w.sent {
			w.err = c.cause(c.werr)
		}
		c.end() // the requests in the buffer before it fail at the reader
	}
	c.readq <- w // never blocks: it holds depth, and at most depth are queued onto c
	c.wmu.Unlock()
}

// readLoop reads the answers in the order the requests were written. Once
// the connection broke, each request still on it is failed: with the
// error that broke it for the one it broke under, errUnanswered for
// those written behind, errStaleConn (through !sent) for those never
// written.
func (c *pipeConn) readLoop() {
	defer c.idle.Stop()
	var broken error
	for {
		w, ok := c.next()
		if !ok {
			return
		}
		switch {
		case w == nil:
			continue // idle timer: next looks again
		case !w.sent, w.err != nil, broken != nil:
			if w.err != nil {
				broken = errUnanswered
			}
			c.fail(w, broken)
		default:
			if err := c.read(w); err != nil {
				c.end()
				broken = errUnanswered
			}
		}
	}
}

// next returns the next written request, nil when c was idle for
// pipelineMaxIdle (and is ended if still idle), and false once the
// writer is gone.
func (c *pipeConn) next() (*pipeWork, bool) {
	select {
	case w := <-c.readq:
		return w, true
	default:
	}
	if c.retired.Load() {
		// Every request queued onto c reaches readq: once none is left
		// unanswered, nothing more will.
		c.p.mu.Lock()
		n := c.inflight
		c.p.mu.Unlock()
		if n == 0 {
			return nil, false
		}
		return <-c.readq, true
	}
	c.idle.Reset(pipelineMaxIdle)
	select {
	case w := <-c.readq:
		c.idle.Stop()
		return w, true
	case <-c.dead:
		c.idle.Stop()
		return nil, true
	case <-c.idle.C:
		c.p.mu.Lock()
		if c.inflight == 0 {
			c.p.kill(c)
		}
		c.p.mu.Unlock()
		return nil, true
	}
}

// cause is what a request on c failed with when its write or read
// failed with err: errUnanswered if c had been ended meanwhile (end,
// retire), by the other side of c or another request's answer, which
// closes the socket under whatever is being written or read; else err,
// a timeout as fasthttp's. Called before the failing side ends c itself.
//
// A request being written when its predecessor's answer ends c (stray
// bytes, Connection: close) failed its write on the closed socket: that
// error is the proxy's doing, and the request, idempotent as all shared
// ones are, is sent again on another connection as errUnanswered is.
// Taken for the request's own failure, it was 502 and never retried.
func (c *pipeConn) cause(err error) error {
	if c.retired.Load() {
		return errUnanswered
	}
	return timeoutAsErrTimeout(err)
}

// unread is what the seq-th request written on c failed with when the
// head of its answer could not be read (err): see cause. Behind an
// earlier answer, a head that does not parse may start with bytes the
// backend sent beyond that answer once this request was written, which
// strayAhead cannot date before it: the request is left unanswered, and
// sent again on another connection, rather than failed for bytes that
// were not its answer. (A connection closed before the head, io.EOF, was
// sent again already.) A timeout stays one.
func (c *pipeConn) unread(err error, seq uint64) error {
	err = c.cause(err)
	if seq > 1 && err != fasthttp.ErrTimeout {
		return errUnanswered
	}
	return err
}

// complete hands w back to its caller with err, a nil err meaning the
// answer is in w.resp.
func (c *pipeConn) complete(w *pipeWork, err error) {
	if w.err == nil {
		w.err = err
	}
	c.p.mu.Lock()
	c.inflight--
	if c.inflight == 0 {
		c.idleSince = time.Now()
	}
	c.p.mu.Unlock()
	w.done <- struct{}{}
}

// end ends c. A connection that fails is ended before the request it
// failed under is answered, so that no request its client sends next is
// queued onto it.
func (c *pipeConn) end() {
	c.p.mu.Lock()
	c.p.kill(c)
	c.p.mu.Unlock()
}

// fail hands w back unanswered: with its own error if it has one,
// errStaleConn if nothing of it was written, else err.
func (c *pipeConn) fail(w *pipeWork, err error) {
	if !w.sent {
		err = errStaleConn
	}
	c.complete(w, err)
}

// settle ends c, once the answer to the seq-th request written on it is
// read, if the backend sent more than the answers to what was asked:
// bytes read past that answer while nothing else is awaited, or read
// before any request behind it was written, would be taken for the next
// request's answer, another client's. It returns errUnanswered, for the
// requests queued meanwhile, if it ended c.
func (c *pipeConn) settle(seq uint64) error {
	if c.br.Buffered() == 0 {
		return nil
	}
	early := c.in.writtenWhen(c.in.total-int64(c.br.Buffered())) <= seq
	c.p.mu.Lock()
	kill := c.inflight == 0 || early
	if kill {
		c.p.kill(c)
	}
	c.p.mu.Unlock()
	if !kill {
		return nil
	}
	c.p.bodies.logger.Warn(msgStray, "backend", c.p.backend.URL)
	return errUnanswered
}

// msgStray is logged when a backend's bytes beyond its answers end a
// pipelined connection: a backend to fix, or to take off pipelining.
const msgStray = "backend sent bytes beyond the answers it owed on a pipelined connection; connection closed"

// read reads w's answer. A non-nil error means the connection is done
// for: w has been answered with it, or with its own failure.
func (c *pipeConn) read(w *pipeWork) error {
	p := c.p
	// The wait for an answer's headers starts when the backend could
	// start on it: at its write, or once the answer before it was read,
	// whichever is later. A request queued behind a long download is not
	// timed out by the download, nor is the backend charged for it.
	start := w.written
	if c.headSince.After(start) {
		start = c.headSince
	}
	c.headStart.Store(start.UnixNano())
	resp, seq := w.resp, w.seq // w is its caller's again once complete
	err := c.conn.SetReadDeadline(start.Add(p.responseTimeout))
	if err == nil && c.strayAhead(w) {
		c.end()
		c.complete(w, errUnanswered)
		p.bodies.logger.Warn(msgStray, "backend", p.backend.URL)
		return errUnanswered
	}
	if err == nil {
		err = readResponseHeader(c.br, &resp.Header)
	}
	if err != nil {
		err = c.unread(err, seq)
		c.end()
		c.complete(w, err)
		return err
	}
	closeConn := resp.Header.ConnectionClose()
	cl := resp.Header.ContentLength()
	switch planBody(&w.req.Header, &resp.Header) {
	case skipBody:
		resp.SkipBody = true
		if bodyDoubt(&resp.Header) {
			closeConn = true
			p.bodies.logger.Warn(msgBodyDoubt, "backend", p.backend.URL, "status", resp.Header.StatusCode())
		}
	case bufferBody:
		if c.br.Buffered() < cl {
			err = c.conn.SetReadDeadline(time.Now().Add(p.readIdle))
		}
		if err == nil {
			err = resp.ReadBody(c.br, MaxBufferedBody)
		}
		if err != nil {
			// A head that parsed is taken for this request's answer: a
			// body cut short is the backend's doing, charged to it.
			err = c.cause(err)
			c.end()
			c.complete(w, err)
			return err
		}
	default:
		return c.stream(w, cl, closeConn)
	}
	c.headSince = time.Now()
	if closeConn {
		c.end()
		c.complete(w, nil)
		return errUnanswered
	}
	c.complete(w, nil)
	return c.settle(seq)
}

// bodyDoubt reports whether h, the head of an answer with no body on a
// pipelined connection, leaves in doubt where the next answer starts: a
// 204 that announces a body (Content-Length above 0, or chunked), which
// a buggy backend may well send, or a 304, which answers a conditional
// request only, and those are never pipelined (holdApart). The answer
// is passed on; its connection ends, as after Connection: close.
func bodyDoubt(h *fasthttp.ResponseHeader) bool {
	switch h.StatusCode() {
	case fasthttp.StatusNotModified:
		return true
	case fasthttp.StatusNoContent:
		return h.ContentLength() > 0 || h.ContentLength() == -1
	}
	return false
}

// msgBodyDoubt is logged when bodyDoubt ends a pipelined connection.
const msgBodyDoubt = "backend answered a pipelined request with a 304, or a 204 that announces a body; connection closed"

// statusLine is how the first line of every answer starts: fasthttp's
// parser also takes blank lines before it and any HTTP/x.y.
var (
	statusLine11 = []byte("HTTP/1.1 ")
	statusLine10 = []byte("HTTP/1.0 ")
)

// strayAhead reports whether the next bytes on c cannot be the start of
// w's answer, and so are beyond an earlier answer: they reached the proxy
// before w was written, when the backend could not have been answering
// it, or, behind an earlier answer, they do not start a status line. (On
// a connection's first request they are its answer, an invalid one, as
// without pipelining.) It waits, under the read deadline, for a status
// line's first bytes; an error is left to readResponseHeader to report.
//
// A backend that sends a whole well-formed answer too many, or a
// well-formed head, after the next request was written, cannot be told
// from one answering that request, and is relayed as its answer; a head
// that does not parse fails it with errUnanswered (unread). holdApart
// keeps the requests most prone to it (HEAD, conditional, ranges) off
// pipelined connections.
func (c *pipeConn) strayAhead(w *pipeWork) bool {
	b, err := c.br.Peek(len(statusLine11))
	if err != nil {
		return false
	}
	if c.in.writtenWhen(c.in.total-int64(c.br.Buffered())) < w.seq {
		return true
	}
	return w.seq > 1 && !bytes.Equal(b, statusLine11) && !bytes.Equal(b, statusLine10)
}

// arrivals is what a pipelined connection's bufio.Reader reads from: the
// connection, noting with each read how many requests had been written
// by the time it returned, for the last few reads.
type arrivals struct {
	conn    net.Conn
	written *atomic.Uint64 // the connection's count
	total   int64          // bytes read so far
	reads   int            // reads that returned bytes
	last    [4]arrival     // the last reads, a ring by reads
}

// arrival is one read: the bytes up to end came in once written requests
// had been written, or fewer.
type arrival struct {
	end     int64
	written uint64
}

// Read reads from the connection.
func (a *arrivals) Read(b []byte) (int, error) {
	n, err := a.conn.Read(b)
	if n > 0 {
		a.total += int64(n)
		// Loaded after the read returned: at least as many as had been
		// written when the bytes arrived, never fewer.
		a.last[a.reads%len(a.last)] = arrival{end: a.total, written: a.written.Load()}
		a.reads++
	}
	return n, err
}

// writtenWhen returns how many requests, at most, had been written when
// the byte at offset pos (counted from the connection's first) was read.
// Past the reads it remembers, it answers for the oldest it has: more,
// which can only let stray bytes by, never fail an answer.
func (a *arrivals) writtenWhen(pos int64) uint64 {
	w := uint64(math.MaxUint64)
	for i := 1; i <= min(a.reads, len(a.last)); i++ {
		r := a.last[(a.reads-i)%len(a.last)]
		if r.end <= pos {
			break
		}
		w = r.written
	}
	return w
}

// stream hands w's body to its caller as an upstreamBody reading c, and
// waits until it is relayed.
func (c *pipeConn) stream(w *pipeWork, cl int, closeConn bool) error {
	p, seq := c.p, w.seq // w is its caller's again once complete
	// A body until close ends the connection; an event stream may never
	// end: either way nothing written behind it will be answered in time.
	ends := cl < -1 || eventStream(&w.resp.Header) || closeConn
	p.mu.Lock()
	c.streaming = true
	if ends {
		p.retire(c)
	}
	p.mu.Unlock()
	body, _ := p.bodies.bodies.Get().(*upstreamBody[*pipeConn])
	if body == nil {
		body = new(upstreamBody[*pipeConn])
	}
	body.start(nil, c, c.br, &p.bodies, cl, ends)
	size := cl
	if size < 0 {
		size = -1
	}
	w.resp.SetBodyStream(body, size)
	w.resp.ImmediateHeaderFlush = true
	c.complete(w, nil)
	if ends {
		for {
			behind, ok := c.next()
			if !ok {
				break
			}
			c.fail(behind, errUnanswered)
		}
	}
	relayed := <-c.bodyEnd
	c.headSince = time.Now()
	p.mu.Lock()
	c.streaming = false
	if c.inflight == 0 {
		c.idleSince = c.headSince
	}
	p.mu.Unlock()
	if !relayed || ends {
		return errUnanswered
	}
	return c.settle(seq)
}

// bodyRead is a pipelined connection's upstreamBody read to its end: the
// reader goes on to the next answer.
func bodyRead(c *pipeConn) { c.bodyEnd <- true }

// bodyBroken is a pipelined connection's upstreamBody that did not end
// cleanly: the connection is ended.
func bodyBroken(c *pipeConn) { c.bodyEnd <- false }
