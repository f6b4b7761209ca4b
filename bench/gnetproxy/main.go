// Command gnetproxy is a prototype of an event-loop front end for the
// plain proxy path: gnet v2 event loops (one per core, epoll, no goroutine
// per connection) accept client connections and parse requests with
// fasthttp's header parser; one fasthttp HostClient per backend, round
// robin, makes the upstream round trip on a worker goroutine, and the
// response goes back through gnet's AsyncWrite. It relays GET-style
// requests (Content-Length bodies at most) and nothing else; see
// bench/README.md, "Event-loop front end", for what it leaves out and how
// it compares. It is a measurement, not a product.
//
//	gnetproxy -listen 127.0.0.1:8082 -backend 127.0.0.1:9101 -backend 127.0.0.1:9102
package main

import (
	"flag"
	"log"
	"strings"

	"github.com/panjf2000/gnet/v2"
	"github.com/valyala/fasthttp"
)

type backends []string

func (b *backends) String() string     { return strings.Join(*b, ",") }
func (b *backends) Set(v string) error { *b = append(*b, v); return nil }

func main() {
	listen := flag.String("listen", "127.0.0.1:8082", "listen address")
	workers := flag.Int("workers", 256, "goroutines making upstream round trips (more are started when all are busy)")
	var addrs backends
	flag.Var(&addrs, "backend", "backend host:port (repeat for more)")
	flag.Parse()
	if len(addrs) == 0 {
		log.Fatal("gnetproxy: at least one -backend")
	}
	log.Fatal(run(newProxy(addrs, *workers), *listen))
}

// newProxy is a proxy to the backends at addrs (host:port) with workers
// goroutines started.
func newProxy(addrs []string, workers int) *proxy {
	p := &proxy{jobs: make(chan *exchange, workers), maxHdr: 8 << 10, maxBody: 1 << 20}
	for _, a := range addrs {
		p.clients = append(p.clients, &fasthttp.HostClient{Addr: a})
	}
	for range workers {
		go p.work()
	}
	return p
}

// run serves h on addr with an event loop per core until the engine stops.
func run(h gnet.EventHandler, addr string) error {
	return gnet.Run(h, "tcp://"+addr, gnet.WithMulticore(true), gnet.WithReuseAddr(true), gnet.WithTCPNoDelay(gnet.TCPNoDelay))
}
