package proxy

import (
	"bytes"
	"net"
	"net/netip"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// RealIP decides the client address of a request, which X-Real-IP and the
// access log carry, nginx's realip module with real_ip_recursive on. The
// peer is the connection's address: the TCP peer, or the source a PROXY
// header gave (which the listener accepts only from a trusted peer). From
// a peer in Trusted (another proxy, a load balancer) the client is read
// from X-Forwarded-For, all of its lines joined in order: walking from the
// right, trusted addresses are skipped and the first untrusted one is the
// client; if every one is trusted, the leftmost. An entry that is not an
// address (nor address:port) ends the walk, as in nginx: the client is then
// the last address reached, the peer or a trusted proxy, never a value
// only the client wrote. Such a peer's X-Forwarded-For lines are passed on
// (with the peer appended), and so are the first X-Forwarded-Proto and
// X-Forwarded-Host lines it sent. From any other peer the client is the
// peer, and the X-Forwarded-For it sent is dropped.
//
// A nil *RealIP trusts no peer's headers and passes X-Forwarded-For on
// with the peer appended, as nginx's $proxy_add_x_forwarded_for does
// without the realip module. Safe for concurrent use by multiple
// goroutines; set Trusted before the first request.
type RealIP struct {
	Trusted []netip.Prefix
}

// Trusts reports whether a is in one of the trusted ranges.
func (r *RealIP) Trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// trustedPeerKey marks, as a user value of the request, that the peer is
// trusted: setForwarded then keeps its forwarding headers. A zero-size key
// and a bool value go into the interface without allocating.
type trustedPeerKey struct{}

// apply settles the request's client address before any handler reads it:
// ctx.RemoteAddr is the client from here on (the access log's, the
// redirect's), and the peer stays what the connection says.
func (r *RealIP) apply(ctx *fasthttp.RequestCtx) {
	peerAddr := connAddr(ctx)
	// fasthttp keeps a RemoteAddr that was set in the context for the
	// rest of the connection: one that is not the connection's own was
	// set by an earlier request's setClient. Start from the peer, and
	// keep that address to reuse.
	var reuse *net.TCPAddr
	if ta, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		if pa, _ := peerAddr.(*net.TCPAddr); ta != pa {
			reuse = ta
			ctx.SetRemoteAddr(nil)
		}
	}
	if r == nil {
		return
	}
	h := &ctx.Request.Header
	peer, ok := addrOf(peerAddr)
	if !ok || !r.Trusts(peer) {
		h.Del("X-Forwarded-For")
		return
	}
	ctx.SetUserValue(trustedPeerKey{}, true)
	s := scratchPool.Get().(*scratch)
	s.b = appendLines(s.b[:0], h, "x-forwarded-for")
	client := r.walk(s.b, peer)
	scratchPool.Put(s)
	if client != peer {
		setClient(ctx, client, reuse)
	}
}

// peerTrusted reports whether apply found the request's peer trusted.
func peerTrusted(ctx *fasthttp.RequestCtx) bool {
	return ctx.UserValue(trustedPeerKey{}) != nil
}

// walk returns the client of a trusted peer's X-Forwarded-For xff.
func (r *RealIP) walk(xff []byte, peer netip.Addr) netip.Addr {
	client := peer
	end := len(xff)
	for {
		for end > 0 && isListSep(xff[end-1]) {
			end--
		}
		if end == 0 {
			return client
		}
		start := end
		for start > 0 && !isListSep(xff[start-1]) {
			start--
		}
		a, ok := parseForwardedAddr(xff[start:end])
		if !ok {
			return client
		}
		client = a
		if !r.Trusts(a) {
			return client
		}
		end = start
	}
}

// isListSep reports whether c separates X-Forwarded-For entries: commas
// and blanks, as nginx reads the list (so empty entries are skipped).
func isListSep(c byte) bool { return c == ',' || c == ' ' || c == '\t' }

// parseForwardedAddr parses one X-Forwarded-For entry: an IPv4 or IPv6
// address, optionally with a port as nginx accepts it ("192.0.2.1:80",
// "[2001:db8::1]:80"), the forms netip.ParseAddrPort reads. Zones are
// refused: they name an interface of another host.
func parseForwardedAddr(b []byte) (netip.Addr, bool) {
	if len(b) > 2 && b[0] == '[' {
		end := bytes.IndexByte(b, ']')
		if end < 0 || !isPort(b[end+1:]) || bytes.IndexByte(b[1:end], ':') < 0 {
			return netip.Addr{}, false
		}
		return parseAddr(b[1:end])
	}
	if i := bytes.IndexByte(b, ':'); i >= 0 && bytes.IndexByte(b[i+1:], ':') < 0 {
		// One colon: IPv4 with a port; IPv6 has at least two.
		if !isPort(b[i:]) {
			return netip.Addr{}, false
		}
		a, ok := parseAddr(b[:i])
		return a, ok && a.Is4()
	}
	return parseAddr(b)
}

// isPort reports whether b is ":" and a decimal port number.
func isPort(b []byte) bool {
	if len(b) < 2 || b[0] != ':' {
		return false
	}
	n := 0
	for _, c := range b[1:] {
		if c < '0' || c > '9' {
			return false
		}
		if n = n*10 + int(c-'0'); n > 65535 {
			return false
		}
	}
	return true
}

// parseAddr is netip.ParseAddr on bytes without a copy: the conversion
// would cost an allocation on every request from a trusted peer (ParseAddr
// lets its argument escape into its errors). The string does not outlive
// the call: only characters of plain addresses reach ParseAddr, so there
// is no zone, the one part of the input an Addr keeps, and its error,
// which holds the input, is dropped here.
func parseAddr(b []byte) (netip.Addr, bool) {
	if len(b) == 0 || len(b) > len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255") {
		return netip.Addr{}, false
	}
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F', c == '.', c == ':':
		default:
			return netip.Addr{}, false
		}
	}
	a, err := netip.ParseAddr(unsafe.String(&b[0], len(b)))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// appendLines appends the values of every header field named lowerName,
// in order, joined as joinLine joins them.
func appendLines(dst []byte, h *fasthttp.RequestHeader, lowerName string) []byte {
	start := len(dst)
	for k, v := range h.All() {
		if equalFold(k, lowerName) {
			dst = joinLine(dst, start, v)
		}
	}
	return dst
}

// joinLine appends one line's value v to the list dst[start:]: trimmed,
// after ", " unless it is the first, and not at all if empty. This is how
// several lines of a list header are one (RFC 9110 section 5.3).
func joinLine(dst []byte, start int, v []byte) []byte {
	if v = trimSpace(v); len(v) == 0 {
		return dst
	}
	if len(dst) > start {
		dst = append(dst, ", "...)
	}
	return append(dst, v...)
}

// setClient makes client the request's RemoteAddr. fasthttp keeps that
// address in the context until the connection ends, so a fresh
// *net.TCPAddr would cost an allocation per request; reuse, the address an
// earlier request of this connection was given here, if not nil, is
// overwritten instead. Requests on a connection run one after another,
// and nothing keeps the address past its request: the access log reads it
// before the request ends. This package is the only caller of
// SetRemoteAddr, which is how apply can tell the address is one of
// setClient's.
func setClient(ctx *fasthttp.RequestCtx, client netip.Addr, reuse *net.TCPAddr) {
	ta := reuse
	if ta == nil || cap(ta.IP) < net.IPv6len {
		ta = &net.TCPAddr{IP: make(net.IP, 0, net.IPv6len)}
	}
	if client.Is4() {
		a := client.As4()
		ta.IP = append(ta.IP[:0], a[:]...)
	} else {
		a := client.As16()
		ta.IP = append(ta.IP[:0], a[:]...)
	}
	ta.Port, ta.Zone = 0, ""
	ctx.SetRemoteAddr(ta)
}

// connAddr returns the connection's own remote address: the TCP peer, or
// the source of a PROXY header the listener accepted.
func connAddr(ctx *fasthttp.RequestCtx) net.Addr {
	if c := ctx.Conn(); c != nil {
		if a := c.RemoteAddr(); a != nil {
			return a
		}
	}
	return ctx.RemoteAddr()
}

func addrOf(a net.Addr) (netip.Addr, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	return ip.Unmap(), ok
}
