package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"sessionproxy/balancer"
	"sessionproxy/certs"
	"sessionproxy/config"
	"sessionproxy/proxy"
	"sessionproxy/proxyproto"
)

// buildRouter makes one Proxy per upstream ("default" first), each with
// settings and, where a route wants them, sessions (nil: none), and the
// route table over them. Active health checks run until ctx is done.
func buildRouter(ctx context.Context, c *config.Config, settings proxy.Settings, sessions *proxy.Sessions, logger *slog.Logger) (*proxy.Router, error) {
	rt := &proxy.Router{Recorder: &proxy.Recorder{Metrics: settings.Metrics, AccessLog: settings.AccessLog}}
	upstreams := map[string]*proxy.Proxy{}
	for _, name := range c.UpstreamNames() {
		u := c.UpstreamConfig(name)
		p, err := newUpstream(ctx, c, name, u, settings, sessions, logger)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", name, err)
		}
		upstreams[name] = p
		rt.Upstreams = append(rt.Upstreams, p)
	}
	rt.Default = upstreams[config.DefaultUpstream]
	sessionFree := map[string]*proxy.Proxy{}
	// try_files' fallbacks, one per upstream: a FastCGI upstream's is its
	// front controller, with transports of its own
	fallbacks := map[string]*proxy.Proxy{}
	for name, p := range upstreams {
		fallbacks[name] = proxy.FrontController(p)
	}
	for i, r := range c.Routes {
		route := proxy.Route{
			Host:          r.Match.Host,
			Rewrite:       r.RewritePrefix != "",
			RewritePrefix: r.RewritePrefix,
		}
		if err := addRules(&route, r, c, rt.Recorder); err != nil { // routerules.go
			return nil, fmt.Errorf("routes[%d]: %w", i, err)
		}
		switch {
		case route.Handler != nil: // respond or redirect
		case r.Static != "":
			s, err := proxy.NewStatic(r.Static, rt.Recorder)
			if err != nil {
				return nil, fmt.Errorf("routes[%d].static: %w", i, err)
			}
			if route.Rewrite {
				// The files see the rewritten path, the client's
				// redirects the one it asked for.
				s.Alias(route.Path, route.RewritePrefix)
				route.Rewrite = false
			}
			s.Compression = settings.Compression
			route.Handler = s
			if len(r.TryFiles) > 0 {
				route.Handler = tryFiles(s, r.TryFiles, fallbacks)
			}
		case r.Sessions() || sessions == nil:
			route.Handler = upstreams[r.Upstream]
		default:
			p := sessionFree[r.Upstream]
			if p == nil {
				p = withoutSessions(upstreams[r.Upstream])
				sessionFree[r.Upstream] = p
			}
			route.Handler = p
		}
		upstream := r.Upstream // the upstream label: "" (none) for files and fixed answers
		if r.Static != "" || r.Respond != nil || r.Redirect != nil {
			upstream = ""
		}
		route.Metrics = settings.Metrics.Route(routeName(r.Match), upstream)
		rt.Routes = append(rt.Routes, route)
	}
	rt.BuildIndex()
	if len(c.RealIPFrom) > 0 {
		rt.RealIP = &proxy.RealIP{}
		for _, s := range c.RealIPFrom {
			p, err := config.ParsePrefix(s)
			if err != nil {
				return nil, err
			}
			rt.RealIP.Trusted = append(rt.RealIP.Trusted, p)
		}
	}
	if c.RedirectToHTTPS {
		_, port, err := net.SplitHostPort(c.ListenTLS)
		if err != nil {
			return nil, fmt.Errorf("listen_tls: %w", err)
		}
		rt.RedirectHTTPSPort = port
	}
	return rt, nil
}

// routeName labels a route's metrics: its host and path as configured
// ("example.com/static/", "~ \\.php$"), "*" for a route matching anything.
// Routes written alike share their counters.
func routeName(m config.RouteMatch) string {
	if m.Host == "" && m.Path == "" {
		return "*"
	}
	return m.Host + m.Path
}

// newUpstream makes the pool and Proxy of one upstream.
func newUpstream(ctx context.Context, c *config.Config, name string, u config.Upstream, settings proxy.Settings, sessions *proxy.Sessions, logger *slog.Logger) (*proxy.Proxy, error) {
	var backends []*balancer.Backend
	for _, bc := range u.Backends {
		b, err := proxy.NewBackend(bc.URL, bc.Weight, bc.Backup)
		if err != nil {
			return nil, err
		}
		b.MaxConns = u.MaxConns
		backends = append(backends, b)
	}
	pool, err := balancer.NewPool(u.Balancer, backends, &balancer.Health{
		MaxFails:    u.Health.MaxFails,
		FailTimeout: u.Health.FailTimeout.Std(),
		Logger:      logger.With("upstream", name),
	})
	if err != nil {
		return nil, err
	}
	p := &proxy.Proxy{
		Settings: settings,
		Pool:     pool,
		Upstream: name,
		Pipeline: u.Pipeline,
		Sessions: sessions,
	}
	if hasFastCGI(u) {
		p.FastCGI = &proxy.FastCGI{Root: u.FastCGI.Root, Index: u.FastCGI.IndexOrDefault(), KeepConn: u.FastCGI.KeepConn, WholePath: u.FastCGI.WholePath()}
	}
	if u.Health.CheckPath != "" && len(backends) > 0 {
		checker := &balancer.Checker{
			Path:     u.Health.CheckPath,
			Interval: u.Health.CheckInterval.Std(),
			Timeout:  c.Timeouts.Connect.Std() + c.Timeouts.Response.Std()/10,
		}
		if p.FastCGI != nil {
			checker.Probe = p.Probe
		}
		go checker.Run(ctx, pool)
	}
	return p, nil
}

// hasFastCGI reports whether u's backends are FastCGI servers (config
// refuses a pool that mixes them with HTTP ones).
func hasFastCGI(u config.Upstream) bool {
	return len(u.Backends) > 0 && config.IsFastCGI(u.Backends[0].URL)
}

// withoutSessions returns a Proxy that forwards through p's backend
// connections with no session work: a route with session: false.
func withoutSessions(p *proxy.Proxy) *proxy.Proxy {
	return &proxy.Proxy{
		Settings:    p.Settings,
		Pool:        p.Pool,
		Upstream:    p.Upstream,
		ClientsFrom: p,
		Pipeline:    p.Pipeline,
		FastCGI:     p.FastCGI,
	}
}

// loadCertificates reads every certificate of the configuration into a set.
func loadCertificates(c *config.Config) (*certs.Set, error) {
	var pairs []tls.Certificate
	for i, cc := range c.TLS.Certificates {
		pair, err := config.LoadCertificate(cc)
		if err != nil {
			return nil, fmt.Errorf("tls.certificates[%d]: %w", i, err)
		}
		pairs = append(pairs, pair)
	}
	return certs.NewSet(pairs, config.TLSVersion(c.TLS.MinVersion))
}

// wrap gives a listener lingering close and, with proxy_protocol, the
// PROXY header's client address. TLS, if any, goes on top: the PROXY
// header comes before the handshake.
func (a *app) wrap(ln net.Listener) net.Listener {
	var l net.Listener = proxy.NewLingerListener(ln)
	if a.cfg.ProxyProtocol {
		l = &proxyproto.Listener{Listener: l, Trusted: a.trustsProxyHeader}
	}
	return l
}

// trustsProxyHeader reports whether a PROXY header from peer names the
// client: only a peer in real_ip_from (any peer without real_ip_from) may
// do so. It reads the configuration in service, so a reload of
// real_ip_from applies to the connections that come after it.
func (a *app) trustsProxyHeader(peer netip.Addr) bool {
	ri := a.current.Load().router.RealIP
	return ri == nil || ri.Trusts(peer)
}
