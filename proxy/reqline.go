package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"

	"github.com/valyala/fasthttp"
)

// What the proxy reads of a request line: the path it matches routes and
// runs its checks on, the host it matches them on, and the versions it
// accepts. CONTRACT.md section 12, "Normalisation".

var (
	errClimb = &Error{fasthttp.StatusBadRequest, "malformed request: path climbs above /"}
	errPath  = &Error{fasthttp.StatusBadRequest, "malformed request: invalid path"}
	// errVersion answers HTTP/2.0, HTTP/9.9 and the like on an HTTP/1
	// connection: fasthttp accepts any HTTP/d.d and would send it on.
	errVersion = &Error{fasthttp.StatusHTTPVersionNotSupported, "HTTP version not supported"}
)

// errors of normalizePath, told apart for the fuzz target and the tests.
var (
	errPathClimbs    = errors.New("path climbs above /")
	errPathEscape    = errors.New("invalid %-escape in path")
	errPathAmbiguous = errors.New("an escaped / hides a dot segment")
)

// normalizePath appends to dst the normalised form of raw, the path of a
// request target (from its first "/" up to "?"), and returns it. Every
// %XX is decoded once (%252e is "%2e", never "."); a segment is read up
// to its first ";", as Tomcat reads path parameters (so "..;x" is ".."
// and "a;jsessionid=1" is "a"); empty segments ("//") are dropped, and
// "." and ".." resolved. A ".." with nothing left to remove climbs above
// "/": the error is errPathClimbs.
//
// The result is decoded except for two bytes: a decoded "/" is written
// %2F and a decoded "%" is written %25, so that a segment stays one
// segment and the result reads the same when normalised again. An escaped
// "/" next to a dot segment (..%2F..%2Fetc) is refused (errPathAmbiguous):
// readers that split on it after decoding (nginx, fasthttp) would climb.
// A "%" not followed by two hex digits is errPathEscape. A raw path that
// does not start with "/" is read as if it did.
//
// normalizePath does not allocate when dst has room for raw.
func normalizePath(dst, raw []byte) ([]byte, error) {
	if plainPath(raw) {
		return append(dst, raw...), nil
	}
	return normalizeSegments(dst, raw)
}

// normalizeSegments is normalizePath without the shortcut for plain paths.
func normalizeSegments(dst, raw []byte) ([]byte, error) {
	root := len(dst)
	trailing := false // the last segment read ends the path with "/"
	for i := 0; i <= len(raw); {
		if i < len(raw) && raw[i] == '/' {
			i++
		}
		j := i + bytes.IndexByte(raw[i:], '/')
		if j < i {
			j = len(raw)
		}
		start := len(dst)
		dst = append(dst, '/')
		var err error
		var slashes bool
		dst, slashes, err = appendSegment(dst, raw[i:j])
		if err != nil {
			return dst[:root], err
		}
		seg := dst[start+1:]
		switch {
		case len(seg) == 0 || len(seg) == 1 && seg[0] == '.':
			dst = dst[:start]
			trailing = true
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			dst = dst[:start]
			if len(dst) == root {
				return dst, errPathClimbs
			}
			dst = dst[:root+bytes.LastIndexByte(dst[root:], '/')]
			trailing = true
		default:
			if slashes && hidesDotSegment(seg) {
				return dst[:root], errPathAmbiguous
			}
			trailing = false
		}
		i = j
		if j == len(raw) {
			break
		}
	}
	if trailing || len(dst) == root {
		dst = append(dst, '/')
	}
	return dst, nil
}

// plainPath reports whether raw is its own normalised form: it starts
// with "/" and has no "%", ";", "." or "//". Most paths are; they skip
// the segment walk.
func plainPath(raw []byte) bool {
	if len(raw) == 0 || raw[0] != '/' {
		return false
	}
	prev := byte(0)
	for _, c := range raw {
		switch c {
		case '%', ';', '.':
			return false
		case '/':
			if prev == '/' {
				return false
			}
		}
		prev = c
	}
	return true
}

// appendSegment appends seg decoded up to its first ";", literal or
// escaped, with a decoded "/" or "%" escaped again; slashes reports
// whether it wrote an escaped "/".
func appendSegment(dst, seg []byte) (_ []byte, slashes bool, _ error) {
	for k := 0; k < len(seg); k++ {
		c := seg[k]
		if c == '%' {
			if k+2 >= len(seg) {
				return dst, false, errPathEscape
			}
			hi, lo := unhex(seg[k+1]), unhex(seg[k+2])
			if hi < 0 || lo < 0 {
				return dst, false, errPathEscape
			}
			c = byte(hi<<4 | lo)
			k += 2
			switch c {
			case '/':
				dst = append(dst, "%2F"...)
				slashes = true
				continue
			case '%':
				dst = append(dst, "%25"...)
				continue
			}
		}
		if c == ';' {
			break
		}
		dst = append(dst, c)
	}
	return dst, slashes, nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// hidesDotSegment reports whether a normalised segment, split at its
// escaped slashes, has a "." or ".." part.
func hidesDotSegment(seg []byte) bool {
	if !bytes.Contains(seg, escapedSlash) {
		return false
	}
	for len(seg) > 0 {
		part := seg
		if n := bytes.Index(seg, escapedSlash); n >= 0 {
			part, seg = seg[:n], seg[n+len(escapedSlash):]
		} else {
			seg = nil
		}
		if string(part) == "." || string(part) == ".." {
			return true
		}
	}
	return false
}

var escapedSlash = []byte("%2F")

// targetForm is the form of a request target (RFC 9112, section 3.2).
type targetForm int

const (
	originForm   targetForm = iota // /path?query
	absoluteForm                   // http://host/path?query
	otherForm                      // "*" (OPTIONS) or CONNECT's host:port: no path
)

// splitTarget returns the origin part of a request target: from the path
// on, query included, "" when an absolute-form target (http://host) has
// none. For the other forms it is the whole target. The host of an
// absolute-form target is fasthttp's URI().Host().
func splitTarget(target []byte) (origin []byte, form targetForm) {
	if len(target) > 0 && target[0] == '/' {
		return target, originForm
	}
	n := bytes.Index(target, schemeSep)
	if n <= 0 {
		return target, otherForm
	}
	rest := target[n+len(schemeSep):]
	for i, c := range rest {
		if c == '/' || c == '?' || c == '#' {
			return rest[i:], absoluteForm
		}
	}
	return rest[len(rest):], absoluteForm
}

// hasUserinfo reports whether the request's host, in Host or an
// absolute-form target, carries userinfo, for a Proxy served without a
// Router. fasthttp parses the target's
// "@" into its URI's user name; Host is checked as sent.
func hasUserinfo(req *fasthttp.Request) bool {
	return bytes.IndexByte(req.Header.Host(), '@') >= 0 || len(req.URI().Username()) > 0
}

// authorityHasUserinfo reports whether the request's host carries
// userinfo: an "@" in Host, or in the authority of an absolute-form
// target (origin is the target's tail from splitTarget). Checked before
// the request line's host replaces Host: fasthttp's parse of that host
// drops the userinfo but keeps it for an Authorization header.
func authorityHasUserinfo(h *fasthttp.RequestHeader, origin []byte, form targetForm) bool {
	if bytes.IndexByte(h.Host(), '@') >= 0 {
		return true
	}
	if form != absoluteForm {
		return false
	}
	target := h.RequestURI()
	return bytes.IndexByte(target[:len(target)-len(origin)], '@') >= 0
}

// pathOf is the raw path of an origin part: up to its query or fragment.
func pathOf(origin []byte) []byte {
	for i, c := range origin {
		if c == '?' || c == '#' {
			return origin[:i]
		}
	}
	return origin
}

// hasFragment reports whether an origin part carries a "#fragment", which no
// request target may (RFC 9112, section 3.2) and which fasthttp would
// drop on the way to the backend: the target would not go on as sent.
func hasFragment(origin []byte) bool {
	return bytes.IndexByte(origin, '#') >= 0
}

var (
	schemeSep   = []byte("://")
	valueHTTP11 = []byte("HTTP/1.1")
	valueHTTP10 = []byte("HTTP/1.0")
)

// matchHost is a Host value as routes compare it: without its port and
// without the trailing dot of a fully qualified name ("example.com." is
// example.com).
func matchHost(h []byte) []byte {
	h = stripPort(h)
	if n := len(h); n > 1 && h[n-1] == '.' {
		h = h[:n-1]
	}
	return h
}

// supportedVersion reports whether a request line's version is one the
// proxy speaks: fasthttp's server has already refused what is not
// HTTP/d.d with 400.
func supportedVersion(h *fasthttp.RequestHeader) bool {
	if h.IsHTTP11() {
		return true
	}
	return string(h.Protocol()) == "HTTP/1.0"
}

// reqTarget is what Router read of a request's target, kept for the
// handler it hands the request to (Static, and Sessions' ignore pattern)
// as a user value of the request. Pooled: the Router takes it back when
// the handler returns.
type reqTarget struct {
	path []byte // normalised, see normalizePath
}

type targetKey struct{}

var targetPool = sync.Pool{New: func() any { return &reqTarget{path: make([]byte, 0, 256)} }}

// normalPath returns the normalised path of the request in ctx: the one
// the Router settled, or, for a handler run without a Router (tests), one
// computed here.
func normalPath(ctx *fasthttp.RequestCtx) ([]byte, error) {
	if t, ok := ctx.UserValue(targetKey{}).(*reqTarget); ok {
		return t.path, nil
	}
	origin, form := splitTarget(ctx.Request.Header.RequestURI())
	if form == otherForm {
		return origin, nil
	}
	return normalizePath(nil, pathOf(origin))
}

// closeDelimited sends a streamed response of unknown length to an
// HTTP/1.0 client as HTTP/1.0 frames it: without Transfer-Encoding, the
// body ending with the connection. fasthttp's server would send it
// chunked, which an HTTP/1.0 client cannot read (RFC 9112, section 6.1:
// no Transfer-Encoding in a response to an HTTP/1.0 request). Backends
// answer chunked now that they get HTTP/1.1; before, a close-delimited
// answer was relayed chunked all the same.
//
// The response goes out on the hijacked connection after the handler
// returns, as fasthttp would write it. The body is closed there too, and
// with it its backend connection goes back and the access-log line is
// written: fasthttp would close it only when it releases the context,
// after resetting the request the line describes.
func closeDelimited(ctx *fasthttp.RequestCtx) {
	resp := &ctx.Response
	if !resp.IsBodyStream() || resp.Header.ContentLength() >= 0 || resp.SkipBody || ctx.IsHead() {
		return
	}
	resp.Header.Del(fasthttp.HeaderTransferEncoding)
	resp.Header.SetContentLength(-2) // identity: no length, Connection: close
	resp.SetConnectionClose()
	head := resp.Header.AppendBytes(nil)
	body := resp.BodyStream()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		// NewServer keeps hijacked connections open for their handler.
		defer c.Close()
		if _, err := c.Write(head); err == nil {
			// Each read of a relayed body bounds the next write with
			// ReadIdle, as for any streamed response.
			io.Copy(c, body)
		}
		ctx.Response.ResetBody() // closes body while ctx still holds its request
	})
}
