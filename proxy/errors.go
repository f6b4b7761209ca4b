package proxy

import (
	"errors"
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

// The proxy's own errors (CONTRACT.md section 5).
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
)

// failure is how one try on a backend went wrong.
type failure int

const (
	notSent  failure = iota // never reached the backend: safe to try another with any method
	sent                    // may have reached it: only idempotent requests go elsewhere
	timedOut                // sent, no answer in time
)

// classify turns an error from HostClient.Do into the client's answer and
// whether the request may have reached the backend. Like caddy's
// statusError: 502 by default, 504 when the backend took too long.
func classify(err error) (*Error, failure) {
	switch {
	case errors.Is(err, fasthttp.ErrDialTimeout), errors.Is(err, fasthttp.ErrNoFreeConns),
		errors.Is(err, fasthttp.ErrConnPoolStrategyNotImpl):
		return errUnreachable, notSent
	case isDialError(err):
		return errUnreachable, notSent
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
