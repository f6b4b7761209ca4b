package main

import (
	"context"
	"crypto/tls"
	"net"

	"github.com/valyala/fasthttp"

	"sessionproxy/config"
	"sessionproxy/h2front"
)

// serveTLS serves listen_tls: HTTP/1.1 by the fasthttp server, and with
// http2 (the default) HTTP/2 by h2front, which hands every stream to the
// same fasthttp server. Serving errors go to serveErr.
func (a *app) serveTLS(serveErr chan<- error) {
	cfg := a.certs.TLSConfig()
	if !a.cfg.HTTP2 && !a.cfg.HTTP3 {
		ln := tls.NewListener(a.wrap(a.tlsLn), cfg)
		go func() { serveErr <- a.server.Serve(ln) }()
		return
	}
	tcpCfg := cfg
	if a.cfg.HTTP2 {
		tcpCfg = h2front.OfferH2(cfg)
	}
	a.h2 = h2front.New(tls.NewListener(a.wrap(a.tlsLn), tcpCfg), h2front.Options{
		HandshakeTimeout: a.cfg.Timeouts.ClientRead.Std(),
		IdleTimeout:      a.cfg.Timeouts.ClientIdle.Std(),
		Logger:           a.logger,
	})
	go func() { serveErr <- a.server.Serve(a.h2.Listener()) }()
	go func() {
		if err := a.h2.Serve(); err != nil {
			serveErr <- err
		}
	}()
	if !a.cfg.HTTP3 {
		return
	}
	pc, err := net.ListenPacket("udp", a.tlsLn.Addr().String())
	if err != nil {
		a.logger.Error("cannot listen for HTTP/3", "addr", a.tlsLn.Addr().String(), "error", err)
		serveErr <- err
		return
	}
	a.h3 = a.h2.NewH3(pc, cfg)
	go func() {
		if err := a.h3.Serve(); err != nil {
			serveErr <- err
		}
	}()
	a.logger.Info("sessionproxy listening for HTTP/3", "addr", pc.LocalAddr().String())
}

// withAltSvc advertises HTTP/3 (http3: true) on every answer given over
// TLS, HTTP/1.1 and h2 alike (an h2 stream's in-memory connection passes
// for TLS); h is the request path. The header is set once the request
// path is done with the answer, before fasthttp writes it.
func withAltSvc(c *config.Config, h fasthttp.RequestHandler) fasthttp.RequestHandler {
	if !c.HTTP3 || c.ListenTLS == "" {
		return h
	}
	_, port, _ := net.SplitHostPort(c.ListenTLS)
	v := h2front.AltSvc(port)
	return func(ctx *fasthttp.RequestCtx) {
		h(ctx)
		if ctx.IsTLS() {
			ctx.Response.Header.Set("Alt-Svc", v)
		}
	}
}

// shutdownH2 sends GOAWAY to the HTTP/2 clients and lets their streams
// finish until ctx is done, beside the fasthttp server's own drain (the
// streams still running are that server's in-memory connections); the
// channel closes when it is done.
func (a *app) shutdownH2(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if a.h2 == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		if a.h3 != nil {
			go a.h3.Shutdown(ctx) //nolint:errcheck // as below
		}
		a.h2.Shutdown(ctx) //nolint:errcheck // the deadline is the grace period's
	}()
	return done
}
