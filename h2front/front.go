// Package h2front serves the HTTP/2 clients of the TLS listener through the
// one fasthttp request path. Go's net/http server speaks HTTP/2 with the
// clients that negotiate "h2" through ALPN; each of their streams is written
// as an HTTP/1.1 request onto an in-memory connection that the same
// fasthttp server serves, and the answer read back from it is relayed as the
// stream's response. The in-memory connection reports the h2 client's
// address and TLS state, so real_ip_from, X-Forwarded-* and the access log
// see the client, and no socket another process could open is involved.
// Clients that negotiate http/1.1 (or nothing) get their TLS connection
// handed to fasthttp unchanged.
package h2front

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults, as nginx's: http2_max_concurrent_streams 128; the header list
// is capped as fasthttp's read buffer caps an HTTP/1.1 request head
// (proxy.NewServer's 16 KiB), since every h2 request becomes one.
const (
	DefaultMaxConcurrentStreams = 128
	DefaultMaxHeaderBytes       = 16 << 10
	DefaultHandshakeTimeout     = 10 * time.Second
	DefaultIdleTimeout          = 90 * time.Second
)

// Options tunes a Front; the zero value takes the defaults above.
type Options struct {
	MaxConcurrentStreams uint32
	MaxHeaderBytes       int
	// HandshakeTimeout bounds the TLS handshake, which the Front runs
	// before it knows which server a connection goes to.
	HandshakeTimeout time.Duration
	// IdleTimeout closes an h2 connection without streams this long.
	IdleTimeout time.Duration
	// Logger gets the h2 server's own errors at debug level.
	Logger *slog.Logger
}

// Front splits a TLS listener between fasthttp (HTTP/1.1) and net/http's
// HTTP/2 server, whose streams come back to fasthttp through Listener.
type Front struct {
	tlsLn   net.Listener
	o       Options
	conns   *chanListener // what fasthttp serves: TLS HTTP/1.1 conns and in-memory ones
	h2conns *chanListener // TLS conns that negotiated h2
	srv     *http.Server
	closed  atomic.Bool
}

// New returns a Front over tlsLn, a listener of *tls.Conn (tls.NewListener)
// whose configuration offers "h2" (OfferH2).
func New(tlsLn net.Listener, o Options) *Front {
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if o.MaxHeaderBytes == 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Front{tlsLn: tlsLn, o: o, conns: newChanListener(tlsLn.Addr()), h2conns: newChanListener(tlsLn.Addr())}
	var protocols http.Protocols
	protocols.SetHTTP2(true)
	f.srv = &http.Server{
		Handler:        &bridge{f: f},
		Protocols:      &protocols,
		IdleTimeout:    o.IdleTimeout,
		MaxHeaderBytes: o.MaxHeaderBytes,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, clientKey{}, newClient(c))
		},
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: int(o.MaxConcurrentStreams),
			// nginx's http2_body_preread_size is 64k per stream; a
			// connection buffers at most 1 MiB of bodies not yet read.
			MaxReceiveBufferPerStream:     256 << 10,
			MaxReceiveBufferPerConnection: 1 << 20,
		},
		ErrorLog: log.New(debugWriter{o.Logger}, "", 0),
	}
	return f
}

// Listener is what the fasthttp server must serve beside its other
// listeners: the TLS connections that speak HTTP/1.1 and the in-memory ones
// that carry h2 streams.
func (f *Front) Listener() net.Listener { return f.conns }

// Serve accepts TLS connections until the listener fails or Shutdown, and
// runs the HTTP/2 server. It returns nil after Shutdown.
func (f *Front) Serve() error {
	go f.srv.Serve(f.h2conns) //nolint:errcheck // ends with Shutdown
	for {
		c, err := f.tlsLn.Accept()
		if err != nil {
			if f.closed.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			f.conns.close()
			return err
		}
		go f.dispatch(c)
	}
}

// dispatch completes the handshake and hands c to the server of the
// protocol it negotiated.
func (f *Front) dispatch(c net.Conn) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		f.conns.push(c)
		return
	}
	tc.SetDeadline(time.Now().Add(f.o.HandshakeTimeout)) //nolint:errcheck
	if err := tc.Handshake(); err != nil {
		tc.Close()
		return
	}
	tc.SetDeadline(time.Time{}) //nolint:errcheck
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		f.h2conns.push(tc)
		return
	}
	f.conns.push(tc)
}

// Shutdown stops accepting and lets the h2 streams running finish (GOAWAY)
// until ctx is done. The fasthttp server is shut down by its owner; the
// in-memory connections of streams still running end with their streams.
func (f *Front) Shutdown(ctx context.Context) error {
	f.closed.Store(true)
	f.tlsLn.Close()
	err := f.srv.Shutdown(ctx)
	f.h2conns.close()
	return err
}

// chanListener is a net.Listener fed by push.
type chanListener struct {
	addr     net.Addr
	ch       chan net.Conn
	done     chan struct{}
	doneOnce sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c to Accept, or closes it once the listener is closed.
func (l *chanListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept. The connections already accepted are their server's.
func (l *chanListener) Close() error {
	l.close()
	return nil
}

func (l *chanListener) close() { l.doneOnce.Do(func() { close(l.done) }) }

func (l *chanListener) Addr() net.Addr { return l.addr }

// debugWriter turns net/http's log lines (a client's bad frames, TLS
// errors) into debug records: they are the clients' faults, not ours.
type debugWriter struct{ l *slog.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.l.Debug("http2", "msg", string(p))
	return len(p), nil
}

var _ io.Writer = debugWriter{}
