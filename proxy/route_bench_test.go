package proxy

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"sessionproxy/balancer"
)

// benchRouted is benchProxy behind a Router with a table of the size a
// real site has (hosts, prefixes, a rewrite) that the benchmark's request
// walks to the end before reaching the default upstream; with
// lastRouteMatches the last route matches instead and rewrites the path.
func benchRouted(b *testing.B, lastRouteMatches bool) *fasthttp.HostClient {
	backendLn := fasthttputil.NewInmemoryListener()
	serveBench(b, backendLn)
	be, _ := NewBackend("http://backend:80", 1, false)
	pool, _ := balancer.NewPool("round_robin", []*balancer.Backend{be}, nil)
	p := &Proxy{Pool: pool}
	p.once.Do(p.init)
	p.clients[0].Dial = func(string) (net.Conn, error) { return backendLn.Dial() }
	last := Route{Path: "/nothing/", Handler: p}
	if lastRouteMatches {
		last = Route{Path: "/plain", Rewrite: true, RewritePrefix: "/plain", Handler: p}
	}
	rt := &Router{Default: p, Upstreams: []*Proxy{p}, Routes: []Route{
		{Host: "api.example.com", Path: "/v1/", Handler: p},
		{Host: "*.cdn.example.com", Handler: p},
		{Path: "/api/", Rewrite: true, RewritePrefix: "/", Handler: p},
		{Path: "/static/", Handler: p},
		{Host: "admin.example.com", Path: "/", Handler: p},
		last,
	}}
	proxyLn := fasthttputil.NewInmemoryListener()
	srv := NewServer(rt.ServeHTTP, ServerOptions{})
	go srv.Serve(proxyLn)
	b.Cleanup(func() { proxyLn.Close() })
	return &fasthttp.HostClient{Addr: "proxy", Dial: func(string) (net.Conn, error) { return proxyLn.Dial() }, MaxConns: 1024}
}

// BenchmarkProxyRouted is BenchmarkProxyPlain through a six-route table
// that matches nothing: the cost of route matching on the plain path.
func BenchmarkProxyRouted(b *testing.B) {
	runBench(b, benchRouted(b, false), "/plain", false)
}

// BenchmarkProxyRoutedRewrite matches the last of six routes, which
// rewrites the path.
func BenchmarkProxyRoutedRewrite(b *testing.B) {
	runBench(b, benchRouted(b, true), "/plain", false)
}
