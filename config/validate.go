package config

import (
	"cmp"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	"sessionproxy/balancer"
	"sessionproxy/sessionstore"
)

// minLocalCache is freecache's own minimum; smaller sizes are raised to it.
const minLocalCache = 512 << 10

// Validate checks every value and returns Errors naming each problem and,
// when the value came from the file, its line. It does not stop at the first.
func (c *Config) Validate() error {
	v := validator{c: c}
	v.addr("listen", c.Listen, false)
	v.addr("admin", c.Admin, true)
	if c.Admin != "" && c.AdminToken == "" && !LoopbackAddr(c.Admin) {
		v.errf("admin", "admin: %q is not on loopback: set admin_token (clients then send Authorization: Bearer <token>)", c.Admin)
	}
	v.oneOf("balancer", c.Balancer, balancer.Policies...)
	v.backends()
	v.health()
	t := c.Timeouts
	v.positive("timeouts.connect", t.Connect)
	v.positive("timeouts.response", t.Response)
	v.positive("timeouts.client_read", t.ClientRead)
	v.positive("timeouts.client_idle", t.ClientIdle)
	v.positive("timeouts.shutdown", t.Shutdown)
	v.positive("timeouts.tunnel_idle", t.TunnelIdle)
	v.positive("timeouts.read_idle", t.ReadIdle)
	if c.Retries < 0 || c.Retries > 10 {
		v.errf("retries", "retries must be between 0 and 10, got %d", c.Retries)
	}
	if c.MaxBody <= 0 {
		v.errf("max_body", "max_body must be above 0")
	}
	v.accessLog()
	v.session()
	v.frontDoor()
	v.pipelines()
	v.fastcgi()
	v.limits()
	v.tls()
	v.protocols()
	v.compression()
	if len(v.errs) > 0 {
		// The checks run by topic, not down the file: list the errors in
		// the order a reader meets them (those without a line, from flags
		// or keys left out, first, as Format puts them at line 1). The
		// sort is stable, so errors on one line keep the checks' order,
		// which never depends on map iteration.
		slices.SortStableFunc(v.errs, func(a, b Error) int { return cmp.Compare(a.Line, b.Line) })
		return v.errs
	}
	return nil
}

type validator struct {
	c    *Config
	errs Errors
}

func (v *validator) errf(path, format string, args ...any) {
	v.errs = append(v.errs, Error{Line: v.c.Line(path), Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) addr(path, s string, optional bool) {
	if s == "" && optional {
		return
	}
	if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
		v.errf(path, "%s: %q is not a host:port address", path, s)
	}
}

func (v *validator) oneOf(path, s string, allowed ...string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	v.errf(path, "%s: unknown value %q (want %s)", path, s, strings.Join(allowed, " | "))
}

func (v *validator) positive(path string, d Duration) {
	if d <= 0 {
		v.errf(path, "%s must be above 0", path)
	}
}

func (v *validator) backends() {
	c := v.c
	if len(c.Backends) == 0 {
		if c.catchAll() {
			return // every request has a route: the default pool is never used
		}
		v.errf("backends", "no backends: add a backends: list with at least one url, or pass -backend URL")
		return
	}
	v.backendList("backends", c.Backends)
}

// backendList checks the backends of one pool; path is its field path.
func (v *validator) backendList(path string, list []Backend) {
	seen := map[string]bool{}
	primaries := 0
	for i, b := range list {
		p := fmt.Sprintf("%s[%d]", path, i)
		if _, err := balancer.ParseBackendURL(b.URL); err != nil {
			v.errf(p+".url", "%s.url: %v", p, err)
		}
		if seen[b.URL] {
			v.errf(p+".url", "%s.url: %q is listed twice", p, b.URL)
		}
		seen[b.URL] = true
		if b.Weight < 1 {
			v.errf(p+".weight", "%s.weight must be 1 or more, got %d", p, b.Weight)
		}
		if !b.Backup {
			primaries++
		}
	}
	if len(list) > 0 && primaries == 0 {
		v.errf(path, "%s: every backend is a backup: at least one must have backup: false", path)
	}
}

func (v *validator) health() { v.healthOf("health", v.c.Health) }

// healthOf checks one pool's health settings; path is their field path.
func (v *validator) healthOf(path string, h Health) {
	if h.MaxFails < 0 {
		v.errf(path+".max_fails", "%s.max_fails must be 0 (off) or more, got %d", path, h.MaxFails)
	}
	v.positive(path+".fail_timeout", h.FailTimeout)
	if h.CheckPath != "" && !strings.HasPrefix(h.CheckPath, "/") {
		v.errf(path+".check_path", "%s.check_path %q must start with /", path, h.CheckPath)
	}
	v.positive(path+".check_interval", h.CheckInterval)
}

func balancerPolicies() []string { return balancer.Policies }

var cookieNameRE = regexp.MustCompile(`^[!#$%&'*+\-.^_` + "`" + `|~0-9A-Za-z]+$`)

func (v *validator) session() {
	s := v.c.Session
	if !cookieNameRE.MatchString(s.Cookie) {
		v.errf("session.cookie", "session.cookie %q is not a valid cookie name", s.Cookie)
	}
	v.oneOf("session.cookie_same_site", s.CookieSameSite, "lax", "strict", "none")
	if s.CookieSameSite == "none" && !s.CookieSecure {
		v.errf("session.cookie_same_site", "session.cookie_same_site: none needs cookie_secure: true (browsers drop such cookies otherwise)")
	}
	if s.TTL < Duration(time.Second) {
		v.errf("session.ttl", "session.ttl must be at least 1s")
	}
	if s.Ignore != "" {
		if _, err := regexp.Compile(s.Ignore); err != nil {
			v.errf("session.ignore", "session.ignore: %v", err)
		}
	}
	v.oneOf("session.create", s.Create, "on_write", "always")
	v.oneOf("session.write", s.Write, "sync", "async")
	if s.MaxSize < 64 || s.MaxSize > sessionstore.SizeLimit {
		v.errf("session.max_size", "session.max_size must be between 64 and %d bytes (%s), got %d", sessionstore.SizeLimit, sessionstore.SizeLimitReason, s.MaxSize)
	}
	v.oneOf("session.store_down", s.StoreDown, "reject", "new")
	v.sessionLifetime()
	v.principal()
	if lc := s.LocalCache; lc.Size != 0 && lc.Size < minLocalCache {
		v.errf("session.local_cache.size", "session.local_cache.size must be 0 (off) or at least 512KiB, got %d", lc.Size)
	}
	v.stores()
}

// LoopbackAddr reports whether the host of a host:port address is on
// loopback: 127.0.0.0/8, ::1 or localhost. An empty host (":9090") or
// 0.0.0.0 listens on every interface, so it is not.
func LoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
