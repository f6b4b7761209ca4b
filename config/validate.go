package config

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"sessionproxy/balancer"
	"sessionproxy/sessionstore"
)

// maxItemSize keeps a session under memcached's default 1 MiB item limit with
// room for the key and the item header.
const maxItemSize = 1<<20 - 4<<10

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
	if s.MaxSize < 64 || s.MaxSize > maxItemSize {
		v.errf("session.max_size", "session.max_size must be between 64 and %d bytes (memcached's item limit), got %d", maxItemSize, s.MaxSize)
	}
	v.oneOf("session.store_down", s.StoreDown, "reject", "new")
	v.sessionLifetime()
	v.principal()
	if lc := s.LocalCache; lc.Size != 0 && lc.Size < minLocalCache {
		v.errf("session.local_cache.size", "session.local_cache.size must be 0 (off) or at least 512KiB, got %d", lc.Size)
	}
	// The store owns which of its settings go together: config asks it,
	// and says where in the file each answer points.
	o := sessionstore.Options{Async: s.Write == "async", LocalSize: int(s.LocalCache.Size), LocalTTL: s.LocalCache.TTL.Std()}
	o.Memcached.Nodes = make([]sessionstore.Node, len(s.Memcached.Nodes))
	o.Redis.Addrs, o.Redis.ClientCache, o.Redis.WaitReplicas = s.Redis.Addrs, s.Redis.ClientCache, s.Redis.WaitReplicas
	err := o.Check()
	v.memcached()
	if errors.Is(err, sessionstore.ErrTwoStores) {
		v.errf("session.redis.addrs", "session.redis.addrs and session.memcached.nodes exclude each other: choose one shared store")
	}
	v.redis()
	switch {
	case errors.Is(err, sessionstore.ErrAsyncNeedsLocal):
		v.errf("session.write", "session.write: %v", err)
	case errors.Is(err, sessionstore.ErrAsyncClientCache):
		v.errf("session.write", "session.write: async needs the hot tier as the one authoritative copy, which session.redis.client_cache (several proxies writing) rules out: use sync, or client_cache: false")
	case errors.Is(err, sessionstore.ErrAsyncWaitReplicas):
		v.errf("session.write", "session.write: async answers a write before it reaches redis, which session.redis.wait_replicas rules out: use sync, or wait_replicas: 0")
	case errors.Is(err, sessionstore.ErrNowhere):
		v.errf("session.local_cache.size", "session.local_cache.size is 0 and there are no memcached nodes: sessions would be kept nowhere")
	}
}

func (v *validator) memcached() {
	m := v.c.Session.Memcached
	nodes, err := m.NodeList()
	if es, ok := err.(Errors); ok {
		for _, e := range es {
			e.Line = v.c.Line(e.path)
			v.errs = append(v.errs, e)
		}
	}
	regular := 0
	for _, n := range nodes {
		if !n.Failover {
			regular++
		}
	}
	if len(nodes) > 0 && regular == 0 {
		v.errf("session.memcached.failover_nodes", "session.memcached: every node is a failover node; at least one must be regular")
	}
	if m.Replicas < 1 {
		v.errf("session.memcached.replicas", "session.memcached.replicas must be 1 or more, got %d", m.Replicas)
	}
	if len(m.KeyPrefix) > 64 || strings.IndexFunc(m.KeyPrefix, badKeyRune) >= 0 {
		v.errf("session.memcached.key_prefix", "session.memcached.key_prefix %q: at most 64 printable characters without spaces", m.KeyPrefix)
	}
	v.positive("session.memcached.timeout", m.Timeout)
	if m.MaxIdleConns < 1 {
		v.errf("session.memcached.max_idle_conns", "session.memcached.max_idle_conns must be 1 or more")
	}
	v.positive("session.memcached.probe_interval", m.ProbeInterval)
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

func badKeyRune(r rune) bool { return r <= ' ' || r >= 0x7f }

// NodeList parses Nodes and marks the failover ones. Its error is Errors.
func (m Memcached) NodeList() ([]sessionstore.Node, error) {
	var es Errors
	var nodes []sessionstore.Node
	ids := map[string]int{}
	for i, s := range m.Nodes {
		n, err := ParseNode(s)
		if err != nil {
			es = append(es, nodeErr(fmt.Sprintf("session.memcached.nodes[%d]", i), "%v", err))
			continue
		}
		if _, dup := ids[n.ID]; dup {
			es = append(es, nodeErr(fmt.Sprintf("session.memcached.nodes[%d]", i), "node %q is listed twice", n.ID))
			continue
		}
		ids[n.ID] = len(nodes)
		nodes = append(nodes, n)
	}
	for i, id := range m.FailoverNodes {
		j, ok := ids[id]
		if !ok {
			es = append(es, nodeErr(fmt.Sprintf("session.memcached.failover_nodes[%d]", i), "%q is not the id of a node in session.memcached.nodes", id))
			continue
		}
		nodes[j].Failover = true
	}
	if len(es) > 0 {
		return nodes, es
	}
	return nodes, nil
}

func nodeErr(path, format string, args ...any) Error {
	return Error{Msg: path + ": " + fmt.Sprintf(format, args...), path: path}
}

// ParseNode parses "id:host:port" or "host:port" (the ID is then the
// address). IPv6 hosts go in brackets: "n1:[::1]:11211".
func ParseNode(s string) (sessionstore.Node, error) {
	id, addr := "", s
	if !strings.HasPrefix(s, "[") {
		if i := strings.IndexByte(s, ':'); i >= 0 && strings.Count(s, ":") == 2 || (i >= 0 && strings.Contains(s[i+1:], "[")) {
			id, addr = s[:i], s[i+1:]
		}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return sessionstore.Node{}, fmt.Errorf("%q is not host:port or id:host:port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return sessionstore.Node{}, fmt.Errorf("%q has an invalid port", s)
	}
	if id == "" {
		id = addr
	}
	return sessionstore.Node{ID: id, Addr: addr}, nil
}
