// Command thinproxy is the thinnest fasthttp reverse proxy: a
// fasthttp.Server whose handler passes the request to one HostClient per
// backend, round robin, and nothing else (no header cleaning, no
// X-Forwarded-*, no metrics). It is the floor of the fasthttp design in
// the benchmarks (bench/README.md, "Event-loop front end"), not a product.
//
//	thinproxy -listen 127.0.0.1:8081 -backend 127.0.0.1:9101 -backend 127.0.0.1:9102
package main

import (
	"flag"
	"log"
	"strings"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

type backends []string

func (b *backends) String() string     { return strings.Join(*b, ",") }
func (b *backends) Set(v string) error { *b = append(*b, v); return nil }

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "listen address")
	var addrs backends
	flag.Var(&addrs, "backend", "backend host:port (repeat for more)")
	flag.Parse()
	if len(addrs) == 0 {
		log.Fatal("thinproxy: at least one -backend")
	}
	clients := make([]*fasthttp.HostClient, len(addrs))
	for i, a := range addrs {
		clients[i] = &fasthttp.HostClient{Addr: a}
	}
	var next atomic.Uint32
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			hc := clients[int(next.Add(1))%len(clients)]
			if err := hc.Do(&ctx.Request, &ctx.Response); err != nil {
				ctx.Error("bad gateway", fasthttp.StatusBadGateway)
			}
		},
		NoDefaultServerHeader: true,
	}
	log.Fatal(srv.ListenAndServe(*listen))
}
