package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"sessionproxy/admin"
	"sessionproxy/certs"
	"sessionproxy/certs/acme"
	"sessionproxy/compress"
	"sessionproxy/config"
	"sessionproxy/h2front"
	"sessionproxy/membudget"
	"sessionproxy/proxy"
	"sessionproxy/sessionstore"
	_ "sessionproxy/sessionstore/memcached" // the memcached store, built by sessionstore.New when session.memcached names nodes
)

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// app is one running sessionproxy: the listener, the admin listener and the
// proxy currently in service, which SIGHUP replaces.
type app struct {
	flags   runFlags
	logger  *slog.Logger
	cfg     *config.Config
	current atomic.Pointer[generation]
	server  *fasthttp.Server
	admin   *http.Server
	// certs are the TLS listener's certificates, replaced on reload.
	certs certs.Store
	// tlsLn, if not nil, is the open listen_tls listener.
	tlsLn net.Listener
	// h2, if not nil, serves listen_tls's HTTP/2 clients (h2.go), and
	// h3 its HTTP/3 ones.
	h2 *h2front.Front
	h3 *h2front.H3
	// acme, if not nil, keeps tls.acme's certificates (acme.go).
	acme *acme.Manager

	// signals delivers SIGTERM, SIGINT, SIGHUP and SIGUSR1; tests send to it.
	signals chan os.Signal
	// onListen, if set, is called with the listen address once serving.
	onListen func(addr string)
}

// generation is the proxy built from one configuration, with what must be
// stopped when it is replaced.
type generation struct {
	proxy     *proxy.Proxy // the default upstream
	router    *proxy.Router
	stop      func()
	store     *sessionstore.Store
	accessLog *proxy.AccessLog
	cfg       *config.Config
}

// retire releases what g does not share with next: its store once the
// requests that started on g have had time to finish, its access log's
// file once the last of them has written its line (serveHTTP holds it
// for each request, a streamed body until it is relayed), as nginx's
// old workers keep their log files until their last request.
func (g *generation) retire(next *generation, grace time.Duration) {
	g.stop()
	if g.accessLog != next.accessLog {
		g.accessLog.Close()
	}
	time.AfterFunc(grace, func() {
		if g.store != next.store {
			g.store.Flush(context.Background())
			g.store.Close()
		}
	})
}

// serveHTTP serves one request with the generation in service, holding
// that generation's access log until the request is done with it.
func (a *app) serveHTTP(ctx *fasthttp.RequestCtx) {
	for {
		g := a.current.Load()
		if g.accessLog.Hold() {
			defer g.accessLog.Release()
			g.router.ServeHTTP(ctx)
			return
		}
		// g was retired between Load and Hold and its log closed: the
		// generation that replaced it is in service. Only after shutdown
		// has closed the last log is there none to hold.
		if a.current.Load() == g {
			g.router.ServeHTTP(ctx)
			return
		}
	}
}

func newApp(c *config.Config, f runFlags, logger *slog.Logger) (*app, error) {
	a := &app{flags: f, logger: logger, cfg: c, signals: make(chan os.Signal, 2)}
	g, err := build(c, logger, nil)
	if err != nil {
		return nil, err
	}
	a.current.Store(g)
	if c.ListenTLS != "" && len(c.TLS.Certificates) > 0 {
		set, err := loadCertificates(c)
		if err != nil {
			return nil, err
		}
		a.certs.Swap(set)
	}
	if err := a.newACME(c); err != nil {
		return nil, err
	}
	handler := a.withACME(a.serveHTTP)
	handler = withAltSvc(c, handler) // h2.go
	a.server = proxy.NewServer(handler, proxy.ServerOptions{
		MaxBody:          int64(c.MaxBody),
		ReadTimeout:      c.Timeouts.ClientRead.Std(),
		IdleTimeout:      c.Timeouts.ClientIdle.Std(),
		RequestBuffering: c.RequestBuffering,
		ErrorPages:       func() *proxy.ErrorPages { return a.current.Load().proxy.ErrorPages },
	})
	if c.Admin != "" {
		// The token follows reloads, like the proxy the handler reports on.
		h := admin.Handler(func() admin.Target {
			g := a.current.Load()
			return admin.Target{Upstreams: g.router.Upstreams, Store: g.store, Principal: g.cfg.Session.PrincipalAttr()}
		})
		a.admin = &http.Server{
			Addr: c.Admin,
			Handler: admin.RequireLocalHost(c.Admin,
				admin.RequireToken(func() string { return a.current.Load().cfg.AdminToken }, h)),
			ReadHeaderTimeout: 10 * time.Second,
		}
	}
	return a, nil
}

// build makes a proxy from a configuration. prev, if not nil, is the
// generation being replaced, whose parts may be kept. On failure it
// closes the access log it opened: a reload that fails keeps the old one.
func build(c *config.Config, logger *slog.Logger, prev *generation) (g *generation, err error) {
	var metrics *proxy.Metrics
	var tunnels *proxy.Tunnels
	if prev != nil {
		// The counters and the open tunnels survive a reload.
		metrics, tunnels = prev.proxy.Metrics, prev.proxy.Tunnels
	} else {
		metrics, tunnels = proxy.NewMetrics(), new(proxy.Tunnels)
	}
	var store *sessionstore.Store
	if prev != nil && sameStore(prev.cfg, c) {
		store = prev.store
	} else {
		var previous *sessionstore.Store // the hot tier survives a reload of the same size
		if prev != nil {
			previous = prev.store
		}
		if store, err = newStore(c, previous, logger); err != nil {
			return nil, err
		}
		// A reload that fails after this keeps the old store in service:
		// the new one's node connections, presence marks and probes would
		// otherwise run for the life of the process.
		defer func() {
			if err != nil {
				store.Close()
			}
		}()
	}
	var accessLog *proxy.AccessLog
	if prev != nil && prev.cfg.AccessLog == c.AccessLog {
		accessLog = prev.accessLog
	} else if accessLog, err = proxy.OpenAccessLog(c.AccessLog.Format, c.AccessLog.Path); err != nil {
		return nil, err
	} else {
		defer func() {
			if err != nil {
				accessLog.Close()
			}
		}()
	}
	settings, err := proxySettings(c, logger, metrics, tunnels, accessLog)
	if err != nil {
		return nil, err
	}
	sessions, err := newSessions(c, store, logger)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	rt, err := buildRouter(ctx, c, settings, sessions, logger)
	if err != nil {
		cancel()
		return nil, err
	}
	if prev != nil {
		carryConns(rt, prev.router) // tunnels.go
	}
	def := rt.Default.(*proxy.Proxy)
	return &generation{proxy: def, router: rt, stop: cancel, store: store, accessLog: accessLog, cfg: c}, nil
}

// proxySettings builds the one proxy.Settings of configuration c. Every
// Proxy of the configuration (each upstream's, and each session-free one
// of a route with session: false) embeds this value whole, so a setting
// added to proxy.Settings and set here is in effect on every route.
func proxySettings(c *config.Config, logger *slog.Logger, metrics *proxy.Metrics, tunnels *proxy.Tunnels, accessLog *proxy.AccessLog) (proxy.Settings, error) {
	pages, err := proxy.LoadErrorPages(c.ErrorPages)
	if err != nil {
		return proxy.Settings{}, err
	}
	compression, err := compress.New(c.Compression.Options())
	if err != nil {
		return proxy.Settings{}, err
	}
	s := proxy.Settings{
		Retries:              c.Retries,
		ConnectTimeout:       c.Timeouts.Connect.Std(),
		ResponseTimeout:      c.Timeouts.Response.Std(),
		ReadIdle:             c.Timeouts.ReadIdle.Std(),
		TunnelIdle:           c.Timeouts.TunnelIdle.Std(),
		MaxTunnels:           c.MaxTunnels,
		MaxResponseHeader:    proxy.MaxResponseHeaderFor(int(c.Session.MaxSize)),
		UnderscoresInHeaders: c.UnderscoresInHeaders,
		Logger:               logger,
		Metrics:              metrics,
		Tunnels:              tunnels,
		ErrorPages:           pages,
		Compression:          compression,
	}
	if accessLog != nil {
		s.AccessLog = accessLog
	}
	return s, nil
}

// instanceID names this process in the presence marks its stores keep on
// the shared store: one per process, so that a reload's new store does not
// take the mark of the one it replaces for another proxy.
var instanceID = sessionstore.NewInstanceID()

// newStore builds the session store of a configuration; previous, if not
// nil, is the store it replaces.
func newStore(c *config.Config, previous *sessionstore.Store, logger *slog.Logger) (*sessionstore.Store, error) {
	sc := c.Session
	o := sessionstore.Options{
		TTL:              sc.TTL.Std(),
		MaxAge:           sc.MaxAge.Std(),
		MaxSize:          int(sc.MaxSize),
		LocalSize:        int(sc.LocalCache.Size),
		LocalTTL:         sc.LocalCache.TTL.Std(),
		InstanceID:       instanceID,
		Async:            sc.Write == "async",
		CreateAlways:     sc.Create == "always",
		NewOnUnavailable: sc.StoreDown == "new",
		Principal:        sessionstore.PrincipalOptions{Attr: sc.PrincipalAttr(), Max: sc.MaxPerPrincipal},
		Previous:         previous,
		Logger:           logger,
	}
	if err := sc.Stores.Apply(&o); err != nil {
		return nil, err
	}
	if len(o.Memcached.Nodes) > 0 { // only a shared store with hints of its own needs one
		stateDir, err := c.StateDirPath()
		if err != nil {
			return nil, err
		}
		o.Memcached.StateDir = stateDir
	}
	store, err := sessionstore.New(o)
	if err != nil {
		return nil, err
	}
	if store.Embedded() {
		logger.Warn("no memcached nodes: sessions are held in this process only and are lost when it stops",
			"local_cache", int64(sc.LocalCache.Size))
	}
	return store, nil
}

// sameStore reports whether two configurations can share one store.
func sameStore(a, b *config.Config) bool {
	x, y := a.Session, b.Session
	return a.StateDir == b.StateDir && x.TTL == y.TTL && x.MaxAge == y.MaxAge && x.MaxSize == y.MaxSize && x.LocalCache == y.LocalCache && x.Write == y.Write &&
		x.PrincipalAttr() == y.PrincipalAttr() && x.MaxPerPrincipal == y.MaxPerPrincipal &&
		x.Stores.Equal(y.Stores)
}

func newSessions(c *config.Config, store *sessionstore.Store, logger *slog.Logger) (*proxy.Sessions, error) {
	sc := c.Session
	s := &proxy.Sessions{
		Store:        store,
		Cookie:       sc.Cookie,
		CookieSecure: sc.CookieSecure,
		CookieDomain: sc.CookieDomain,
		CookiePath:   sc.CookiePath,
		SameSite:     map[string]string{"lax": "Lax", "strict": "Strict", "none": "None"}[sc.CookieSameSite],
		Logger:       logger,
	}
	if sc.Ignore != "" {
		re, err := regexp.Compile(sc.Ignore)
		if err != nil {
			return nil, fmt.Errorf("session.ignore: %w", err)
		}
		s.Ignore = re
	}
	return s, nil
}

// serve listens and serves until SIGTERM or SIGINT, then drains.
func (a *app) serve() int {
	// Handle signals before the port opens: an unhandled SIGHUP (a reload
	// sent as soon as the proxy answers) would otherwise kill the process.
	signal.Notify(a.signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		a.logger.Error("cannot listen", "addr", a.cfg.Listen, "error", err)
		return 1
	}
	var adminLn net.Listener
	if a.admin != nil {
		if adminLn, err = net.Listen("tcp", a.cfg.Admin); err != nil {
			a.logger.Error("cannot listen for admin", "addr", a.cfg.Admin, "error", err)
			return 1
		}
		go a.admin.Serve(adminLn)
	}
	if a.cfg.ListenTLS != "" {
		if a.tlsLn, err = net.Listen("tcp", a.cfg.ListenTLS); err != nil {
			a.logger.Error("cannot listen for TLS", "addr", a.cfg.ListenTLS, "error", err)
			return 1
		}
	}
	return a.serveOn(ln)
}

// serveOn serves on ln until SIGTERM or SIGINT, then drains.
func (a *app) serveOn(ln net.Listener) int {
	a.logger.Info("sessionproxy listening", "addr", ln.Addr().String(), "backends", len(a.cfg.Backends),
		"balancer", a.cfg.Balancer, "admin", a.cfg.Admin, "version", buildVersion())
	sigs := a.signals
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	if a.onListen != nil {
		a.onListen(ln.Addr().String())
	}
	ctx, stopBudget := context.WithCancel(context.Background())
	defer stopBudget()
	go membudget.Run(ctx, time.Second, a.budget)
	serveErr := make(chan error, 1)
	// Lingering close: a client still sending a body the proxy refused
	// reads the 413 instead of a reset.
	go func() { serveErr <- a.server.Serve(a.wrap(ln)) }()
	if a.tlsLn != nil {
		// The stored certificates before the first handshake, not from
		// startACME's ordering below: a client that connected at once
		// after a restart got the configured fallback for its name. An
		// error here is startACME's to report.
		a.loadACME()
		a.serveTLS(serveErr) // h2.go
		a.logger.Info("sessionproxy listening for TLS", "addr", a.tlsLn.Addr().String(),
			"certificates", len(a.cfg.TLS.Certificates))
	}
	a.startACME()
	for {
		select {
		case err := <-serveErr:
			if err != nil {
				a.logger.Error("serve failed", "error", err)
				return 1
			}
			return 0
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				a.reload()
				continue
			}
			if sig == syscall.SIGUSR1 {
				a.reopenLogs() // logs.go
				continue
			}
			return a.shutdown(sig, sigs)
		}
	}
}

// reload re-reads the config file; an invalid file keeps the old config.
func (a *app) reload() {
	if a.flags.config == "" {
		a.logger.Warn("SIGHUP ignored: no -config file to re-read")
		return
	}
	c, err := a.flags.load()
	if err != nil {
		var es config.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				a.logger.Error("reload failed, keeping the old config", "file", a.flags.config, "line", e.Line, "error", e.Msg)
			}
		} else {
			a.logger.Error("reload failed, keeping the old config", "error", err)
		}
		return
	}
	// admin: needs a restart, so the new file's check of admin_token
	// against its own admin address says nothing about the listener that
	// is open: never let a reload drop the token of one off loopback.
	if a.admin != nil && c.AdminToken == "" && !config.LoopbackAddr(a.admin.Addr) {
		a.logger.Error("reload failed, keeping the old config", "file", a.flags.config,
			"error", fmt.Sprintf("the admin listener on %q is not on loopback: admin_token is required", a.admin.Addr))
		return
	}
	prev := a.current.Load()
	g, err := build(c, a.logger, prev)
	if err != nil {
		a.logger.Error("reload failed, keeping the old config", "error", err)
		return
	}
	if a.tlsLn != nil && len(c.TLS.Certificates) > 0 {
		// A certificate that fails here, after check passed, keeps the
		// old set: handshakes must not start failing on a reload.
		if set, err := loadCertificates(c); err != nil {
			a.logger.Error("certificates not reloaded, keeping the old ones", "error", err)
		} else {
			a.certs.Swap(set)
		}
	}
	a.warnACMEReload(c)
	a.current.Store(g)
	// Requests already running finish on the old settings.
	prev.retire(g, a.cfg.Timeouts.Response.Std()+time.Second)
	a.cfg = c
	a.logger.Info("config reloaded", "file", a.flags.config, "backends", len(c.Backends))
}

// shutdown stops accepting, lets in-flight requests finish within
// timeouts.shutdown, then exits 0. A second signal exits at once.
func (a *app) shutdown(sig os.Signal, sigs <-chan os.Signal) int {
	a.logger.Info("shutting down", "signal", sig.String(), "grace", a.cfg.Timeouts.Shutdown.Std())
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Timeouts.Shutdown.Std())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		h2done := a.shutdownH2(ctx) // h2.go
		err := a.server.ShutdownWithContext(ctx)
		<-h2done
		a.closeTunnels(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			a.logger.Warn("shutdown", "error", err)
		}
	case s := <-sigs:
		a.logger.Warn("second signal, exiting now", "signal", s.String())
		return 1
	}
	g := a.current.Load()
	if n := g.store.Pending(); n > 0 {
		a.logger.Info("writing back pending session changes", "sessions", n)
	}
	if err := g.store.Flush(ctx); err != nil {
		a.logger.Error("pending session writes not finished within timeouts.shutdown", "left", g.store.Pending())
	}
	if n := g.store.Dirty(); n > 0 {
		a.logger.Error("sessions changed while every memcached node was down are lost", "sessions", n)
	}
	if a.admin != nil {
		a.admin.Close()
	}
	if a.acme != nil {
		a.acme.Stop()
	}
	g.stop()
	g.store.Close()
	g.accessLog.Close()
	g.accessLog.Flush() // the lines of requests still holding it, cut by timeouts.shutdown
	a.logger.Info("stopped")
	return 0
}
