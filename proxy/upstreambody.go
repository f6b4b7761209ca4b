package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// upstreamBody is a backend's response body relayed to the client as it
// arrives: fasthttp's server reads it through a small buffer and writes
// each read on, flushing chunk by chunk when the client gets it chunked.
// It decodes what the backend framed (a length, chunks, or until close)
// and owns the backend connection until it is closed: a body read to its
// end gives the connection back to the pool, anything else closes it, so
// that no later request reads the rest of this one's body.
//
// fasthttp's server reads and closes it from the connection's goroutine,
// one call at a time; it needs no lock.
type upstreamBody[C clientConn] struct {
	hc   *fasthttp.HostClient
	cc   C
	conn net.Conn
	br   *bufio.Reader
	t    *transport[C]

	// client, if not nil, is the client's request: the relay gives each
	// write to the client readIdle too, or a client that stops reading
	// would hold the backend connection for ever. fasthttp lifts the
	// deadline after the response.
	client *fasthttp.RequestCtx

	framing   framing
	left      int64 // of the body (sized) or of the current chunk (chunked)
	inChunk   bool  // a chunk's data was read; its CRLF comes next
	done      bool  // read to the end the framing gives
	closeConn bool  // the connection may not be pooled after this body
	err       error // the first read error; the backend is charged once

	sent int64      // bytes of the body handed to the client's connection
	log  pendingLog // the access-log line, written when the relay ends

	skipClose bool // the next CloseWithError does nothing (SkipNextClose)

	// fcgi, for a FastCGI backend, is the exchange the body is read
	// from (br is its script output); its transport takes it back.
	fcgi    *fcgiAnswer
	fcgiEnd func(*fasthttp.HostClient, *fcgiAnswer)
	fcgiHC  *fasthttp.HostClient
}

// framing is how a response body's end is known.
type framing uint8

const (
	sized      framing = iota // Content-Length
	chunked                   // Transfer-Encoding: chunked
	untilClose                // neither: the backend closes the connection
	fcgiStdout                // a FastCGI script's output, up to END_REQUEST
)

// relayedBody is an upstreamBody of any transport.
type relayedBody interface {
	relayTo(client *fasthttp.RequestCtx)
}

// relayTo names the client the body is relayed to.
func (b *upstreamBody[C]) relayTo(client *fasthttp.RequestCtx) { b.client = client }

// logWhenRelayed makes the access-log call once the body is relayed,
// with the bytes that went to the client.
func (b *upstreamBody[C]) logWhenRelayed(log AccessLogger, ctx *fasthttp.RequestCtx, info *AccessInfo) {
	b.log.set(log, ctx, info)
}

// start makes b the body of a response whose headers br has just read.
func (b *upstreamBody[C]) start(hc *fasthttp.HostClient, cc C, br *bufio.Reader, t *transport[C], contentLength int, closeConn bool) {
	*b = upstreamBody[C]{hc: hc, cc: cc, conn: cc.Conn(), br: br, t: t, closeConn: closeConn}
	switch {
	case contentLength >= 0:
		b.framing, b.left = sized, int64(contentLength)
	case contentLength == -1:
		b.framing = chunked
	default:
		b.framing, b.closeConn = untilClose, true
	}
}

// startFastCGI makes b the body of a FastCGI script's answer, whose CGI
// head a.hr has just read.
func (b *upstreamBody[C]) startFastCGI(hc *fasthttp.HostClient, cc C, t *fastcgiTransport[C], a *fcgiAnswer) {
	*b = upstreamBody[C]{cc: cc, conn: cc.Conn(), br: a.hr, t: t.transport, framing: fcgiStdout,
		fcgi: a, fcgiEnd: t.release, fcgiHC: hc, closeConn: !t.fcgi.KeepConn}
}

// Read reads the next piece of the body.
func (b *upstreamBody[C]) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.done {
		return 0, io.EOF
	}
	// Silence from the backend is bounded between reads, never in
	// total: a flowing download or event stream is not cut.
	now := time.Now()
	if err := b.conn.SetReadDeadline(now.Add(b.t.readIdle)); err != nil {
		return 0, b.fail(err)
	}
	if b.client != nil {
		if err := b.client.SetWriteDeadline(now.Add(b.t.readIdle)); err != nil {
			return 0, b.fail(err)
		}
	}
	var n int
	var err error
	switch b.framing {
	case sized:
		n, err = b.readSized(p)
	case chunked:
		n, err = b.readChunked(p)
	default: // untilClose, and fcgiStdout, whose reader ends at END_REQUEST
		n, err = b.br.Read(p)
		if err == io.EOF {
			b.done = true
		}
	}
	// What Read returns the server writes on at once: counted here, the
	// log never needs the body itself.
	b.sent += int64(n)
	if err != nil && err != io.EOF {
		return n, b.fail(err)
	}
	return n, err
}

func (b *upstreamBody[C]) readSized(p []byte) (int, error) {
	if b.left == 0 {
		b.done = true
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	if err == io.EOF {
		if b.left > 0 {
			return n, io.ErrUnexpectedEOF
		}
		err = nil
	}
	if b.left == 0 {
		b.done = true
	}
	return n, err
}

func (b *upstreamBody[C]) readChunked(p []byte) (int, error) {
	if b.left == 0 {
		if b.inChunk {
			if err := readCRLF(b.br); err != nil {
				return 0, err
			}
			b.inChunk = false
		}
		size, err := readChunkSize(b.br)
		if err != nil {
			return 0, err
		}
		if size == 0 {
			if err := skipTrailer(b.br); err != nil {
				return 0, err
			}
			b.done = true
			return 0, io.EOF
		}
		b.left, b.inChunk = size, true
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// fail records the first read error and charges the backend with it: a
// backend that dies or falls silent mid-body failed the request, though
// the client got a status already.
func (b *upstreamBody[C]) fail(err error) error {
	if b.err == nil {
		b.err = err
		b.t.backend.Fail()
		b.t.logger.Warn("backend failed mid-body", "backend", b.t.backend.URL, "error", err)
	}
	return b.err
}

// SkipNextClose makes the next CloseWithError do nothing: the body is
// being moved into another stream (package compress), which closes it
// instead, and fasthttp closes the stream a response holds when it is
// given another.
func (b *upstreamBody[C]) SkipNextClose() { b.skipClose = true }

// CloseWithError ends the relay; werr is why the client side stopped, if
// it did (fasthttp passes its write error). The connection is pooled only
// when the body was read to its end and nothing went wrong.
func (b *upstreamBody[C]) CloseWithError(werr error) error {
	if b.skipClose {
		b.skipClose = false
		return nil
	}
	drained := false
	if b.hc != nil { // a pipelined connection keeps its reader: it may hold the next answers
		b.hc.ReleaseReader(b.br)
	} else {
		drained = b.drain()
	}
	if b.fcgi != nil {
		b.fcgiEnd(b.fcgiHC, b.fcgi)
	}
	if b.done && b.err == nil && (werr == nil || drained) && !b.closeConn {
		b.t.releaseConn(b.cc)
	} else {
		b.t.closeConn(b.cc)
	}
	b.t.backend.End()
	b.log.done(b.sent)
	t := b.t
	*b = upstreamBody[C]{}
	t.bodies.Put(b)
	return nil
}

// pipelineDrainMax is how much of the rest of a pipelined answer is read
// off when its client leaves before the end.
const pipelineDrainMax = 1 << 20

// drain reads off the rest of a pipelined answer whose client went away
// before its end, when that rest is at most pipelineDrainMax, and reports
// whether the body was then read to its end. The requests written behind
// it on the connection are answered only after it: ending the connection
// would fail them all, with 502 for those that cannot be sent again,
// because one client left (issue 22: bad input costs nobody else a
// request). Each read is still bounded by readIdle. A longer rest ends the
// connection as before.
func (b *upstreamBody[C]) drain() bool {
	if b.done || b.err != nil || b.closeConn || b.framing == sized && b.left > pipelineDrainMax {
		return false
	}
	b.client = nil // gone: its write deadline is of no use
	sent := b.sent
	buf := bulkBufs.Get().(*[32 << 10]byte)
	for n := 0; n < pipelineDrainMax && !b.done; {
		k, err := b.Read(buf[:])
		n += k
		if err != nil {
			break
		}
	}
	bulkBufs.Put(buf)
	b.sent = sent // the log counts what the client got, not what was read off
	return b.done && b.err == nil
}

// Errors in a backend's chunked framing.
var (
	errChunkSize    = errors.New("proxy: invalid chunk size from backend")
	errChunkEnd     = errors.New("proxy: chunk not followed by CRLF")
	errTrailerLarge = errors.New("proxy: response trailer too large")
)

// maxChunkSizeDigits keeps a chunk size within int64.
const maxChunkSizeDigits = 15

// readChunkSize reads a chunk-size line: hex digits, optional extensions
// after ";" (ignored), CRLF. A bare LF ends it too, as for most clients.
func readChunkSize(br *bufio.Reader) (int64, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			return 0, io.ErrUnexpectedEOF
		}
		return 0, errChunkSize
	}
	line = line[:len(line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	var size int64
	digits := 0
	for _, c := range line {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		case c == ';' || c == ' ' || c == '\t':
			if digits == 0 {
				return 0, errChunkSize
			}
			return size, nil
		default:
			return 0, errChunkSize
		}
		if digits++; digits > maxChunkSizeDigits {
			return 0, errChunkSize
		}
		size = size<<4 | int64(d)
	}
	if digits == 0 {
		return 0, errChunkSize
	}
	return size, nil
}

// readCRLF reads the line end that follows a chunk's data.
func readCRLF(br *bufio.Reader) error {
	c, err := br.ReadByte()
	if err == nil && c == '\r' {
		c, err = br.ReadByte()
	}
	switch {
	case err == io.EOF:
		return io.ErrUnexpectedEOF
	case err != nil:
		return err
	case c != '\n':
		return errChunkEnd
	}
	return nil
}

// maxTrailerLines bounds the trailer fields a body may end with; they are
// read and dropped, since a client that did not ask for trailers may not
// get them.
const maxTrailerLines = 64

// skipTrailer reads the trailer section up to its empty line.
func skipTrailer(br *bufio.Reader) error {
	for range maxTrailerLines {
		line, err := br.ReadSlice('\n')
		switch {
		case err == io.EOF:
			return io.ErrUnexpectedEOF
		case err != nil:
			return errTrailerLarge
		case len(line) == 1 || len(line) == 2 && line[0] == '\r':
			return nil
		}
	}
	return errTrailerLarge
}
