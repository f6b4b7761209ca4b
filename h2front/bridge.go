package h2front

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"

	"github.com/valyala/fasthttp/fasthttputil"
)

type clientKey struct{}

// client is what the in-memory connections of one h2 connection report:
// the client's address (after the PROXY header, if any) and TLS state.
type client struct {
	addr  net.Addr
	local net.Addr
	state tls.ConnectionState
}

func newClient(c net.Conn) *client {
	cl := &client{addr: c.RemoteAddr(), local: c.LocalAddr()}
	if tc, ok := c.(*tls.Conn); ok {
		cl.state = tc.ConnectionState()
	}
	return cl
}

// innerConn is the fasthttp end of an in-memory connection. It passes for
// the client's TLS connection: RemoteAddr is the client's, and fasthttp's
// IsTLS (which looks for Handshake and ConnectionState) holds.
type innerConn struct {
	net.Conn
	c *client
}

func (c *innerConn) RemoteAddr() net.Addr                 { return c.c.addr }
func (c *innerConn) LocalAddr() net.Addr                  { return c.c.local }
func (c *innerConn) Handshake() error                     { return nil }
func (c *innerConn) ConnectionState() tls.ConnectionState { return c.c.state }

// bridge is the HTTP/2 server's handler: one stream, one in-memory
// HTTP/1.1 exchange with the fasthttp server.
type bridge struct{ f *Front }

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 8<<10) }}
	buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
)

func (b *bridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cl, _ := r.Context().Value(clientKey{}).(*client)
	if cl == nil {
		http.Error(w, "no client", http.StatusInternalServerError)
		return
	}
	if r.Method == http.MethodConnect {
		// An h2 CONNECT is a tunnel (RFC 9113 §8.5), and extended CONNECT
		// a WebSocket (RFC 8441): WebSockets stay on HTTP/1.1.
		w.Header().Set("Allow", "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS")
		http.Error(w, "CONNECT is not served over HTTP/2", http.StatusMethodNotAllowed)
		return
	}
	if !validRequest(r) {
		http.Error(w, "Bad Request", http.StatusBadRequest)
		return
	}
	pc := fasthttputil.NewPipeConns()
	conn := pc.Conn1()
	defer conn.Close()
	b.f.conns.push(&innerConn{Conn: pc.Conn2(), c: cl})

	if hasBody(r) {
		// The body is written while the answer is read: the request
		// path may answer (413) before it has all of it.
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			if writeRequest(conn, r) != nil {
				conn.Close()
			}
		}()
		defer func() {
			// The request body may not be read once ServeHTTP returns:
			// stop the writer (closing the body wakes a Read that
			// waits for the client) and wait for it.
			conn.Close()
			r.Body.Close()
			<-wrote
		}()
	} else if writeRequest(conn, r) != nil {
		http.Error(w, "Bad Gateway", http.StatusBadGateway)
		return
	}

	br := readers.Get().(*bufio.Reader)
	br.Reset(conn)
	defer func() { br.Reset(nil); readers.Put(br) }()
	var resp *http.Response
	var err error
	for {
		resp, err = http.ReadResponse(br, &http.Request{Method: r.Method})
		if err != nil {
			// The request path always answers; no answer means it was
			// shut down under us.
			http.Error(w, "Bad Gateway", http.StatusBadGateway)
			return
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		resp.Body.Close() // 1xx: informational, dropped as HTTP/1.1 clients' proxies may
	}
	defer resp.Body.Close()
	h := w.Header()
	for k, vv := range resp.Header {
		if hopByHop(k) {
			continue
		}
		h[k] = vv
	}
	if resp.ContentLength >= 0 && r.Method != http.MethodHead {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	w.WriteHeader(resp.StatusCode)
	relay(w, resp.Body, resp.ContentLength, br)
}

// relay copies a response body of length n (-1: unknown) to the client,
// flushing whenever nothing more has arrived yet: an event stream goes out
// event by event, a bulk download in large frames. The end of a body of
// known length is not flushed: the stream's end goes with it.
func relay(w http.ResponseWriter, body io.Reader, n int64, br *bufio.Reader) {
	fl, _ := w.(http.Flusher)
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp
	for {
		k, err := body.Read(buf)
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return
			}
			n -= int64(k)
			if fl != nil && br.Buffered() == 0 && n != 0 {
				fl.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// writeRequest writes r as an HTTP/1.1 request, its body streamed: with
// its Content-Length when the client gave one, else chunked.
func writeRequest(conn io.Writer, r *http.Request) error {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(conn)
	defer func() { bw.Reset(nil); writers.Put(bw) }()
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(r.RequestURI)
	bw.WriteString(" HTTP/1.1\r\n")
	if r.Host != "" {
		bw.WriteString("Host: ")
		bw.WriteString(r.Host)
		bw.WriteString("\r\n")
	}
	for k, vv := range r.Header {
		switch k {
		case "Host", "Content-Length", "Te", "Expect":
			// Host is :authority; the length is written below; TE:
			// trailers is h2's own; net/http answers 100-continue.
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	body := hasBody(r)
	switch {
	case !body:
		if r.ContentLength == 0 && r.Header.Get("Content-Length") != "" {
			bw.WriteString("Content-Length: 0\r\n")
		}
	case r.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(r.ContentLength, 10))
		bw.WriteString("\r\n")
	default:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil || !body {
		return err
	}
	var dst io.Writer = bw
	var cw io.WriteCloser
	if r.ContentLength < 0 {
		cw = httputil.NewChunkedWriter(bw)
		dst = cw
	}
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
			if werr := bw.Flush(); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if cw != nil {
		cw.Close()
		bw.WriteString("\r\n")
	}
	return bw.Flush()
}

// hopByHop reports the response fields HTTP/2 forbids (RFC 9113 §8.2.2).
func hopByHop(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// hasBody reports whether r has a body to relay (an h2 request whose
// HEADERS ended the stream has none).
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}
