package h2front

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// H3 serves HTTP/3 on the TLS listener's UDP port through the same bridge
// as HTTP/2: each request becomes an HTTP/1.1 request on an in-memory
// connection of the Front's fasthttp server.
type H3 struct {
	srv *http3.Server
	pc  net.PacketConn
}

// NewH3 returns an HTTP/3 server on pc whose handshakes take their
// certificates from tlsConf (as the TLS listener's). 0-RTT is off: a
// replayed early request would reach the backends twice.
func (f *Front) NewH3(pc net.PacketConn, tlsConf *tls.Config) *H3 {
	return &H3{pc: pc, srv: &http3.Server{
		Handler:        &bridge{f: f},
		TLSConfig:      tlsConf,
		MaxHeaderBytes: f.o.MaxHeaderBytes,
		IdleTimeout:    f.o.IdleTimeout,
		QUICConfig: &quic.Config{
			Allow0RTT: false,
			// As h2's: MaxConcurrentStreams request streams at a time
			// (nginx's http3_max_concurrent_streams 128; quic-go's own
			// default is 100), and a peer's control and QPACK streams,
			// which are all an HTTP/3 client opens one way (nginx grants 3).
			MaxIncomingStreams:    int64(f.o.MaxConcurrentStreams),
			MaxIncomingUniStreams: 3,
			// Bodies not yet read, bounded as h2's receive buffers: 256 KiB
			// a stream, 1 MiB a connection (quic-go's defaults grow to 6
			// and 15 MiB).
			InitialStreamReceiveWindow:     64 << 10,
			MaxStreamReceiveWindow:         256 << 10,
			InitialConnectionReceiveWindow: 512 << 10,
			MaxConnectionReceiveWindow:     1 << 20,
			HandshakeIdleTimeout:           f.o.HandshakeTimeout,
		},
		ConnContext: func(ctx context.Context, c *quic.Conn) context.Context {
			cl := &client{addr: asTCP(c.RemoteAddr()), local: asTCP(c.LocalAddr()), state: c.ConnectionState().TLS}
			return context.WithValue(ctx, clientKey{}, cl)
		},
		Logger: f.o.Logger,
	}}
}

// asTCP gives a UDP address as the TCP one the request path reads a
// client's address from (fasthttp's RemoteIP knows *net.TCPAddr only).
func asTCP(a net.Addr) net.Addr {
	if u, ok := a.(*net.UDPAddr); ok {
		return &net.TCPAddr{IP: u.IP, Port: u.Port, Zone: u.Zone}
	}
	return a
}

// Serve serves until Shutdown.
func (h *H3) Serve() error {
	err := h.srv.Serve(h.pc)
	if err == nil || err == context.Canceled || err.Error() == "quic: server closed" {
		return nil
	}
	return err
}

// Shutdown lets running requests finish until ctx is done.
func (h *H3) Shutdown(ctx context.Context) error {
	err := h.srv.Shutdown(ctx)
	h.srv.Close()
	return err
}

// AltSvc is the Alt-Svc value that advertises HTTP/3 on port.
func AltSvc(port string) string { return fmt.Sprintf(`h3=":%s"; ma=86400`, port) }
