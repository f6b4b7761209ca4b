package proxy

import (
	"testing"

	"github.com/valyala/fasthttp"
)

type nopHandler struct{}

func (nopHandler) ServeHTTP(*fasthttp.RequestCtx) {}

// benchTable is the six-route table of benchRouted over a handler that
// does nothing, so that what is timed is the matching alone.
func benchTable(last Route) *Router {
	h := nopHandler{}
	last.Handler = h
	return &Router{Default: h, Routes: []Route{
		{Host: "api.example.com", Path: "/v1/", Handler: h},
		{Host: "*.cdn.example.com", Handler: h},
		{Path: "/api/", Rewrite: true, RewritePrefix: "/", Handler: h},
		{Path: "/static/", Handler: h},
		{Host: "admin.example.com", Path: "/", Handler: h},
		last,
	}}
}

func runRouter(b *testing.B, rt *Router) {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/plain")
	ctx.Request.Header.SetHost("shop.example.com:8080")
	ctx.Path() // parse once, as the server has by the time a handler runs
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rt.ServeHTTP(&ctx)
	}
}

// BenchmarkRouterNoRoutes is the Router with an empty table: the floor.
func BenchmarkRouterNoRoutes(b *testing.B) { runRouter(b, &Router{Default: nopHandler{}}) }

// BenchmarkRouterSixRoutes walks six routes to the default, the work
// BenchmarkProxyRouted adds to BenchmarkProxyPlain.
func BenchmarkRouterSixRoutes(b *testing.B) { runRouter(b, benchTable(Route{Path: "/nothing/"})) }

// BenchmarkRouterSixRoutesRewrite matches the last route, which rewrites
// the path (to itself, so that every iteration does the same work).
func BenchmarkRouterSixRoutesRewrite(b *testing.B) {
	runRouter(b, benchTable(Route{Path: "/plain", Rewrite: true, RewritePrefix: "/plain"}))
}

// BenchmarkRouterFiftyRoutes walks fiftyRoutes (10 regexes) to the
// default: the work BenchmarkProxyRoutedFifty adds to
// BenchmarkProxyPlain, and it allocates nothing.
func BenchmarkRouterFiftyRoutes(b *testing.B) {
	rt := &Router{Default: nopHandler{}, Routes: fiftyRoutes(nopHandler{})}
	rt.BuildIndex()
	runRouter(b, rt)
}

// BenchmarkRouterFiftyRoutesNoIndex is BenchmarkRouterFiftyRoutes
// walking the whole table, without BuildIndex.
func BenchmarkRouterFiftyRoutesNoIndex(b *testing.B) {
	runRouter(b, &Router{Default: nopHandler{}, Routes: fiftyRoutes(nopHandler{})})
}
