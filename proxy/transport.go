package proxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"sessionproxy/balancer"
)

// MaxBufferedBody is the largest response body read whole before it is
// passed on: a body with a Content-Length up to this size is read at once
// and written in one go, as before streaming existed; anything larger,
// chunked, or without a length is relayed through a small buffer as it
// arrives (planBody).
const MaxBufferedBody = 64 << 10

// bodyPlan is what becomes of a response body once its head is read.
type bodyPlan uint8

const (
	skipBody   bodyPlan = iota // none, whatever the head announces
	bufferBody                 // read whole, then written in one go
	streamBody                 // relayed as it arrives (upstreamBody)
)

// planBody is the buffer-or-stream rule for a response body, one for
// plain and pipelined backend connections alike so that the two cannot
// drift: no body after HEAD or for a status that has none (1xx, 204,
// 304); a Content-Length up to MaxBufferedBody is buffered, unless it
// is an event stream, whose events must go out as they come; anything
// larger, chunked or read until close is streamed.
func planBody(req *fasthttp.RequestHeader, resp *fasthttp.ResponseHeader) bodyPlan {
	cl := resp.ContentLength() // -1 chunked, -2 until close
	switch {
	case req.IsHead() || statusHasNoBody(resp.StatusCode()):
		return skipBody
	case cl >= 0 && cl <= MaxBufferedBody && !eventStream(resp):
		return bufferBody
	}
	return streamBody
}

// errUnexpectedUpgrade is a 101 the request did not ask for: what follows
// on the connection is not HTTP.
var errUnexpectedUpgrade = errors.New("proxy: backend switched protocols unasked")

// transport is a backend's fasthttp.RoundTripper. fasthttp's own reads a
// whole response under one deadline, or, streaming, hands every response
// over as a stream with per-request allocations; a proxy wants neither.
// This one times the wait for the response headers (responseTimeout)
// apart from the silence between body reads (readIdle), keeps small
// bodies whole, and streams the rest through a pooled upstreamBody that
// gives the connection back, or closes it, once the body is relayed.
//
// C is fasthttp's pooled-connection type, which is unexported: the
// transport is made from HostClient's methods (newTransport), which name
// it for the compiler.
type transport[C clientConn] struct {
	backend         *balancer.Backend
	responseTimeout time.Duration
	readIdle        time.Duration
	logger          *slog.Logger

	acquireConn func(reqTimeout time.Duration, connectionClose bool) (C, error)
	closeConn   func(C)
	releaseConn func(C)
	bodies      sync.Pool // of *upstreamBody[C]
}

// clientConn is what the proxy uses of fasthttp's pooled connection.
type clientConn interface{ Conn() net.Conn }

// newTransport returns hc's transport: call it with hc's AcquireConn,
// CloseConn and ReleaseConn, and set it as hc.Transport.
func newTransport[C clientConn](acquire func(time.Duration, bool) (C, error), closeConn, releaseConn func(C), t transportSettings) *transport[C] {
	return &transport[C]{backend: t.backend, responseTimeout: t.responseTimeout, readIdle: t.readIdle, logger: t.logger,
		acquireConn: acquire, closeConn: closeConn, releaseConn: releaseConn}
}

// transportSettings are a backend's transport settings.
type transportSettings struct {
	backend         *balancer.Backend
	responseTimeout time.Duration
	readIdle        time.Duration
	logger          *slog.Logger
	fastcgi         *FastCGI // not nil: the backend is a FastCGI server
}

// staleAttempts bounds how many pooled connections a request may find
// written to or closed by the backend before it is given up (with
// errStaleConn, which any request may be retried after).
const staleAttempts = 4

// RoundTrip sends req on a connection of hc and reads the answer's
// headers into resp, and its body unless that is to be streamed. retry
// tells HostClient whether it may send req again (its RetryIfErr has the
// last word).
func (t *transport[C]) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (retry bool, err error) {
	cc, conn, err := t.acquire(req)
	if err != nil {
		return errors.Is(err, errStaleConn), err
	}
	now := time.Now()
	streamedRequest := req.IsBodyStream()
	var bw *bufio.Writer
	if streamedRequest {
		// A body streamed from the client may pause for as long as the
		// client may: the backend gets readIdle per write, not one total.
		dw := deadlineWriterPool.Get().(*deadlineWriter)
		dw.Conn, dw.idle = conn, t.readIdle
		bw = hc.AcquireWriter(dw)
		defer func() { dw.Conn = nil; deadlineWriterPool.Put(dw) }()
	} else {
		if err = conn.SetWriteDeadline(now.Add(t.responseTimeout)); err != nil {
			t.closeConn(cc)
			return true, err
		}
		bw = hc.AcquireWriter(conn)
	}
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err != nil {
		t.closeConn(cc)
		return true, timeoutAsErrTimeout(err)
	}

	if err = conn.SetReadDeadline(time.Now().Add(t.responseTimeout)); err != nil {
		t.closeConn(cc)
		return true, err
	}
	br := hc.AcquireReader(conn)
	if err = readResponseHeader(br, &resp.Header); err != nil {
		hc.ReleaseReader(br)
		t.closeConn(cc)
		return true, timeoutAsErrTimeout(err)
	}
	closeConn := req.Header.ConnectionClose() || resp.Header.ConnectionClose()
	cl := resp.Header.ContentLength()
	switch planBody(&req.Header, &resp.Header) {
	case skipBody:
		resp.SkipBody = true
	case bufferBody:
		if br.Buffered() < cl {
			// The headers' deadline was for the headers.
			err = conn.SetReadDeadline(time.Now().Add(t.readIdle))
		}
		if err == nil {
			err = resp.ReadBody(br, MaxBufferedBody)
		}
		if err != nil {
			hc.ReleaseReader(br)
			t.closeConn(cc)
			return true, timeoutAsErrTimeout(err)
		}
	default:
		body, _ := t.bodies.Get().(*upstreamBody[C])
		if body == nil {
			body = new(upstreamBody[C])
		}
		body.start(hc, cc, br, t, cl, closeConn)
		size := cl
		if size < 0 {
			size = -1 // chunked to the client, whatever the backend did
		}
		resp.SetBodyStream(body, size)
		// An event stream's headers go out before its first event.
		resp.ImmediateHeaderFlush = true
		return false, nil
	}
	hc.ReleaseReader(br)
	if closeConn {
		t.closeConn(cc)
	} else {
		markAnswered(conn)
		t.releaseConn(cc)
	}
	return false, nil
}

// acquire takes a connection from hc's pool, passing over pooled ones the
// backend wrote to or closed while idle. The check is made here, before
// anything is written, because a streamed request body cannot be sent
// again once bytes of it are read from the client.
func (t *transport[C]) acquire(req *fasthttp.Request) (cc C, conn net.Conn, err error) {
	for range staleAttempts {
		cc, err = t.acquireConn(0, req.Header.ConnectionClose())
		if err != nil {
			return cc, nil, err
		}
		conn = cc.Conn()
		if !staleBeforeUse(conn) {
			return cc, conn, nil
		}
		t.closeConn(cc)
	}
	return cc, nil, errStaleConn
}

// staleBeforeUse runs the idle check of a backend connection, under TLS
// too, and reports whether it must not carry a request.
func staleBeforeUse(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	return checkBeforeUse(c)
}

// markAnswered tells the idle check of a backend connection, under TLS
// too, that its answer was read whole just now, as it goes back to the
// pool.
func markAnswered(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	answeredAt(c, time.Now())
}

// readResponseHeader reads a response head, passing over informational
// ones (100 Continue, 103 Early Hints) as a client would.
func readResponseHeader(br *bufio.Reader, h *fasthttp.ResponseHeader) error {
	for range 8 {
		if err := h.Read(br); err != nil {
			return err
		}
		switch code := h.StatusCode(); {
		case code == fasthttp.StatusSwitchingProtocols:
			return errUnexpectedUpgrade
		case code >= 200 || code < 100:
			return nil
		}
	}
	return errBadInterim
}

var errBadInterim = errors.New("proxy: too many informational responses from backend")

// statusHasNoBody reports whether a response with this status has no body
// whatever its headers say.
func statusHasNoBody(code int) bool {
	return code == fasthttp.StatusNoContent || code == fasthttp.StatusNotModified || code < 200
}

var valueEventStream = []byte("text/event-stream")

// eventStream reports whether a response is Server-Sent Events, which are
// flushed event by event whatever the length says.
func eventStream(h *fasthttp.ResponseHeader) bool {
	ct := h.ContentType()
	return len(ct) >= len(valueEventStream) && equalFold(ct[:len(valueEventStream)], "text/event-stream")
}

// timeoutAsErrTimeout makes a deadline's error fasthttp.ErrTimeout, as
// HostClient's own transport does, so classify answers 504.
func timeoutAsErrTimeout(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fasthttp.ErrTimeout
	}
	return err
}

// deadlineWriter gives each write to a backend its own deadline, for
// request bodies streamed from a client at the client's pace.
type deadlineWriter struct {
	net.Conn
	idle time.Duration
}

var deadlineWriterPool = sync.Pool{New: func() any { return new(deadlineWriter) }}

// Write writes b within idle.
func (w *deadlineWriter) Write(b []byte) (int, error) {
	if err := w.Conn.SetWriteDeadline(time.Now().Add(w.idle)); err != nil {
		return 0, err
	}
	return w.Conn.Write(b)
}
