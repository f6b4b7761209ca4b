package proxy

import (
	"bufio"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"sessionproxy/balancer"
)

// benchForwarded runs the Router with ri in front of the in-memory
// backend, listening on loopback TCP so that the peer has an address
// real_ip_from can trust, and sends requests with the header lines hdr
// (name, value, ...) over keep-alive connections.
func benchForwarded(b *testing.B, ri *RealIP, hdr ...string) {
	backendLn := fasthttputil.NewInmemoryListener()
	serveBench(b, backendLn)
	be, _ := NewBackend("http://backend:80", 1, false)
	pool, _ := balancer.NewPool("round_robin", []*balancer.Backend{be}, nil)
	p := &Proxy{Pool: pool}
	p.once.Do(p.init)
	p.clients[0].Dial = func(string) (net.Conn, error) { return backendLn.Dial() }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer((&Router{Default: p, RealIP: ri}).ServeHTTP, ServerOptions{})
	go srv.Serve(ln)
	b.Cleanup(func() { ln.Close() })
	c := &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: 1024}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://proxy/plain")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Add(hdr[i], hdr[i+1])
		}
		for pb.Next() {
			if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Errorf("%v %d %s", err, resp.StatusCode(), resp.Body())
				return
			}
		}
	})
}

// BenchmarkProxyForwardedDuplicates is a client's duplicate forwarding
// lines without real_ip_from.
func BenchmarkProxyForwardedDuplicates(b *testing.B) {
	benchForwarded(b, nil, "X-Forwarded-For", "198.51.100.1, 198.51.100.2", "X-Real-IP", "6.6.6.6",
		"X-Forwarded-For", "6.6.6.6", "X-Forwarded-Proto", "https", "X-Forwarded-Proto", "http")
}

// BenchmarkProxyForwardedTrusted is the request HAProxy's option
// forwardfor passes on, from a peer in real_ip_from: the client is
// resolved from two X-Forwarded-For lines.
func BenchmarkProxyForwardedTrusted(b *testing.B) {
	benchForwarded(b, &RealIP{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		"X-Forwarded-For", "6.6.6.6", "X-Forwarded-Proto", "https", "X-Forwarded-For", "203.0.113.7")
}

// benchPrepare measures the header work alone, without the network that
// dominates BenchmarkProxy*: the request is parsed anew each time (that
// cost is the same with any forwarding code), then the Router's RealIP
// and the Proxy's prepare run on it, on one context as on one keep-alive
// connection.
func benchPrepare(b *testing.B, ri *RealIP, raw string) {
	p := &Proxy{}
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	st := new(requestState)
	rd := strings.NewReader(raw)
	br := bufio.NewReader(rd)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ctx.Request.Reset()
		rd.Reset(raw)
		br.Reset(rd)
		if err := ctx.Request.Read(br); err != nil {
			b.Fatal(err)
		}
		if ri != nil {
			ri.apply(&ctx)
		}
		if perr := p.prepare(&ctx, st, time.Time{}); perr != nil {
			b.Fatal(perr)
		}
	}
}

func BenchmarkProxyPrepareForwardingPlain(b *testing.B) {
	benchPrepare(b, nil, "GET /plain HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
}

func BenchmarkProxyPrepareForwardingDuplicates(b *testing.B) {
	benchPrepare(b, nil, "GET /plain HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 198.51.100.1, 198.51.100.2\r\n"+
		"X-Real-IP: 6.6.6.6\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Proto: http\r\n\r\n")
}

func BenchmarkProxyPrepareForwardingTrusted(b *testing.B) {
	benchPrepare(b, &RealIP{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		"GET /plain HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n"+
			"X-Forwarded-For: 203.0.113.7\r\n\r\n")
}
