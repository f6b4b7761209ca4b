package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/valyala/fasthttp"
)

// Error is one of the proxy's own answers: a status and a one-line reason
// that becomes the plain-text body.
type Error struct {
	Status int
	Reason string
}

// Error returns the reason, the body the client gets.
func (e *Error) Error() string { return e.Reason }

// The proxy's own errors.
var (
	errNoBackend   = &Error{fasthttp.StatusBadGateway, "no backend available"}
	errUnreachable = &Error{fasthttp.StatusBadGateway, "backend unreachable"}
	errBadResponse = &Error{fasthttp.StatusBadGateway, "invalid response from backend"}
	errClosed      = &Error{fasthttp.StatusBadGateway, "backend closed the connection"}
	errTimeout     = &Error{fasthttp.StatusGatewayTimeout, "backend timeout"}
	errBodyTooBig  = &Error{fasthttp.StatusRequestEntityTooLarge, "request body too large"}
	errHeaderBig   = &Error{fasthttp.StatusBadRequest, "malformed request: header too large"}
	errMalformed   = &Error{fasthttp.StatusBadRequest, "malformed request"}
	errReadTimeout = &Error{fasthttp.StatusRequestTimeout, "request read timeout"}
	errBadUpdate   = &Error{fasthttp.StatusBadGateway, "invalid session update from backend"}
	errBodyBroken  = &Error{fasthttp.StatusBadRequest, "malformed request: body ended early"}
	errSpool       = &Error{fasthttp.StatusInternalServerError, "request body could not be buffered"}
)

// errBackendsFull and errTunnelsFull are 503s of the proxy's own limits:
// every backend left is at max_conns, or max_tunnels tunnels are open.
var (
	errBackendsFull = &Error{fasthttp.StatusServiceUnavailable, "backends at their connection limit (max_conns)"}
	errTunnelsFull  = &Error{fasthttp.StatusServiceUnavailable, "too many tunnels open (max_tunnels)"}
)

// quiet reports whether an error of 500 or more goes unlogged: no backend
// or a limit reached says nothing of one request, and under load it would
// be logged for every request; metrics count them instead.
func (e *Error) quiet() bool {
	return e == errNoBackend || e == errBackendsFull || e == errTunnelsFull
}

// errNoHost answers a request fasthttp would refuse to send on: HTTP/1.0
// allows leaving out Host, a backend request may not.
var errNoHost = &Error{fasthttp.StatusBadRequest, "malformed request: no Host header"}

// errUserinfo answers a host with userinfo ("u:p@host"), which no Host
// or request target may carry (RFC 9110, sections 4.2.4 and 7.2):
// fasthttp would send it on as an Authorization header the client never
// wrote, and routes would not match the host the backend reads.
var errUserinfo = &Error{fasthttp.StatusBadRequest, "malformed request: userinfo in host"}

// errConnect answers CONNECT: the proxy makes no tunnels.
var errConnect = &Error{fasthttp.StatusBadRequest, "malformed request: CONNECT is not proxied"}

// errStaleConn fails the first write of a request on a pooled backend
// connection that the backend wrote to, or closed, while it was idle.
// Nothing of the request was sent, so any request may be tried again.
var errStaleConn = errors.New("proxy: backend wrote to or closed an idle connection")

// errHostRequired is fasthttp's own, unexported, error for a request it will
// not write because it has no Host. It is caught once here so that classify
// recognises it by identity rather than by its text.
var errHostRequired = func() error {
	var req fasthttp.Request
	req.SetRequestURI("/")
	return req.Write(bufio.NewWriter(io.Discard))
}()

// failure is how one try on a backend went wrong: whether the request may
// have reached the backend, and whose fault it was.
type failure int

const (
	connectFailed failure = iota // no connection: safe to try another backend with any method
	sent                         // may have reached it, then the connection broke or the answer was not HTTP
	timedOut                     // sent, no answer in time
	localLimit                   // never left the proxy: its own connection limit or configuration
	staleConn                    // pooled connections the backend wrote to or closed while idle; nothing sent
	unforwardable                // the request itself cannot be written; no backend would do better
	clientFailed                 // the client's body broke off, stalled or went over max_body while streaming
	unanswered                   // pipelined behind an answer that ended its connection: may have reached it, not its fault
)

// backendsFault reports whether the failure counts against the backend's
// health. Only what the backend did counts: a
// request the proxy cannot write, or its own connection limit, must not let
// any client take a healthy backend out of rotation.
func (f failure) backendsFault() bool {
	return f == connectFailed || f == sent || f == timedOut
}

// reached reports whether the request may have reached the backend; only
// idempotent requests are then sent again.
func (f failure) reached() bool { return f == sent || f == timedOut || f == unanswered }

// classify turns an error from HostClient.Do into the client's answer and
// how the try failed. Like caddy's statusError: 502 by default, 504 when
// the backend took too long. HostClient acquires a connection, writes the
// request, then reads the answer (fasthttp's transport.RoundTrip): errors
// of the first step are dial errors or its own pool's, errors of writing
// are the connection's (net.OpError) or the request's own (no Host), and
// everything after is the backend's answer. A request body streamed from
// the client fails writing with a clientBodyError, which is the client's.
func classify(err error) (*Error, failure) {
	var cbe *clientBodyError
	switch {
	case errors.As(err, &cbe):
		return cbe.answer(), clientFailed
	case errors.Is(err, errHostRequired):
		return errNoHost, unforwardable
	case errors.Is(err, errUnanswered):
		return errClosed, unanswered
	case errors.Is(err, errStaleConn):
		// Servers close idle keep-alive connections as a matter of
		// course; HostClient has tried fresh ones already.
		return errClosed, staleConn
	case errors.Is(err, fasthttp.ErrNoFreeConns), errors.Is(err, fasthttp.ErrConnPoolStrategyNotImpl),
		errors.Is(err, fasthttp.ErrHostClientRedirectToDifferentScheme):
		return errUnreachable, localLimit
	case errors.Is(err, fasthttp.ErrDialTimeout), isDialError(err):
		return errUnreachable, connectFailed
	case errors.Is(err, fasthttp.ErrTimeout):
		return errTimeout, timedOut
	case errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return errClosed, sent
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errTimeout, timedOut
	}
	return errBadResponse, sent
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// idempotent reports whether a request may be sent twice (RFC 9110 9.2.2).
func idempotent(h *fasthttp.RequestHeader) bool {
	return h.IsGet() || h.IsHead() || h.IsOptions() || h.IsPut() || h.IsDelete() || h.IsTrace()
}

// requestError maps fasthttp's errors from reading a client request.
func requestError(err error) *Error {
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return errBodyTooBig
	case errors.As(err, &small):
		return errHeaderBig
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errReadTimeout
	}
	return errMalformed
}

// writeError replaces whatever response there was with the proxy's own.
func writeError(ctx *fasthttp.RequestCtx, e *Error) {
	resp := &ctx.Response
	resp.Reset()
	resp.SetStatusCode(e.Status)
	resp.Header.SetContentType("text/plain; charset=utf-8")
	resp.SetBodyString(e.Reason + "\n")
}
