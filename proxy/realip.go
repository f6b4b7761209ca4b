package proxy

import (
	"bytes"
	"net"
	"net/netip"

	"github.com/valyala/fasthttp"
)

// RealIP decides the client address of a request, which X-Forwarded-For,
// X-Real-IP and the access log carry. From a peer in Trusted (another
// proxy, a load balancer) it is the last X-Forwarded-For address that is
// not itself trusted, and the list up to it is kept; from any other peer
// the X-Forwarded-For and X-Real-IP it sent are dropped and its own
// address is the client's. Safe for concurrent use by multiple goroutines.
type RealIP struct {
	Trusted []netip.Prefix
}

func (r *RealIP) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// apply sets the request's client address and trims its forwarding
// headers so that the proxy appends the client once.
func (r *RealIP) apply(ctx *fasthttp.RequestCtx) {
	h := &ctx.Request.Header
	peer, ok := addrOf(ctx.RemoteAddr())
	if !ok || !r.trusted(peer) {
		h.Del("X-Forwarded-For")
		h.Del("X-Real-Ip")
		return
	}
	xff := h.Peek("X-Forwarded-For")
	client, keep := r.lastUntrusted(xff)
	if !client.IsValid() {
		h.Del("X-Forwarded-For")
		h.Del("X-Real-Ip")
		return
	}
	s := scratchPool.Get().(*scratch)
	s.b = append(s.b[:0], xff[:keep]...)
	if len(s.b) > 0 {
		h.SetBytesV("X-Forwarded-For", s.b)
	} else {
		h.Del("X-Forwarded-For")
	}
	scratchPool.Put(s)
	h.Del("X-Real-Ip")
	// One small allocation per request from a trusted peer: fasthttp
	// keeps the address in the context past this handler.
	ctx.SetRemoteAddr(&net.TCPAddr{IP: client.AsSlice()})
}

// lastUntrusted walks X-Forwarded-For from the right past trusted proxies
// and returns the client and the length of the list before it. An entry
// that is not an address ends the walk.
func (r *RealIP) lastUntrusted(xff []byte) (client netip.Addr, keep int) {
	end := len(xff)
	for end > 0 {
		i := bytes.LastIndexByte(xff[:end], ',') // -1: the first entry
		a, err := netip.ParseAddr(string(trimSpace(xff[i+1 : end])))
		if err != nil {
			break
		}
		client, keep = a.Unmap(), max(i, 0)
		if i < 0 || !r.trusted(client) {
			break
		}
		end = i
	}
	return client, keep
}

func addrOf(a net.Addr) (netip.Addr, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	return ip.Unmap(), ok
}
