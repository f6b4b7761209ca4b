package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"sessionproxy/balancer"
	"sessionproxy/proxy/rules"
)

// benchRouted is benchProxy behind a Router with a table of the size a
// real site has (hosts, prefixes, a rewrite) that the benchmark's request
// walks to the end before reaching the default upstream; with
// lastRouteMatches the last route matches instead and rewrites the path.
func benchRouted(b *testing.B, lastRouteMatches bool) *fasthttp.HostClient {
	p := benchUpstream(b)
	last := Route{Path: "/nothing/", Handler: p}
	if lastRouteMatches {
		last = Route{Path: "/plain", Rewrite: true, RewritePrefix: "/plain", Handler: p}
	}
	return benchRouter(b, p, []Route{
		{Host: "api.example.com", Path: "/v1/", Handler: p},
		{Host: "*.cdn.example.com", Handler: p},
		{Path: "/api/", Rewrite: true, RewritePrefix: "/", Handler: p},
		{Path: "/static/", Handler: p},
		{Host: "admin.example.com", Path: "/", Handler: p},
		last,
	})
}

// benchUpstream is benchProxy's Proxy, for a route table over it.
func benchUpstream(b *testing.B) *Proxy {
	backendLn := fasthttputil.NewInmemoryListener()
	serveBench(b, backendLn)
	be, _ := NewBackend("http://backend:80", 1, false)
	pool, _ := balancer.NewPool("round_robin", []*balancer.Backend{be}, nil)
	p := &Proxy{Pool: pool}
	p.once.Do(p.init)
	p.clients[0].Dial = func(string) (net.Conn, error) { return backendLn.Dial() }
	return p
}

// benchRouter serves routes over p as the default upstream. Each route
// counts its requests, as the configuration's routes do.
func benchRouter(b *testing.B, p *Proxy, routes []Route) *fasthttp.HostClient {
	for i := range routes {
		routes[i].Metrics = p.Metrics.Route(routes[i].Host+routes[i].Path, p.upstream())
	}
	rt := &Router{Default: p, Upstreams: []*Proxy{p}, Routes: routes}
	rt.BuildIndex()
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

// fiftyRoutes is a large site's table (section 15): 40 host, prefix and
// exact routes and 10 regexes, none of which matches a GET /plain for
// shop.example.com, so that the request walks all 50 to the default.
func fiftyRoutes(h Handler) []Route {
	var routes []Route
	for i := range 20 {
		routes = append(routes,
			Route{Path: fmt.Sprintf("/section%d/", i), Handler: h},
			Route{Host: fmt.Sprintf("site%d.example.com", i), Path: "/", Handler: h})
	}
	for i := range 10 {
		routes[i*4+1] = Route{Path: fmt.Sprintf("/exact%d", i), Exact: true, Handler: h}
	}
	for _, re := range []string{
		`\.(php|phar)$`, `^/api/[1-9]\d*/`, `(?i)\.(jpg|jpeg|png|gif|ico)$`, `^/(admin|wp-admin)/`,
		`/\.git`, `^/u/[^/]+/avatar`, `\.env$`, `(?i)^/health`, `^/static/.*\.map$`, `^/v[0-9]+/`,
	} {
		routes = append(routes, Route{Regex: mustRegex(re), Handler: h})
	}
	return routes
}

// BenchmarkProxyRoutedFifty is BenchmarkProxyPlain through fiftyRoutes:
// the cost of matching 50 routes with 10 regexes on a proxied request
// (bench/README.md, "Route matching").
func BenchmarkProxyRoutedFifty(b *testing.B) {
	p := benchUpstream(b)
	runBench(b, benchRouter(b, p, fiftyRoutes(p)), "/plain", false)
}

// BenchmarkProxyRoutedRules matches a route with guards (deny, a rate
// limit never reached) and header rules: the request path of a route
// of section 15 allocates nothing either.
func BenchmarkProxyRoutedRules(b *testing.B) {
	p := benchUpstream(b)
	rate, _ := rules.ParseRate("1000000r/s")
	route := Route{Path: "/plain", Handler: p,
		Guards: []Guard{
			&ACL{Deny: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			&RateLimit{Limiter: rules.NewLimiter(rate, 1_000_000, 0)},
		},
		Headers: &HeaderRules{
			Request:  HeaderEdit{Set: []Header{{"X-From-Proxy", "yes"}}, Remove: []string{"X-Drop"}},
			Response: HeaderEdit{Set: []Header{{"Strict-Transport-Security", "max-age=63072000"}}, Remove: []string{"X-Powered-By"}},
		},
	}
	runBench(b, benchRouter(b, p, []Route{route}), "/plain", false)
}

func mustRegex(expr string) *rules.PathRegex {
	re, err := rules.CompilePathRegex(expr, false)
	if err != nil {
		panic(err)
	}
	return re
}

// BenchmarkProxyRoutedFiftyInterleaved measures, in one run and on one
// connection each, the plain proxied request (BenchmarkProxyPlain's
// Proxy without a Router), the same through a Router with no routes, and
// through fiftyRoutes, taking turns in blocks of 20 requests so that the
// load of a shared machine falls on the three alike; each one's ns/op is
// the median of its blocks, which a block preempted midway does not
// move. It reports what the fifty routes add as a share of the plain
// request (bench/README.md, "Route matching").
func BenchmarkProxyRoutedFiftyInterleaved(b *testing.B) {
	p := benchUpstream(b)
	clients := []*fasthttp.HostClient{
		benchProxy(b, nil, false),
		benchRouter(b, p, nil),
		benchRouter(b, p, fiftyRoutes(p)),
	}
	var blocks [3][]time.Duration
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://proxy/plain")
	b.ReportAllocs()
	b.ResetTimer()
	const block = 20
	for done := 0; done < max(b.N, 3*block); done += block { // at least a block of each
		k := (done / block) % len(clients)
		start := time.Now()
		for range block {
			if err := clients[k].Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Fatalf("%v %d", err, resp.StatusCode())
			}
		}
		blocks[k] = append(blocks[k], time.Since(start)/block)
	}
	median := func(k int) float64 {
		d := slices.Clone(blocks[k])
		slices.Sort(d)
		return float64(d[len(d)/2].Nanoseconds())
	}
	plain, router0, router50 := median(0), median(1), median(2)
	b.ReportMetric(plain, "plain-ns/op")
	b.ReportMetric(router0, "router0-ns/op")
	b.ReportMetric(router50, "router50-ns/op")
	b.ReportMetric(100*(router50-router0)/plain, "match50-%")
	b.ReportMetric(100*(router50-plain)/plain, "routed50-%")
}
