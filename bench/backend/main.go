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
//	/kib?n=N   answers N KiB (the write-buffer lever of issue #30)
//	other      plain answer
//
// On /read and /write, ?pad=N also sets an attribute of N bytes when the
// session is new, so that the benchmarks can choose the session's size.
//
// With -classic it keeps the sessions itself in memcached instead of
// reading them from the proxy's headers (classic.go): the "classic stack"
// of the benchmarks.
package main

import (
	"bytes"
	"flag"
	"log"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9101", "listen address")
	classic := flag.Bool("classic", false, "keep sessions in memcached, as a backend behind a plain proxy does (classic.go)")
	nodes := flag.String("memcached", "", "with -classic: the memcached nodes, host:port,host:port")
	flag.Parse()
	handler := proxied()
	if *classic {
		c, err := newClassic(strings.Split(*nodes, ","))
		if err != nil {
			log.Fatal(err)
		}
		handler = c.handle
	}
	srv := &fasthttp.Server{
		Handler:               handler,
		NoDefaultServerHeader: true,
		// A 32 KiB session comes in request headers.
		ReadBufferSize: 128 << 10,
	}
	log.Fatal(srv.ListenAndServe(*listen))
}

var body = []byte(`{"ok":true,"message":"hello from the benchmark backend"}` + "\n")

// pad returns the ?pad=N filler, or nil.
func pad(ctx *fasthttp.RequestCtx) []byte {
	n, err := strconv.Atoi(string(ctx.QueryArgs().Peek("pad")))
	if err != nil || n <= 0 {
		return nil
	}
	return padBytes(n)
}

// padBytes is n bytes of filler, cached for the sizes asked.
func padBytes(n int) []byte {
	if p := padCache.Load(); p != nil && len(*p) == n {
		return *p
	}
	p := bytes.Repeat([]byte{'x'}, n)
	padCache.Store(&p)
	return p
}

var padCache atomic.Pointer[[]byte]

// proxied is the handler behind sessionproxy: the session comes in
// X-Session-* request headers and changes go back in response headers.
func proxied() fasthttp.RequestHandler {
	var n atomic.Uint64
	return func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
		isNew := len(ctx.Request.Header.Peek("X-Session-New")) > 0
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
			if p := pad(ctx); p != nil && isNew {
				ctx.Response.Header.SetBytesV("X-Session-Set-Pad", p)
			}
		case "/read":
			if isNew {
				ctx.Response.Header.Set("X-Session-Set-User", "bench")
				if p := pad(ctx); p != nil {
					ctx.Response.Header.SetBytesV("X-Session-Set-Pad", p)
				}
			}
		case "/peek":
			ctx.SetContentType("text/plain")
			ctx.SetBody(ctx.Request.Header.Peek("X-Session-Attr-Last"))
		case "/kib":
			ctx.SetContentType("application/octet-stream")
			ctx.SetBody(padBytes(ctx.QueryArgs().GetUintOrZero("n") << 10))
		case "/mib":
			// Above the proxy's 64 KiB whole-body limit: relayed as a stream.
			ctx.SetContentType("application/octet-stream")
			ctx.SetBody(mib)
		}
	}
}

// mib is the 1 MiB body of /mib.
var mib = bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
