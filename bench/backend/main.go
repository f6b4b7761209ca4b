// Command backend is the fast backend of the benchmarks: a fasthttp server
// that answers in microseconds, so that the proxy is what is measured.
//
//	/write     sets a session attribute on every request
//	/write?v=X sets the attribute "last" to X instead, and answers with the
//	           value "last" held before (empty if none): the fault runner's
//	           clients check with it that their session kept every write
//	/read      sets one only when the session is new (X-Session-New), so
//	           later requests of that session only read it
//	/peek      sets nothing and answers with the value of "last"
//	other      plain answer
package main

import (
	"flag"
	"log"
	"strconv"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9101", "listen address")
	flag.Parse()
	body := []byte(`{"ok":true,"message":"hello from the benchmark backend"}` + "\n")
	var n atomic.Uint64
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("application/json")
			ctx.SetBody(body)
			switch string(ctx.Path()) {
			case "/write":
				if v := ctx.QueryArgs().Peek("v"); len(v) > 0 {
					ctx.Response.Header.SetBytesV("X-Session-Set-Last", v)
					ctx.SetContentType("text/plain")
					ctx.SetBody(ctx.Request.Header.Peek("X-Session-Attr-Last"))
					return
				}
				var buf [20]byte
				ctx.Response.Header.SetBytesV("X-Session-Set-Counter", strconv.AppendUint(buf[:0], n.Add(1), 10))
			case "/read":
				if len(ctx.Request.Header.Peek("X-Session-New")) > 0 {
					ctx.Response.Header.Set("X-Session-Set-User", "bench")
				}
			case "/peek":
				ctx.SetContentType("text/plain")
				ctx.SetBody(ctx.Request.Header.Peek("X-Session-Attr-Last"))
			}
		},
		NoDefaultServerHeader: true,
	}
	log.Fatal(srv.ListenAndServe(*listen))
}
