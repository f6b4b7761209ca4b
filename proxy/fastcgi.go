package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"sessionproxy/balancer"
	"sessionproxy/fastcgi"
)

// FastCGI makes a Proxy's backends FastCGI servers (PHP-FPM) and says
// which script each request runs (CONTRACT.md section 13): a path with
// ".php" ending a segment runs that script under Root, with the rest of
// the path as PATH_INFO; any other path runs Root/Index.
type FastCGI struct {
	Root  string // the scripts' directory as the FastCGI server sees it
	Index string // the front controller under Root (default index.php)

	// WholePath makes the path itself the script, as nginx's fastcgi_pass
	// without fastcgi_split_path_info: a path whose last segment ends in
	// ".php" runs that script, a path ending in "/" runs Index in that
	// directory, and any other path is 404. No PATH_INFO: /a.php/rest
	// names no script, so a rule that refuses /a.php by a pattern
	// ending in "\.php$" cannot be walked around by adding "/rest".
	WholePath bool

	// IndexOnly runs Root/Index for every path, as nginx's try_files
	// ending in "/index.php?$query_string" does: the Proxy a static
	// route's try_files falls back to (FrontController). REQUEST_URI
	// stays the client's, for the front controller to route on.
	IndexOnly bool

	// KeepConn keeps connections open between requests (FastCGI's
	// KEEP_CONN, nginx's fastcgi_keep_conn on). Off by default, as in
	// nginx: PHP-FPM pins a worker to each kept connection until the
	// proxy closes it, so with more connections than pm.max_children the
	// extra requests wait in its listen queue behind idle connections.
	KeepConn bool
}

// FrontController is the Proxy a static route's try_files falls back to
// when p's backends are FastCGI servers: p's pool, sessions and settings,
// running FastCGI.Index whatever the path (FastCGI.IndexOnly), as nginx's
// "try_files $uri $uri/ /index.php?$query_string" does. A path that is no
// file is the front controller's to route, never a script's name:
// /admin/x.php/rest does not run admin/x.php past a rule nginx matched
// on the path. Any other p is returned as it is.
func FrontController(p *Proxy) *Proxy {
	if p == nil || p.FastCGI == nil {
		return p
	}
	f := *p.FastCGI
	f.IndexOnly, f.WholePath = true, false
	return &Proxy{Settings: p.Settings, Pool: p.Pool, Sessions: p.Sessions, Upstream: p.Upstream, ClientsFrom: p, FastCGI: &f}
}

// fastcgiTransport is a FastCGI backend's fasthttp.RoundTripper: it
// turns the request the proxy prepared (cleaned, forwarded, with the
// session's headers) into CGI parameters and STDIN records, and the
// script's STDOUT into a response whose body is relayed by the HTTP
// transport's upstreamBody. HostClient keeps the pool of connections, as
// for HTTP backends: one request per connection at a time, closed after
// it unless FastCGI.KeepConn.
type fastcgiTransport[C clientConn] struct {
	*transport[C] // timeouts, the pool's hooks, the pooled bodies
	fcgi          FastCGI
	maxHeader     int
	// localRoot is whether Root is a directory here: the proxy then
	// answers 404 itself for a script that does not exist, as nginx's
	// try_files does; else the FastCGI server does.
	localRoot bool
	answers   sync.Pool // of *fcgiAnswer
}

// newFastCGITransport makes the transport of a FastCGI backend's
// HostClient.
func newFastCGITransport[C clientConn](t *transport[C], f FastCGI, maxHeader int) *fastcgiTransport[C] {
	if f.Index == "" {
		f.Index = "index.php"
	}
	st, err := os.Stat(f.Root)
	return &fastcgiTransport[C]{transport: t, fcgi: f, maxHeader: maxHeader, localRoot: err == nil && st.IsDir()}
}

// fcgiAnswer is the per-request state of one FastCGI exchange, pooled.
type fcgiAnswer struct {
	conn   *bufio.Reader // HostClient's reader of the connection
	fr     fastcgi.Reader
	hr     *bufio.Reader // the script's output over fr: CGI head, then body
	params []byte
	path   []byte // the normalised path
	copy   []byte // the request body's copy buffer
	logger func(msg string, args ...any)
	stderr func([]byte)
	url    string
}

// logStderr logs what the script wrote to STDERR: PHP's warnings and
// errors. It never reaches the client.
func (a *fcgiAnswer) logStderr(b []byte) {
	if len(b) > 2048 {
		b = b[:2048]
	}
	a.logger("fastcgi stderr", "backend", a.url, "text", string(bytes.TrimSpace(b)))
}

// hdrFastCGIConn carries what nginx's fastcgi_params take from the
// client's connection rather than from the request, from Proxy.prepare to
// the FastCGI transport (a RoundTripper is given the request alone):
// "SERVER_ADDR SERVER_PORT REMOTE_PORT", the address and port of the
// listener that accepted the connection and the client's port (empty
// when the client's address came from X-Forwarded-For). A client's own
// line of it is deleted first, and it never becomes an HTTP_* parameter:
// PHP apps build absolute URLs from SERVER_PORT, and taking it from Host
// let a client choose it.
var hdrFastCGIConn = []byte("X-Sessionproxy-Fastcgi-Conn")

// setFastCGIConn sets hdrFastCGIConn from ctx's connection, using buf.
// Without a TCP listener (an in-memory one) there is none: SERVER_PORT
// is then the scheme's.
func setFastCGIConn(ctx *fasthttp.RequestCtx, buf []byte) []byte {
	h := &ctx.Request.Header
	h.DelBytes(hdrFastCGIConn)
	la, ok := ctx.LocalAddr().(*net.TCPAddr)
	if !ok {
		return buf
	}
	buf = appendIP(buf[:0], la)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, int64(la.Port), 10)
	buf = append(buf, ' ')
	if ra, ok := ctx.RemoteAddr().(*net.TCPAddr); ok && ra.Port > 0 {
		buf = strconv.AppendInt(buf, int64(ra.Port), 10)
	}
	h.SetCanonical(hdrFastCGIConn, buf)
	return buf
}

// fastcgiConn splits hdrFastCGIConn's value.
func fastcgiConn(v []byte) (serverAddr, serverPort, remotePort []byte) {
	serverAddr, rest, _ := bytes.Cut(v, []byte(" "))
	serverPort, remotePort, _ = bytes.Cut(rest, []byte(" "))
	return serverAddr, serverPort, remotePort
}

// errNoScript is a .php path whose script does not exist: the proxy's 404.
var errNoScript = errors.New("proxy: no such script")

// RoundTrip runs req as a CGI request on a connection of hc.
func (t *fastcgiTransport[C]) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (retry bool, err error) {
	a, _ := t.answers.Get().(*fcgiAnswer)
	if a == nil {
		a = &fcgiAnswer{hr: bufio.NewReaderSize(nil, t.maxHeader), url: t.backend.URL, logger: t.logger.Warn}
		a.stderr = a.logStderr
	}
	streamed := false
	defer func() {
		if !streamed {
			t.answers.Put(a)
		}
	}()
	if err := t.params(a, req); err != nil {
		if err == errNoScript {
			resp.Reset()
			resp.SetStatusCode(fasthttp.StatusNotFound)
			resp.SetBodyString("404 Not Found\n")
			return false, nil
		}
		return false, err
	}
	cc, conn, err := t.acquire(req)
	if err != nil {
		return errors.Is(err, errStaleConn), err
	}
	if err = t.send(hc, conn, req, a); err != nil {
		t.closeConn(cc)
		return true, timeoutAsErrTimeout(err)
	}
	if err = conn.SetReadDeadline(time.Now().Add(t.responseTimeout)); err != nil {
		t.closeConn(cc)
		return true, err
	}
	a.conn = hc.AcquireReader(conn)
	a.fr.Reset(a.conn, a.stderr)
	a.hr.Reset(&a.fr)
	resp.Header.Reset()
	status, err := fastcgi.ReadHeader(a.hr, func(name, value []byte) {
		switch {
		case equalFold(name, "Content-Length"), equalFold(name, "Transfer-Encoding"), equalFold(name, "Connection"):
			// The proxy frames the body itself.
		default:
			resp.Header.AddBytesKV(name, value)
		}
	})
	if err != nil {
		hc.ReleaseReader(a.conn)
		t.closeConn(cc)
		return true, timeoutAsErrTimeout(err)
	}
	resp.Header.SetStatusCode(status)
	if req.Header.IsHead() || statusHasNoBody(status) {
		// Read the script's output to its end so that the connection
		// can carry the next request.
		resp.SkipBody = true
		if err = conn.SetReadDeadline(time.Now().Add(t.readIdle)); err == nil {
			_, err = io.Copy(io.Discard, io.LimitReader(a.hr, 1<<20))
		}
		hc.ReleaseReader(a.conn)
		if err != nil || !a.fr.Ended() || !t.fcgi.KeepConn {
			t.closeConn(cc)
		} else {
			t.releaseConn(cc)
		}
		return false, nil
	}
	body, _ := t.bodies.Get().(*upstreamBody[C])
	if body == nil {
		body = new(upstreamBody[C])
	}
	body.startFastCGI(hc, cc, t, a)
	streamed = true
	// The script's output has no length: chunked to the client, as
	// nginx relays PHP.
	resp.SetBodyStream(body, -1)
	resp.ImmediateHeaderFlush = eventStream(&resp.Header)
	return false, nil
}

// release gives the connection's reader back and a to the pool.
func (t *fastcgiTransport[C]) release(hc *fasthttp.HostClient, a *fcgiAnswer) {
	hc.ReleaseReader(a.conn)
	a.conn = nil
	a.hr.Reset(nil)
	t.answers.Put(a)
}

// send writes BEGIN_REQUEST, the parameters and the body.
func (t *fastcgiTransport[C]) send(hc *fasthttp.HostClient, conn net.Conn, req *fasthttp.Request, a *fcgiAnswer) error {
	var bw *bufio.Writer
	if req.IsBodyStream() {
		dw := deadlineWriterPool.Get().(*deadlineWriter)
		dw.Conn, dw.idle = conn, t.readIdle
		bw = hc.AcquireWriter(dw)
		defer func() { dw.Conn = nil; deadlineWriterPool.Put(dw) }()
	} else {
		if err := conn.SetWriteDeadline(time.Now().Add(t.responseTimeout)); err != nil {
			return err
		}
		bw = hc.AcquireWriter(conn)
	}
	defer hc.ReleaseWriter(bw)
	fastcgi.WriteBegin(bw, t.fcgi.KeepConn)
	if err := fastcgi.WriteParams(bw, a.params); err != nil {
		return err
	}
	stdin := fastcgi.Stdin{W: bw}
	if req.IsBodyStream() {
		if cap(a.copy) == 0 {
			a.copy = make([]byte, 32<<10)
		}
		if _, err := io.CopyBuffer(stdin, onlyReader{req.BodyStream()}, a.copy); err != nil {
			return err
		}
	} else if _, err := stdin.Write(req.Body()); err != nil {
		return err
	}
	stdin.Close()
	return bw.Flush()
}

// onlyReader hides a reader's WriterTo from io.CopyBuffer.
type onlyReader struct{ io.Reader }

// params builds the CGI parameters of req into a.params.
func (t *fastcgiTransport[C]) params(a *fcgiAnswer, req *fasthttp.Request) error {
	h := &req.Header
	var err error
	a.path, err = normalizePath(a.path[:0], pathOf(h.RequestURI()))
	if err != nil {
		return errNoScript
	}
	var script, pathInfo []byte
	switch {
	case t.fcgi.IndexOnly:
	case t.fcgi.WholePath:
		if script = wholeScript(a.path); script == nil {
			if len(a.path) == 0 || a.path[len(a.path)-1] != '/' {
				return errNoScript
			}
			// a directory: its index, as nginx's fastcgi_index
			a.path = append(a.path, t.fcgi.Index...)
			script = a.path
		}
	default:
		script, pathInfo = splitScript(a.path)
	}
	if bytes.IndexByte(script, '%') >= 0 {
		return errNoScript // an escaped "/" or "%" in a script's name
	}
	if h.ContentLength() < 0 && req.IsBodyStream() {
		if err := spoolRequest(req); err != nil {
			return err
		}
	}
	p := a.params[:0]
	root := t.fcgi.Root
	if script == nil {
		p = fastcgi.AppendParam(p, "SCRIPT_NAME", "/"+t.fcgi.Index)
		p = fastcgi.AppendParam(p, "SCRIPT_FILENAME", filepath.Join(root, t.fcgi.Index))
		p = fastcgi.AppendParam(p, "DOCUMENT_URI", "/"+t.fcgi.Index)
	} else {
		file := root + string(script)
		if t.localRoot {
			if st, err := os.Stat(file); err != nil || !st.Mode().IsRegular() {
				return errNoScript
			}
		}
		p = fastcgi.AppendParamBytes(p, []byte("SCRIPT_NAME"), script)
		p = fastcgi.AppendParam(p, "SCRIPT_FILENAME", file)
		p = fastcgi.AppendParamBytes(p, []byte("DOCUMENT_URI"), script)
		if len(pathInfo) > 0 {
			p = fastcgi.AppendParamBytes(p, []byte("PATH_INFO"), pathInfo)
			p = fastcgi.AppendParam(p, "PATH_TRANSLATED", root+string(pathInfo))
		}
	}
	p = fastcgi.AppendParam(p, "DOCUMENT_ROOT", root)
	p = fastcgi.AppendParam(p, "GATEWAY_INTERFACE", "CGI/1.1")
	p = fastcgi.AppendParam(p, "SERVER_SOFTWARE", "sessionproxy")
	p = fastcgi.AppendParamBytes(p, []byte("SERVER_PROTOCOL"), h.Protocol())
	p = fastcgi.AppendParamBytes(p, []byte("REQUEST_METHOD"), h.Method())
	p = fastcgi.AppendParamBytes(p, []byte("REQUEST_URI"), h.RequestURI())
	p = fastcgi.AppendParamBytes(p, []byte("QUERY_STRING"), req.URI().QueryString())
	p = fastcgi.AppendParamBytes(p, []byte("CONTENT_TYPE"), h.ContentType())
	// Body() would read a streamed body whole into memory.
	cl := h.ContentLength()
	if !req.IsBodyStream() {
		cl = len(req.Body())
	}
	var num [20]byte
	if cl > 0 {
		p = fastcgi.AppendParamBytes(p, []byte("CONTENT_LENGTH"), strconv.AppendInt(num[:0], int64(cl), 10))
	} else {
		p = fastcgi.AppendParam(p, "CONTENT_LENGTH", "")
	}
	// The proxy's view of the client (section 12): X-Real-IP and
	// X-Forwarded-Proto as setForwarded left them.
	p = fastcgi.AppendParamBytes(p, []byte("REMOTE_ADDR"), h.PeekBytes(hdrXRealIP))
	https := equalFold(h.PeekBytes(hdrXForwardedProto), "https")
	// As nginx's fastcgi_params: SERVER_ADDR, SERVER_PORT and REMOTE_PORT
	// are the connection's ($server_addr, $server_port, $remote_port),
	// never the Host header's port, which the client writes; SERVER_NAME
	// is the host the client asked for, without its port (nginx's
	// $server_name when the server block names none).
	serverAddr, port, remotePort := fastcgiConn(h.PeekBytes(hdrFastCGIConn))
	if len(port) == 0 {
		port = []byte("80")
		if https {
			port = []byte("443")
		}
	}
	host, _ := splitHostPort(h.Host())
	p = fastcgi.AppendParamBytes(p, []byte("REMOTE_PORT"), remotePort)
	p = fastcgi.AppendParamBytes(p, []byte("SERVER_NAME"), host)
	if len(serverAddr) > 0 {
		p = fastcgi.AppendParamBytes(p, []byte("SERVER_ADDR"), serverAddr)
	}
	p = fastcgi.AppendParamBytes(p, []byte("SERVER_PORT"), port)
	// fastcgi_params' own: php-cgi built with force-cgi-redirect runs
	// nothing without it.
	p = fastcgi.AppendParam(p, "REDIRECT_STATUS", "200")
	if https {
		p = fastcgi.AppendParam(p, "HTTPS", "on")
		p = fastcgi.AppendParam(p, "REQUEST_SCHEME", "https")
	} else {
		p = fastcgi.AppendParam(p, "REQUEST_SCHEME", "http")
	}
	// Every header as HTTP_*, the session's included; Content-Type and
	// Content-Length are CONTENT_TYPE and CONTENT_LENGTH.
	var name []byte
	for k, v := range h.All() {
		if equalFold(k, "content-type") || equalFold(k, "content-length") || bytes.EqualFold(k, hdrFastCGIConn) {
			continue
		}
		name = append(name[:0], "HTTP_"...)
		for _, c := range k {
			switch {
			case c == '-':
				c = '_'
			case 'a' <= c && c <= 'z':
				c -= 'a' - 'A'
			}
			name = append(name, c)
		}
		p = fastcgi.AppendParamBytes(p, name, v)
	}
	a.params = p
	return nil
}

// splitScript splits a normalised path at the first ".php" that ends a
// segment: the script's path and the rest (PATH_INFO). Without one,
// script is nil.
func splitScript(path []byte) (script, pathInfo []byte) {
	for i := 0; ; {
		j := bytes.Index(path[i:], []byte(".php"))
		if j < 0 {
			return nil, nil
		}
		end := i + j + len(".php")
		// The segment ends there and has a name before ".php".
		if (end == len(path) || path[end] == '/') && i+j > 0 && path[i+j-1] != '/' {
			return path[:end], path[end:]
		}
		i = end
	}
}

// wholeScript is path when its last segment ends in ".php" with a name
// before it, else nil: the script of a WholePath pool.
func wholeScript(path []byte) []byte {
	i := bytes.LastIndexByte(path, '/')
	if name := path[i+1:]; len(name) > len(".php") && bytes.HasSuffix(name, []byte(".php")) {
		return path
	}
	return nil
}

// splitHostPort splits a Host header; a host without a port has none.
func splitHostPort(h []byte) (host, port []byte) {
	i := bytes.LastIndexByte(h, ':')
	if i < 0 || bytes.IndexByte(h[i:], ']') >= 0 {
		return h, nil
	}
	return h[:i], h[i+1:]
}

// spoolRequest reads a chunked request body whole (memory, then a
// temporary file, within max_body), so that CONTENT_LENGTH is known:
// FastCGI has no framing of its own for a body of unknown length, and
// PHP reads CONTENT_LENGTH bytes.
func spoolRequest(req *fasthttp.Request) error {
	cb, ok := req.BodyStream().(*clientBody)
	if !ok {
		return errors.New("proxy: a FastCGI request body of unknown length")
	}
	n, err := cb.spool(cb.tempDir)
	if err != nil {
		return err
	}
	req.SetBodyStream(cb.spooled(), int(n))
	return nil
}

// Probe runs GET path on the FastCGI backend b, as the active health
// check does for HTTP backends (balancer.Checker.Probe): a 2xx answer
// read to its end passes.
func (p *Proxy) Probe(ctx context.Context, b *balancer.Backend, path string) error {
	p.once.Do(p.init)
	hc := p.clients[b.Index]
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(path)
	req.Header.SetHost("localhost")
	req.Header.SetCanonical(hdrXRealIP, []byte("127.0.0.1"))
	b.Begin() // the body's end counts it out, as for a client's request
	if err := hc.Do(req, resp); err != nil {
		if resp.BodyStream() == nil {
			b.End()
		}
		return err
	}
	if resp.BodyStream() == nil {
		b.End()
	} else {
		_, err := io.Copy(io.Discard, io.LimitReader(resp.BodyStream(), 64<<10))
		resp.CloseBodyStream()
		if err != nil {
			return err
		}
	}
	if c := resp.StatusCode(); c < 200 || c > 299 {
		return fmt.Errorf("status %d", c)
	}
	return ctx.Err()
}
