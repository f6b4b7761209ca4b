// Package compress compresses responses as they go to the client: zstd,
// br or gzip, chosen by the request's Accept-Encoding among the
// configured encodings (package policy), for the compressible types, as
// nginx's gzip and Caddy's encode do. A body held in memory is compressed
// whole and keeps a Content-Length; a streamed one is compressed as it is
// sent, in bounded memory, and flushed whenever it would have been
// flushed uncompressed.
//
// fasthttp's own helpers (CompressHandler, Response.BrotliBody and the
// like, v1.78) are not used: they ignore q-values and know no preference
// order, have a fixed type list and minimum (200 bytes), leave the ETag
// strong, and compress a streamed body through a goroutine and a pipe per
// response, flushing the encoder on every write whatever the body is.
package compress

import (
	"bytes"
	"io"
	"sync"

	"github.com/valyala/fasthttp"

	"sessionproxy/compress/policy"
)

// MaxWhole is the largest body of known length that is compressed whole
// in memory, so that it keeps a Content-Length (the compressed one); a
// longer one is compressed as it streams, chunked. It is the proxy's
// MaxBufferedBody: no more of a body is held than the proxy holds anyway.
const MaxWhole = 64 << 10

// Compressor applies a compression policy to responses. Safe for
// concurrent use by multiple goroutines. A nil *Compressor compresses
// nothing.
type Compressor struct {
	policy *policy.Policy
}

// New returns the Compressor of o; the error names the first problem of
// o (policy.Options.Check).
func New(o policy.Options) (*Compressor, error) {
	p, err := policy.New(o)
	if err != nil {
		return nil, err
	}
	return &Compressor{policy: p}, nil
}

// Proxied reports whether backends' responses are compressed too, not
// only static files'.
func (c *Compressor) Proxied() bool { return c != nil && c.policy.Proxied() }

var (
	hdrETag           = []byte("ETag")
	hdrCacheControl   = "Cache-Control"
	hdrAcceptEncoding = "Accept-Encoding"
	valueWeak         = []byte("W/")
	valueAE           = []byte("Accept-Encoding")
	valueNoTransform  = []byte("no-transform")
)

// Apply compresses the response in ctx, ready to be sent, when the
// request accepts one of the encodings and the response allows it. It
// never touches a response that has a Content-Encoding or says
// Cache-Control: no-transform (nor one to a request that says it). A
// response of a compressible type gets Vary: Accept-Encoding; it is then
// compressed unless it is a 206 (or has a Content-Range), a body of known
// length under min_length, or no encoding is acceptable. A compressed
// response gets Content-Encoding, its ETag made weak (W/) and no
// Accept-Ranges. A HEAD's answer, or any with SkipBody, gets the headers
// its GET would have, without a Content-Length. A 304 to a request that
// named the weak ETag a compressed answer had gets that ETag back, weak,
// and Vary. A streamed body that is not Movable, or is to an HTTP/1.0
// client (which cannot read chunks), is left as it is.
func (c *Compressor) Apply(ctx *fasthttp.RequestCtx) {
	if c == nil || !c.policy.On() {
		return
	}
	req, resp := &ctx.Request, &ctx.Response
	h := &resp.Header
	if len(h.ContentEncoding()) > 0 || noTransform(h.PeekAll(hdrCacheControl)) ||
		noTransform(req.Header.PeekAll(hdrCacheControl)) {
		return
	}
	status := resp.StatusCode()
	if status == fasthttp.StatusNotModified {
		c.notModified(ctx)
		return
	}
	if !c.policy.Compressible(h.Peek(fasthttp.HeaderContentType)) {
		return
	}
	addVary(h)
	if status == fasthttp.StatusPartialContent || status < 200 || status == fasthttp.StatusNoContent ||
		len(h.Peek(fasthttp.HeaderContentRange)) > 0 {
		return
	}
	e := c.policy.Negotiate(req.Header.Peek(hdrAcceptEncoding))
	if e == policy.Identity {
		return
	}
	skip := resp.SkipBody || req.Header.IsHead()
	length := int64(h.ContentLength()) // -1 chunked, -2 until close: unknown
	if !skip && !resp.IsBodyStream() {
		length = int64(len(resp.Body())) // held in memory: Body reads nothing
	}
	if length >= 0 && length < c.policy.MinLength() {
		return
	}
	var src Movable
	if !skip && resp.IsBodyStream() {
		var ok bool
		src, ok = resp.BodyStream().(Movable)
		whole := length >= 0 && length <= MaxWhole && !eventStream(h)
		if !ok || !whole && !req.Header.IsHTTP11() {
			return
		}
	}
	h.SetContentEncoding(e.String())
	weakenETag(h)
	h.Del(fasthttp.HeaderAcceptRanges)
	switch {
	case skip:
		h.SetContentLength(-1)
	case src == nil:
		compressWhole(resp, bytes.NewReader(resp.Body()), e)
	case length >= 0 && length <= MaxWhole && !eventStream(h):
		compressWhole(resp, src, e) // SetBody in it closes src
	default:
		flush := length < 0 || eventStream(h)
		src.SkipNextClose()
		resp.SetBodyStream(newStream(src, e, flush), -1)
	}
}

// wholeBufs are the buffers a body compressed whole is written to; each
// then becomes the response's body, whose old buffer comes back here.
var wholeBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// compressWhole replaces the response's body with src compressed. A body
// that cannot be read whole (a file's read error) becomes a 500.
func compressWhole(resp *fasthttp.Response, src io.Reader, e policy.Encoding) {
	out := wholeBufs.Get().(*bytes.Buffer)
	out.Reset()
	enc := getEncoder(e, out)
	buf := readBufs.Get().(*[readSize]byte)
	_, err := io.CopyBuffer(onlyWriter{enc}, onlyReader{src}, buf[:])
	readBufs.Put(buf)
	if err == nil {
		err = enc.Close()
	}
	putEncoder(e, enc)
	if err != nil {
		resp.ResetBody()
		resp.Header.Del(fasthttp.HeaderContentEncoding)
		resp.Header.Del(fasthttp.HeaderETag)
		resp.SetStatusCode(fasthttp.StatusInternalServerError)
		resp.Header.SetContentType("text/plain; charset=utf-8")
		resp.SetBodyString("internal server error\n")
	} else {
		// The compressed bytes become the body; the body's old buffer
		// (or the bytes a stream's SwapBody read, none here: the stream
		// is read to its end) becomes the pool's.
		old := resp.SwapBody(out.Bytes())
		*out = *bytes.NewBuffer(old[:0])
	}
	wholeBufs.Put(out)
}

// onlyReader and onlyWriter hide ReadFrom and WriteTo, so that CopyBuffer
// uses the pooled buffer.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

// notModified gives a 304 the ETag and Vary of the compressed answer the
// client holds: it names that answer's weak ETag in If-None-Match, the
// validator (the file's or backend's ETag) is that ETag made strong, and
// this request still gets an encoding. A 304 carries no Content-Type, so
// nothing else tells that the answer would have been compressed.
func (c *Compressor) notModified(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	etag := h.PeekBytes(hdrETag)
	if len(etag) == 0 || bytes.HasPrefix(etag, valueWeak) {
		return
	}
	if c.policy.Negotiate(ctx.Request.Header.Peek(hdrAcceptEncoding)) == policy.Identity {
		return
	}
	for _, inm := range ctx.Request.Header.PeekAll(fasthttp.HeaderIfNoneMatch) {
		for len(inm) > 0 {
			var tag []byte
			tag, inm = cutComma(inm)
			tag = bytes.TrimSpace(tag)
			if len(tag) == len(etag)+2 && bytes.HasPrefix(tag, valueWeak) && bytes.Equal(tag[2:], etag) {
				weakenETag(h)
				addVary(h)
				return
			}
		}
	}
}

func cutComma(b []byte) (before, after []byte) {
	if i := bytes.IndexByte(b, ','); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

// weakenETag makes a strong ETag weak: the compressed bytes are not the
// bytes the strong one names (RFC 9110 section 8.8.3).
func weakenETag(h *fasthttp.ResponseHeader) {
	etag := h.PeekBytes(hdrETag)
	if len(etag) == 0 || bytes.HasPrefix(etag, valueWeak) {
		return
	}
	var b [128]byte
	v := append(append(b[:0], valueWeak...), etag...)
	h.SetBytesV(fasthttp.HeaderETag, v) // normalises the key, as the ETag set by static or a backend was
}

// addVary adds Accept-Encoding to Vary, once: not when a Vary line names
// it already or is "*".
func addVary(h *fasthttp.ResponseHeader) {
	for _, v := range h.PeekAll(fasthttp.HeaderVary) {
		for len(v) > 0 {
			var tok []byte
			tok, v = cutComma(v)
			tok = bytes.TrimSpace(tok)
			if string(tok) == "*" || bytes.EqualFold(tok, valueAE) {
				return
			}
		}
	}
	h.AddBytesV(fasthttp.HeaderVary, valueAE)
}

// noTransform reports whether Cache-Control lines hold no-transform
// (RFC 9111 section 5.2): a content coding added on the way is a
// transformation.
func noTransform(lines [][]byte) bool {
	for _, v := range lines {
		for len(v) > 0 {
			var tok []byte
			tok, v = cutComma(v)
			if bytes.EqualFold(bytes.TrimSpace(tok), valueNoTransform) {
				return true
			}
		}
	}
	return false
}

// eventStream reports whether a response is Server-Sent Events, which go
// out event by event whatever their length says.
func eventStream(h *fasthttp.ResponseHeader) bool {
	ct := h.Peek(fasthttp.HeaderContentType)
	const es = "text/event-stream"
	return len(ct) >= len(es) && bytes.EqualFold(ct[:len(es)], []byte(es))
}
