package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// requestBodies gives each request's body its shape before the handler
// runs: a small body is read whole (so an idempotent request may still be
// retried), a large or chunked one streams to the backend under the
// max_body limit, or, with buffering, is read whole into a small memory
// buffer and a temporary file first. Either way a request holds at most
// MaxBufferedBody of its body in memory.
type requestBodies struct {
	maxBody   int64
	idle      time.Duration // silence allowed between two reads from the client
	buffering bool
	tempDir   string // "" is os.TempDir()
	pages     func() *ErrorPages

	// overLimit holds the headers (by address: each RequestCtx has its
	// own) of requests that declared a body over maxBody, between
	// headerReceived and the answer.
	overLimit sync.Map
}

// headerReceived is the server's HeaderReceived. A declared body over the
// limit is answered 413 at once, as nginx does, even while the client
// sends nothing more: the server's wait for the first byte of the body,
// which it reads before any handler runs, is cut short to a millisecond,
// and the timeout, if it comes, is answered with the 413 (tooLarge).
func (rb *requestBodies) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if int64(h.ContentLength()) <= rb.maxBody || equalFold(h.Peek(fasthttp.HeaderExpect), "100-continue") {
		return fasthttp.RequestConfig{}
	}
	rb.overLimit.Store(h, struct{}{})
	return fasthttp.RequestConfig{ReadTimeout: time.Millisecond}
}

// tooLarge reports, once, whether ctx's request declared a body over the
// limit; the server may have reset the request by then.
func (rb *requestBodies) tooLarge(ctx *fasthttp.RequestCtx) bool {
	_, ok := rb.overLimit.LoadAndDelete(&ctx.Request.Header)
	return ok
}

// clientBodyError is an error reading a request body from the client, met
// while the body streams to a backend: the client's doing, never the
// backend's, and the request cannot be sent again.
type clientBodyError struct {
	err error
}

func (e *clientBodyError) Error() string { return "proxy: reading request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

// errBodyOverLimit is a streamed body that went past max_body.
var errBodyOverLimit = errors.New("request body over max_body")

// answer is the client's status for a failure to read its body.
func (e *clientBodyError) answer() *Error {
	var ne net.Error
	switch {
	case errors.Is(e.err, errBodyOverLimit):
		return errBodyTooBig
	case errors.As(e.err, &ne) && ne.Timeout():
		return errReadTimeout
	}
	return errBodyBroken
}

// wrap runs next with the request's body prepared.
func (rb *requestBodies) wrap(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		req := &ctx.Request
		if !req.IsBodyStream() {
			next(ctx)
			return
		}
		cl := req.Header.ContentLength()
		if cl == 0 {
			// Not a stream to the backend: a request without a body
			// may be retried.
			req.ResetBody()
			next(ctx)
			return
		}
		if int64(cl) > rb.maxBody {
			rb.tooLarge(ctx)
			rb.refuse(ctx, errBodyTooBig)
			return
		}
		b := clientBodyPool.Get().(*clientBody)
		b.ctx, b.src, b.idle, b.limit, b.tempDir = ctx, req.BodyStream(), rb.idle, rb.maxBody, rb.tempDir
		if perr := rb.prepare(b, cl); perr != nil {
			rb.refuse(ctx, perr)
		} else {
			next(ctx)
		}
		b.release()
	}
}

// refuse answers a request whose body is not taken, and closes the
// connection after the answer: the rest of the body is still on it
// (the lingering close reads it away so the client sees the answer).
func (rb *requestBodies) refuse(ctx *fasthttp.RequestCtx, perr *Error) {
	var pages *ErrorPages
	if rb.pages != nil {
		pages = rb.pages()
	}
	pages.write(ctx, perr)
	ctx.Response.SetConnectionClose()
}

// prepare gives ctx's request the body b reads.
func (rb *requestBodies) prepare(b *clientBody, cl int) *Error {
	req := &b.ctx.Request
	switch {
	case cl > 0 && cl <= MaxBufferedBody:
		if cap(b.buf) < cl {
			b.buf = make([]byte, cl, MaxBufferedBody)
		}
		if _, err := io.ReadFull(b, b.buf[:cl]); err != nil {
			return readFailure(err)
		}
		req.SetBodyRaw(b.buf[:cl])
	case rb.buffering:
		n, err := b.spool(rb.tempDir)
		if err != nil {
			return readFailure(err)
		}
		req.SetBodyStream(b.spooled(), int(n))
	default:
		req.SetBodyStream(b, cl)
	}
	return nil
}

// readFailure is the client's answer when its body could not be read
// before forwarding.
func readFailure(err error) *Error {
	var cbe *clientBodyError
	if errors.As(err, &cbe) {
		return cbe.answer()
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errBodyBroken
	}
	// Only the temporary file is left to fail.
	return errSpool
}

// clientBody reads a request body from the client: within max_body, with
// a fresh read deadline per read, its errors marked as the client's.
type clientBody struct {
	ctx   *fasthttp.RequestCtx
	src   io.Reader // fasthttp's stream of the body off the connection
	idle  time.Duration
	limit int64
	read  int64
	// tempDir is where a body is spooled ("" is os.TempDir()): with
	// request_buffering, or for a FastCGI backend, which needs a chunked
	// body's length before it.
	tempDir string

	hdr headerEditor // scratch for dropping trailers

	buf  []byte // a small body, or the first part of a spooled one
	file *os.File
	mem  bytes.Reader
	rest io.SectionReader
	cat  spoolReader
}

var clientBodyPool = sync.Pool{New: func() any { return new(clientBody) }}

// Read reads from the client. Past the limit it fails, so a chunked body
// over max_body is cut before the excess reaches a backend.
func (b *clientBody) Read(p []byte) (int, error) {
	if b.idle > 0 {
		if err := b.ctx.SetReadDeadline(time.Now().Add(b.idle)); err != nil {
			return 0, &clientBodyError{err}
		}
	}
	n, err := b.src.Read(p)
	b.read += int64(n)
	if b.read > b.limit {
		return 0, &clientBodyError{errBodyOverLimit}
	}
	if err == io.EOF {
		// The end of a chunked body carries its trailer, which fasthttp
		// reads into the request's header and would write on after the
		// body: no trailer reaches a backend.
		b.hdr.dropTrailers(&b.ctx.Request.Header)
	} else if err != nil {
		return n, &clientBodyError{err}
	}
	return n, err
}

// spool reads the whole body, the first MaxBufferedBody into memory and
// the rest into a temporary file, which is unlinked at once so that it
// goes away with the request whatever happens to the process.
func (b *clientBody) spool(dir string) (int64, error) {
	if cap(b.buf) < MaxBufferedBody {
		b.buf = make([]byte, 0, MaxBufferedBody)
	}
	b.buf = b.buf[:MaxBufferedBody]
	n, err := io.ReadFull(b, b.buf)
	b.buf = b.buf[:n]
	switch err {
	case io.EOF, io.ErrUnexpectedEOF:
		return int64(n), nil // all of it fitted
	case nil:
	default:
		return 0, err
	}
	f, err := os.CreateTemp(dir, "sessionproxy-body-*")
	if err != nil {
		return 0, err
	}
	os.Remove(f.Name())
	b.file = f
	m, err := io.Copy(f, b)
	if err != nil {
		return 0, err
	}
	return int64(n) + m, nil
}

// spooled returns a reader of the spooled body.
func (b *clientBody) spooled() io.Reader {
	b.mem.Reset(b.buf)
	b.cat = spoolReader{mem: &b.mem}
	if b.file != nil {
		b.rest = *io.NewSectionReader(b.file, 0, 1<<62)
		b.cat.file = &b.rest
	}
	return &b.cat
}

// release closes the temporary file, if any, and pools b.
func (b *clientBody) release() {
	if req := &b.ctx.Request; req.BodyStream() == io.Reader(b) || req.BodyStream() == io.Reader(&b.cat) {
		req.ResetBody() // not forwarded: it must not outlive b
	}
	if b.file != nil {
		b.file.Close()
	}
	buf := b.buf
	if cap(buf) > MaxBufferedBody {
		buf = nil
	}
	*b = clientBody{buf: buf[:0], hdr: b.hdr}
	clientBodyPool.Put(b)
}

// spoolReader reads a spooled body: memory first, then the file.
type spoolReader struct {
	mem  *bytes.Reader
	file io.Reader
}

// Read reads the next part of the body.
func (r *spoolReader) Read(p []byte) (int, error) {
	n, err := r.mem.Read(p)
	if err == io.EOF && r.file != nil {
		return r.file.Read(p)
	}
	return n, err
}
