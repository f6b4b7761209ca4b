package config

import (
	"fmt"
	"maps"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// DefaultUpstream is the name of the pool the top-level backends form; a
// request that matches no route goes to it.
const DefaultUpstream = "default"

// Upstream is a named pool of backends with its own balancer and health.
type Upstream struct {
	Balancer string    `yaml:"balancer"` // (default: the top-level balancer)
	Backends []Backend `yaml:"backends"` // at least one
	Health   Health    `yaml:"health"`   // each field not set is the top-level one's
	Pipeline int       `yaml:"pipeline"` // requests in flight per backend connection; 0 = off, never inherited (config/pipeline.go)
	FastCGI  FastCGI   `yaml:"fastcgi"`  // scripts of fastcgi:// backends (config/fastcgi.go); never inherited

	// MaxConns caps each backend's active connections (default: the
	// top-level max_conns).
	MaxConns int `yaml:"max_conns"`
}

// Route sends the requests it matches to an upstream or serves them from
// files. Routes are tried in order; the first that matches wins.
type Route struct {
	Match    RouteMatch `yaml:"match"`
	Upstream string     `yaml:"upstream"` // a name in upstreams, or "default"
	Static   string     `yaml:"static"`   // serve files below this directory (nginx's root)
	// RewritePrefix replaces the matched path prefix before forwarding
	// (nginx's proxy_pass with a URI); empty leaves the path alone.
	RewritePrefix string `yaml:"rewrite_prefix"`
	// Session turns session work off on this route when false (default true).
	Session *bool `yaml:"session"`

	// The rest of nginx's vocabulary (contract section 15,
	// config/rules.go): other answers than an upstream or files, and
	// the rules a request passes on its way.
	Respond   *Respond    `yaml:"respond"`   // a fixed answer (nginx's return CODE TEXT)
	Redirect  *Redirect   `yaml:"redirect"`  // a redirect (return CODE URL)
	TryFiles  []string    `yaml:"try_files"` // with static: files tried in order, then "@upstream" or "=CODE"
	Headers   HeaderRules `yaml:"headers"`
	Allow     []string    `yaml:"allow"` // client addresses or CIDR ranges let in; any other is refused (403)
	Deny      []string    `yaml:"deny"`  // refused (403); checked before allow
	BasicAuth *BasicAuth  `yaml:"basic_auth"`
	RateLimit *RateLimit  `yaml:"rate_limit"`
}

// RouteMatch is what a route matches; a field left empty matches anything.
type RouteMatch struct {
	Host string `yaml:"host"` // exact, or "*.example.com" for its subdomains
	// Path is a prefix of the normalised path, or "= /path" (the whole
	// path), "~ REGEX" or "~* REGEX" (RE2, "~*" ignoring case).
	Path string `yaml:"path"`
}

// Sessions reports whether the route does session work.
func (r Route) Sessions() bool { return r.Session == nil || *r.Session }

// UpstreamNames returns "default" and then the named upstreams, sorted, so
// that /status and metrics list them in a stable order.
func (c *Config) UpstreamNames() []string {
	names := []string{DefaultUpstream}
	for n := range c.Upstreams {
		names = append(names, n)
	}
	sort.Strings(names[1:])
	return names
}

// UpstreamConfig returns the pool of a name: the top-level backends for
// "default".
func (c *Config) UpstreamConfig(name string) Upstream {
	if name == DefaultUpstream {
		return Upstream{Balancer: c.Balancer, Backends: c.Backends, Health: c.Health, Pipeline: c.Pipeline, MaxConns: c.MaxConns, FastCGI: c.FastCGI}
	}
	return c.Upstreams[name]
}

// fillUpstreams gives every upstream the top-level values it does not set
// itself: its balancer, max_conns, each health field and backend weights
// of 1.
func (c *Config) fillUpstreams() {
	for name, u := range c.Upstreams {
		p := "upstreams." + name
		if _, set := c.lines[p+".balancer"]; !set {
			u.Balancer = c.Balancer
		}
		if _, set := c.lines[p+".max_conns"]; !set {
			u.MaxConns = c.MaxConns
		}
		inherit := func(field string, set func()) {
			if _, ok := c.lines[p+".health."+field]; !ok {
				set()
			}
		}
		inherit("max_fails", func() { u.Health.MaxFails = c.Health.MaxFails })
		inherit("fail_timeout", func() { u.Health.FailTimeout = c.Health.FailTimeout })
		inherit("check_path", func() { u.Health.CheckPath = c.Health.CheckPath })
		inherit("check_interval", func() { u.Health.CheckInterval = c.Health.CheckInterval })
		for i := range u.Backends {
			if _, set := c.lines[fmt.Sprintf("%s.backends[%d].weight", p, i)]; !set {
				u.Backends[i].Weight = 1
			}
		}
		c.Upstreams[name] = u
	}
}

// catchAll reports whether some route without a host matches every path,
// so that the default pool is never used.
func (c *Config) catchAll() bool {
	for _, r := range c.Routes {
		if r.Match.Host == "" && (r.Match.Path == "" || r.Match.Path == "/") {
			return true
		}
	}
	return false
}

var upstreamNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
var hostRE = regexp.MustCompile(`^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)

// ValidRouteHost reports whether h, lower case, is what match.host takes:
// a host name, or "*." and a domain.
func ValidRouteHost(h string) bool { return hostRE.MatchString(h) }

// frontDoor checks upstreams, routes, error pages and real_ip_from.
func (v *validator) frontDoor() {
	c := v.c
	for _, name := range c.UpstreamNames()[1:] {
		p := "upstreams." + name
		u := c.Upstreams[name]
		if name == DefaultUpstream {
			v.errf(p, "upstreams: %q is the name of the top-level backends; choose another", name)
		} else if !upstreamNameRE.MatchString(name) {
			v.errf(p, "upstreams: %q is not a valid name (letters, digits, _ . -)", name)
		}
		v.oneOf(p+".balancer", u.Balancer, balancerPolicies()...)
		if len(u.Backends) == 0 {
			v.errf(p+".backends", "%s.backends: an upstream needs at least one backend", p)
		}
		v.backendList(p+".backends", u.Backends)
		v.healthOf(p+".health", u.Health)
	}
	for i, r := range c.Routes {
		v.route(fmt.Sprintf("routes[%d]", i), r)
	}
	// Sorted, so that the errors of entries on one line (a flow mapping)
	// come in the same order every time.
	for _, status := range slices.Sorted(maps.Keys(c.ErrorPages)) {
		file := c.ErrorPages[status]
		p := fmt.Sprintf("error_pages.%d", status)
		if status < 400 || status > 599 {
			v.errf(p, "error_pages: %d is not an error status (400 to 599)", status)
		}
		if _, err := os.ReadFile(file); err != nil {
			v.errf(p, "error_pages.%d: %v", status, err)
		}
	}
	for i, s := range c.RealIPFrom {
		if _, err := ParsePrefix(s); err != nil {
			v.errf(fmt.Sprintf("real_ip_from[%d]", i), "real_ip_from[%d]: %v", i, err)
		}
	}
}

func (v *validator) route(p string, r Route) {
	c := v.c
	switch {
	case r.actions() > 1:
		v.errf(p, "%s: a route names either upstream or static (or respond, redirect), not several", p)
	case r.Respond != nil || r.Redirect != nil:
	case r.Upstream == "" && r.Static == "":
		v.errf(p, "%s: a route needs upstream: NAME, static: DIRECTORY, respond or redirect", p)
	case r.Upstream != "":
		if _, ok := c.Upstreams[r.Upstream]; !ok && r.Upstream != DefaultUpstream {
			v.errf(p+".upstream", "%s.upstream: unknown upstream %q (define it under upstreams:)", p, r.Upstream)
		}
	default:
		if fi, err := os.Stat(r.Static); err != nil {
			v.errf(p+".static", "%s.static: %v", p, err)
		} else if !fi.IsDir() {
			v.errf(p+".static", "%s.static: %q is not a directory", p, r.Static)
		}
	}
	if h := r.Match.Host; h != "" && !hostRE.MatchString(strings.ToLower(h)) {
		v.errf(p+".match.host", "%s.match.host: %q is not a host name or *.domain", p, h)
	}
	v.routeRules(p, r) // config/rules.go
	if rw := r.RewritePrefix; rw != "" {
		if !strings.HasPrefix(rw, "/") {
			v.errf(p+".rewrite_prefix", "%s.rewrite_prefix %q must start with /", p, rw)
		}
		if r.Match.Path == "" || PathMatchKind(r.Match.Path) != "prefix" {
			v.errf(p+".rewrite_prefix", "%s.rewrite_prefix needs a prefix match.path: the prefix it replaces", p)
		}
	}
}

// ParsePrefix parses a real_ip_from entry: an address or a CIDR range.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR range", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR range", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
