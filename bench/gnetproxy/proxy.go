package main

import (
	"log"
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"
	"github.com/valyala/fasthttp"
)

// proxy is the gnet event handler. The event loops only frame and parse
// requests and write responses; the upstream round trip, which blocks,
// runs on a worker goroutine. A connection has at most one request in
// flight: pipelined requests wait in gnet's inbound buffer and are taken
// up when the previous response has been written, which keeps responses in
// request order.
type proxy struct {
	gnet.BuiltinEventEngine

	clients []*fasthttp.HostClient
	next    atomic.Uint32
	jobs    chan *exchange
	maxHdr  int
	maxBody int
}

// exchange is one connection's request and response; reused for every
// request of that connection.
type exchange struct {
	c     gnet.Conn
	p     *proxy
	busy  bool // a request is at a worker or its response is being written; event loop only
	close bool // close after this response
	req   fasthttp.Request
	resp  fasthttp.Response
	out   []byte
	parse *parser
}

var errorResponses = map[error][]byte{
	errHeaderTooLarge: []byte("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
	errBodyTooLarge:   []byte("HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
	errChunked:        []byte("HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
}

var badRequest = []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

// OnOpen gives the connection its exchange. Its parser is its own: a
// parser per event loop would do, but gnet does not tell the handler
// which loop it runs on.
func (p *proxy) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	c.SetContext(&exchange{c: c, p: p, parse: newParser(p.maxHdr, p.maxBody)})
	return nil, gnet.None
}

// OnTraffic takes the next request off the connection unless one is in
// flight; bytes it leaves unread stay in gnet's inbound buffer.
func (p *proxy) OnTraffic(c gnet.Conn) gnet.Action {
	x := c.Context().(*exchange)
	if x.busy {
		return gnet.None
	}
	return x.serveNext()
}

// serveNext frames one request from the inbound buffer and hands it to a
// worker. It runs on the connection's event loop.
func (x *exchange) serveNext() gnet.Action {
	buf, _ := x.c.Peek(-1)
	if len(buf) == 0 {
		return gnet.None
	}
	n, err := x.parse.next(buf, &x.req)
	if err != nil {
		resp, ok := errorResponses[err]
		if !ok {
			resp = badRequest
		}
		x.c.Discard(len(buf))
		x.busy = true // nothing more is read from this connection
		x.c.AsyncWrite(resp, func(c gnet.Conn, _ error) error { return c.Close() })
		return gnet.None
	}
	if n == 0 {
		return gnet.None
	}
	x.c.Discard(n)
	x.busy = true
	x.close = x.req.Header.ConnectionClose()
	x.req.Header.ResetConnectionClose() // the upstream connection is kept
	select {
	case x.p.jobs <- x:
	default:
		go x.forward() // every worker is busy: do not block the loop
	}
	return gnet.None
}

// work forwards the exchanges it is handed until jobs is closed.
func (p *proxy) work() {
	for x := range p.jobs {
		x.forward()
	}
}

// forward makes the upstream round trip and queues the response on the
// connection's event loop. It runs on a worker goroutine.
func (x *exchange) forward() {
	hc := x.p.clients[int(x.p.next.Add(1))%len(x.p.clients)]
	if err := hc.Do(&x.req, &x.resp); err != nil {
		x.resp.Reset()
		x.resp.SetStatusCode(fasthttp.StatusBadGateway)
		x.resp.SetBodyString("bad gateway")
	}
	// The body was read whole (chunked or not): send it with its length.
	x.resp.Header.SetContentLength(len(x.resp.Body()))
	x.resp.Header.SetConnectionClose()
	if !x.close {
		x.resp.Header.ResetConnectionClose()
	}
	x.out = x.resp.Header.AppendBytes(x.out[:0])
	x.out = append(x.out, x.resp.Body()...)
	if err := x.c.AsyncWrite(x.out, written); err != nil {
		log.Printf("gnetproxy: queueing a response: %v", err)
	}
}

// written runs on the event loop once the response has been written (or
// copied into gnet's outbound buffer): the exchange is free for the next
// pipelined request, if one has arrived.
func written(c gnet.Conn, err error) error {
	// A connection closed meanwhile has no context any more.
	x, ok := c.Context().(*exchange)
	if err != nil || !ok {
		return nil
	}
	if x.close {
		return c.Close()
	}
	x.busy = false
	if c.InboundBuffered() > 0 {
		if x.serveNext() == gnet.Close {
			return c.Close()
		}
	}
	return nil
}
