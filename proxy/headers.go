package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// Hop-by-hop headers (RFC 7230 section 6.1), as in net/http/httputil, are
// removed in both directions. Connection, Trailer and Transfer-Encoding are
// handled apart: fasthttp keeps them outside its header list.

// isHopHeader reports whether k names a hop-by-hop header that fasthttp keeps
// in its header list. One pass over the headers with this check replaces a
// Del per name, each of which would scan every header.
func isHopHeader(k []byte) bool {
	switch len(k) {
	case 2:
		return equalFold(k, "te")
	case 7:
		return equalFold(k, "upgrade")
	case 10:
		return equalFold(k, "keep-alive")
	case 16:
		return equalFold(k, "proxy-connection")
	case 18:
		return equalFold(k, "proxy-authenticate")
	case 19:
		return equalFold(k, "proxy-authorization")
	}
	return false
}

// Header names as fasthttp normalises them, set with SetCanonical so that
// they are not normalised again on every request.
var (
	hdrXForwardedFor   = []byte("X-Forwarded-For")
	hdrXRealIP         = []byte("X-Real-Ip")
	hdrXForwardedProto = []byte("X-Forwarded-Proto")
	hdrXForwardedHost  = []byte("X-Forwarded-Host")
	hdrXRequestID      = []byte("X-Request-Id")
	valueHTTP          = []byte("http")
	valueHTTPS         = []byte("https")
)

const sessionHeaderPrefix = "x-session-"

// hasPrefixFold reports whether s starts with the lower-case ASCII prefix,
// ignoring case.
func hasPrefixFold(s []byte, lowerPrefix string) bool {
	if len(s) < len(lowerPrefix) {
		return false
	}
	for i := 0; i < len(lowerPrefix); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lowerPrefix[i] {
			return false
		}
	}
	return true
}

// headerEditor is the per-request scratch space for header rewriting; it is
// pooled with the request state so the hot path does not allocate.
type headerEditor struct {
	keys [][]byte // copies of header names to delete after iterating
	vals [][]byte // copies of header values to put back (dropTrailers)
	buf  []byte
	fwd  forwarded
}

// forwarded is what a request brought of the forwarding headers, read
// before any header is deleted: fasthttp's Del moves the last header
// field into the gap it leaves, so only then are the lines in the order
// the client (or the balancer in front) sent them.
type forwarded struct {
	// buf holds the X-Forwarded-For lines joined, then the first
	// X-Forwarded-Proto line, then the first X-Forwarded-Host line,
	// ending at xffEnd, protoEnd and len(buf).
	buf              []byte
	xffEnd, protoEnd int
	// Lines of X-Forwarded-For, X-Real-IP, X-Forwarded-Proto,
	// X-Forwarded-Host: a name with more than one is deleted before it
	// is set, as SetCanonical replaces only the first.
	nXFF, nRealIP, nProto, nHost int
}

func (e *headerEditor) reset() {
	e.keys = e.keys[:0]
	e.buf = e.buf[:0]
}

// remember copies a header name for deletion once iteration is done;
// fasthttp's header slices may not be changed while visiting them.
func (e *headerEditor) remember(k []byte) {
	e.keys = append(e.keys, e.copy(k))
}

// copy returns a copy of b in e.buf. Earlier copies stay valid when buf
// grows: they keep the array they were made in.
func (e *headerEditor) copy(b []byte) []byte {
	start := len(e.buf)
	e.buf = append(e.buf, b...)
	return e.buf[start:len(e.buf):len(e.buf)]
}

// connectionTokens calls del for every header named in a Connection header
// value other than close and keep-alive (RFC 7230 section 6.1), and Host:
// no hop owns it, and a client's "Connection: Host" took it away from
// what the proxy read next, so the backend got an empty X-Forwarded-Host
// beside the Host fasthttp still wrote (nginx removes no header that a
// Connection field names).
func connectionTokens(v []byte, del func([]byte)) {
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		tok := trimSpace(v[:i])
		if len(tok) > 0 && !equalFold(tok, "close") && !equalFold(tok, "keep-alive") && !equalFold(tok, "host") {
			del(tok)
		}
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func equalFold(b []byte, lower string) bool {
	return len(b) == len(lower) && hasPrefixFold(b, lower)
}

// cleanRequest removes hop-by-hop headers, those named in Connection, the
// trailer section of a chunked body, every X-Session-* header a client sent
// (a client never sets session data) and every header whose name is not
// plain (plainName: letters, digits, "-", and "_" only if underscores is
// set). Unless the peer is trusted (real_ip_from), it also removes the
// client's other forwarding headers (isClientForwarding).
func (e *headerEditor) cleanRequest(h *fasthttp.RequestHeader, underscores, trusted bool) {
	e.dropTrailers(h)
	e.reset()
	conn := false
	for k, v := range h.All() {
		switch {
		case equalFold(k, "connection"):
			// Every Connection field, not only the first that Peek
			// returns: each may name headers.
			connectionTokens(v, e.remember)
			conn = true
		case dropRequestHeader(k, underscores), !trusted && isClientForwarding(k):
			e.remember(k)
		}
	}
	for _, k := range e.keys {
		h.DelBytes(k)
	}
	if conn {
		h.Del(fasthttp.HeaderConnection)
	}
}

// dropRequestHeader reports whether a client's header named k must not
// reach a backend. Proxy is never a client's to send (httpoxy): CGI,
// PHP and WSGI hand it to the app as HTTP_PROXY, which many HTTP clients
// take for their outgoing proxy.
func dropRequestHeader(k []byte, underscores bool) bool {
	if isHopHeader(k) || isSessionHeaderName(k) || !plainName(k, underscores) || len(k) == 5 && equalFold(k, "proxy") {
		return true
	}
	return underscores && isForwardingAlias(k)
}

// isClientForwarding reports whether k, with "_" read as "-", names a
// forwarding header the proxy does not set but backends' proxy support
// reads as the proxy's word: Forwarded (RFC 7239; Spring's
// ForwardedHeaderFilter and Rack read it before X-Forwarded-*, so a
// client's host=evil would undo the X-Forwarded-Host the proxy set),
// X-Forwarded-Port (Tomcat's RemoteIpValve as Spring Boot configures it,
// Werkzeug's ProxyFix), X-Forwarded-Prefix (Spring, ProxyFix: the base of
// the links and redirects the app writes), X-Forwarded-Ssl and
// X-Forwarded-Scheme (Rack's scheme). From a client they are its word
// alone; a trusted balancer's are kept, as its X-Forwarded-Proto is.
func isClientForwarding(k []byte) bool {
	switch len(k) {
	case len("forwarded"):
		return equalFold(k, "forwarded")
	case len("x-forwarded-ssl"):
		return equalFoldDash(k, "x-forwarded-ssl")
	case len("x-forwarded-port"):
		return equalFoldDash(k, "x-forwarded-port")
	case len("x-forwarded-prefix"):
		return equalFoldDash(k, "x-forwarded-prefix") || equalFoldDash(k, "x-forwarded-scheme")
	}
	return false
}

// isForwardingAlias reports whether k, with an "_" in it, names one of the
// headers setForwarded sets when "_" is read as "-": WSGI, CGI and PHP
// would take X_Forwarded_For for the proxy's X-Forwarded-For.
func isForwardingAlias(k []byte) bool {
	if bytes.IndexByte(k, '_') < 0 {
		return false
	}
	for _, name := range [...]string{"x-forwarded-for", "x-real-ip", "x-forwarded-proto", "x-forwarded-host"} {
		if len(k) == len(name) && equalFoldDash(k, name) {
			return true
		}
	}
	return false
}

// equalFoldDash is equalFold reading "_" as "-"; b is as long as lower.
func equalFoldDash(b []byte, lower string) bool {
	for i, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '_':
			c = '-'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// plainName reports whether a request header name is made of letters,
// digits and "-" only, and "_" when underscores is set, as nginx's
// ignore_invalid_headers requires. fasthttp accepts more (a space inside a
// name, say), and backends disagree about such names: Python's http.server
// stops reading headers at "X Foo: 1", so the backend would lose every
// header after it, the proxy's X-Forwarded-For and X-Session-* included;
// Node refuses the request. Underscores are dropped by default
// (underscores_in_headers off): WSGI, CGI and PHP read "_" and "-" as one,
// so X_Forwarded_For would pass for X-Forwarded-For.
func plainName(k []byte, underscores bool) bool {
	for _, c := range k {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
		case c == '_' && underscores:
		default:
			return false
		}
	}
	return true
}

// isSessionHeaderName reports whether a request header name starts with
// x-session- in any case, with "_" read as "-": a backend behind WSGI, CGI
// or PHP sees X_Session_Attr_Role as X-Session-Attr-Role.
func isSessionHeaderName(k []byte) bool {
	return len(k) >= len(sessionHeaderPrefix) && equalFoldDash(k[:len(sessionHeaderPrefix)], sessionHeaderPrefix)
}

// dropTrailers removes the trailer section of a chunked request body and
// the Trailer field that announced it: no trailer reaches a backend, as a
// trailer or as a header. fasthttp keeps trailers
// apart from the header list, where All does not show them, and deleting
// Trailer moves them into that list. So every trailer name is deleted while
// it is still announced, which removes header fields of the same name too,
// and those header fields, the client's real headers, are put back once
// Trailer is gone. Requests without trailers cost one length check.
func (e *headerEditor) dropTrailers(h *fasthttp.RequestHeader) {
	names := h.PeekTrailerKeys()
	if len(names) == 0 {
		return
	}
	e.reset()
	for _, k := range names {
		e.remember(k)
	}
	numNames := len(e.keys)
	e.vals = e.vals[:0]
	for k, v := range h.All() {
		if equalFold(k, "trailer") {
			continue
		}
		for _, name := range e.keys[:numNames] {
			if bytes.EqualFold(k, name) {
				e.remember(k)
				e.vals = append(e.vals, e.copy(v))
				break
			}
		}
	}
	for _, k := range e.keys[:numNames] {
		h.DelBytes(k)
	}
	h.Del(fasthttp.HeaderTrailer)
	for i, k := range e.keys[numNames:] {
		h.AddBytesKV(k, e.vals[i])
	}
}

// cleanResponse removes hop-by-hop headers and those named in Connection
// from a backend's response. X-Session-* headers are left to the caller,
// which reads them first. It mirrors cleanRequest on purpose: fasthttp's
// request and response headers share no interface, and going through one
// of our own would put dynamic calls and an escaping iterator on the hot
// path, which allocates nothing today.
func (e *headerEditor) cleanResponse(h *fasthttp.ResponseHeader) {
	e.reset()
	conn := false
	for k, v := range h.All() {
		switch {
		case equalFold(k, "connection"):
			connectionTokens(v, e.remember)
			conn = true
		case isHopHeader(k):
			e.remember(k)
		}
	}
	for _, k := range e.keys {
		h.DelBytes(k)
	}
	if conn {
		h.Del(fasthttp.HeaderConnection)
	}
	h.Del(fasthttp.HeaderTrailer)
	h.ResetConnectionClose()
}

// stripSessionHeaders removes every X-Session-* header of a response.
func (e *headerEditor) stripSessionHeaders(h *fasthttp.ResponseHeader) {
	e.reset()
	for k := range h.All() {
		if hasPrefixFold(k, sessionHeaderPrefix) {
			e.remember(k)
		}
	}
	for _, k := range e.keys {
		h.DelBytes(k)
	}
}

// readForwarded reads the forwarding headers of a request for
// setForwarded; it must run before any header of h is deleted.
func (e *headerEditor) readForwarded(h *fasthttp.RequestHeader) {
	f := &e.fwd
	*f = forwarded{buf: f.buf[:0]}
	var proto, host []byte // the first lines; valid until h changes
	for k, v := range h.All() {
		switch len(k) {
		case len("x-forwarded-for"):
			if equalFold(k, "x-forwarded-for") {
				f.nXFF++
				f.buf = joinLine(f.buf, 0, v)
			}
		case len("x-real-ip"):
			if equalFold(k, "x-real-ip") {
				f.nRealIP++
			}
		case len("x-forwarded-proto"):
			if equalFold(k, "x-forwarded-proto") {
				if f.nProto++; f.nProto == 1 {
					proto = trimSpace(v)
				}
			}
		case len("x-forwarded-host"):
			if equalFold(k, "x-forwarded-host") {
				if f.nHost++; f.nHost == 1 {
					host = trimSpace(v)
				}
			}
		}
	}
	f.xffEnd = len(f.buf)
	f.buf = append(f.buf, proto...)
	f.protoEnd = len(f.buf)
	f.buf = append(f.buf, host...)
}

// setForwarded sets exactly one X-Forwarded-For, X-Real-IP,
// X-Forwarded-Proto and X-Forwarded-Host line from what readForwarded
// found, whatever lines of them the client sent: a backend, or a parser
// that trusts one hop (Express's trust proxy 1, Werkzeug's ProxyFix,
// Tomcat's RemoteIpValve), reading a second line would take the client's
// word for its address. The peer is appended to X-Forwarded-For, all of
// whose lines are joined in order first, as nginx's
// $proxy_add_x_forwarded_for does; X-Real-IP is the client (RealIP);
// X-Forwarded-Proto and X-Forwarded-Host are the proxy's own view unless
// a trusted peer sent them, and then its first line of each is kept.
func (e *headerEditor) setForwarded(ctx *fasthttp.RequestCtx) {
	h := &ctx.Request.Header
	f := &e.fwd
	client := ctx.RemoteAddr()
	peer, trusted := client, peerTrusted(ctx)
	if trusted {
		peer = connAddr(ctx)
	}
	e.buf = append(e.buf[:0], f.buf[:f.xffEnd]...)
	if len(e.buf) > 0 {
		e.buf = append(e.buf, ", "...)
	}
	peerAt := len(e.buf)
	e.buf = appendIP(e.buf, peer)
	xff := len(e.buf)
	if trusted {
		e.buf = appendIP(e.buf, client)
	} else {
		e.buf = append(e.buf, e.buf[peerAt:xff]...) // the client is the peer
	}
	proto, host := f.buf[f.xffEnd:f.protoEnd], f.buf[f.protoEnd:]
	if !trusted || len(proto) == 0 {
		proto = valueHTTP
		if ctx.IsTLS() {
			proto = valueHTTPS
		}
	}
	if !trusted || len(host) == 0 {
		host = h.Host()
	}
	setOne(h, hdrXForwardedFor, e.buf[:xff], f.nXFF)
	setOne(h, hdrXRealIP, e.buf[xff:], f.nRealIP)
	setOne(h, hdrXForwardedProto, proto, f.nProto)
	setOne(h, hdrXForwardedHost, host, f.nHost)
}

// setOne leaves exactly one line of the canonical name k, with value v;
// lines is how many there were.
func setOne(h *fasthttp.RequestHeader, k, v []byte, lines int) {
	if lines > 1 {
		h.DelBytes(k)
	}
	h.SetCanonical(k, v)
}

func appendIP(dst []byte, a net.Addr) []byte {
	var ip net.IP
	switch a := a.(type) {
	case *net.TCPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		// In-memory listeners (tests, benchmarks) have no IP.
		return append(dst, "0.0.0.0"...)
	}
	return addr.Unmap().AppendTo(dst)
}

// Request IDs are 32 hex digits like nginx's $request_id: a random
// per-process prefix and a counter, unique without a syscall per request.
var (
	requestIDPrefix [8]byte
	requestIDSeq    atomic.Uint64
)

func init() {
	if _, err := rand.Read(requestIDPrefix[:]); err != nil {
		panic("proxy: crypto/rand: " + err.Error())
	}
}

func appendRequestID(dst []byte) []byte {
	var raw [16]byte
	copy(raw[:8], requestIDPrefix[:])
	binary.BigEndian.PutUint64(raw[8:], requestIDSeq.Add(1))
	return hex.AppendEncode(dst, raw[:])
}
