package nginximport

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"sessionproxy/config"
)

// pool is one upstream of the output: an nginx upstream block, or the
// address a proxy_pass names directly.
type pool struct {
	name string // sessionproxy's name; "default" for the top-level backends
	// fcgiRoot, fcgiIndex and fcgiScript are the pool's fastcgi: when
	// its backends are FastCGI servers (fastcgi_pass).
	fcgiRoot, fcgiIndex, fcgiScript string
	origin                          string // what it came from, for the output's comment
	balancer                        string
	backends                        []backend
	// nginx sets these per server, sessionproxy per pool: the last seen.
	maxFails    *int
	failTimeout *time.Duration
}

type backend struct {
	url    string
	weight int
	backup bool
}

// route is one route of the output, in order.
type route struct {
	host, path string // path as section 15 writes it: "/prefix", "= /exact", "~ re", "~* re"
	pool       *pool
	static     string
	rewrite    string
	at         *Directive

	respond  *respond
	redirect *redirect
	tryFiles []string // "@" stands for "@" + fallback's name
	fallback *pool
	headers  headerRules
	allow    []string
	deny     []string
	auth     *basicAuth
	rate     *rateLimit
}

type respond struct {
	status int
	body   string
}

type redirect struct {
	to     string
	status int
}

type headerRules struct {
	respSet, respAdd, reqSet [][2]string
	respRemove, reqRemove    []string
}

func (h headerRules) empty() bool {
	return len(h.respSet)+len(h.respAdd)+len(h.reqSet)+len(h.respRemove)+len(h.reqRemove) == 0
}

type basicAuth struct{ realm, htpasswd string }

type rateLimit struct {
	rate  string
	burst int
}

// plain reports whether the route only sends requests to its pool, so
// that the top-level backends can stand for it.
func (r route) plain() bool {
	return r.pool != nil && r.rewrite == "" && r.respond == nil && r.redirect == nil && r.tryFiles == nil &&
		r.headers.empty() && r.allow == nil && r.deny == nil && r.auth == nil && r.rate == nil
}

type certPair struct{ cert, key string }

func (t *translator) build() error {
	t.errorTargets = map[*location]bool{}
	t.chooseListeners()
	included := t.includedServers()
	t.redirects(included)
	def := t.defaultServer(included)
	t.collectErrorPages(included)
	t.collectCerts(included, def)

	type named struct {
		host string
		s    *server
	}
	var exact, wild []named
	owner := map[string]*server{}
	for _, s := range included {
		if s == def || s.redirect != nil && len(s.locations) == 0 {
			continue
		}
		any := false
		for _, nd := range s.names {
			for _, n := range nd.Args {
				for _, h := range t.hostsOf(nd, n) {
					any = true
					if prev := owner[h]; prev != nil && prev != s {
						t.omit(nd, "server_name %s: already routed to the server at %s:%d, which comes first: sessionproxy's routes do not tell the plain listener from TLS", h, prev.d.File, prev.d.Line)
						continue
					}
					owner[h] = s
					if strings.HasPrefix(h, "*.") {
						wild = append(wild, named{h, s})
					} else {
						exact = append(exact, named{h, s})
					}
				}
			}
		}
		if !any {
			t.omit(s.d, "server: not translated (no server_name that routes can match, and not the default server)")
		}
	}
	// nginx picks a server by exact name, then by the longest wildcard
	sort.SliceStable(wild, func(i, j int) bool { return len(wild[i].host) > len(wild[j].host) })
	for _, n := range append(exact, wild...) {
		t.serverRoutes(n.s, n.host)
	}
	if def != nil {
		t.serverRoutes(def, "")
	}
	// The default server's last route, when it only sends every request
	// to a pool, is the top-level backends; else no request reaches them.
	if n := len(t.routes); n > 0 {
		if r := t.routes[n-1]; r.host == "" && r.path == "/" && r.plain() {
			t.defaultPool = r.pool
			t.defaultPool.name = config.DefaultUpstream
			t.routes = t.routes[:n-1]
		}
	}
	for _, d := range t.upstreams {
		// A name defined twice is the last block's, as in blocks.
		if name := d.Args[0]; t.pools[name] == nil && t.blocks[name] == d {
			t.note(d, "upstream %s: not translated (no translated proxy_pass uses it)", name)
		}
	}
	if len(t.routes) == 0 && t.defaultPool == nil {
		return ErrNothing
	}
	return nil
}

// serves reports whether s proxies or serves files.
func (s *server) serves() bool {
	return s.redirect == nil && (len(s.locations) > 0 || s.set.root != nil || s.ret != nil)
}

func normalAddr(a string) string {
	for _, any := range []string{"0.0.0.0:", "[::]:", "*:"} {
		if strings.HasPrefix(a, any) {
			return ":" + a[len(any):]
		}
	}
	return a
}

// chooseListeners picks the plain and the TLS address most servers
// listen on: sessionproxy has one of each.
func (t *translator) chooseListeners() {
	count := map[bool]map[string]int{false: {}, true: {}}
	var order []listen
	for _, s := range t.servers {
		if !s.serves() && s.redirect == nil {
			continue
		}
		for _, l := range s.listens {
			a := normalAddr(l.addr)
			if count[l.ssl][a] == 0 {
				order = append(order, listen{addr: a, ssl: l.ssl})
			}
			count[l.ssl][a]++
		}
	}
	for _, l := range order {
		p := &t.plain
		if l.ssl {
			p = &t.tls
		}
		if *p == "" || count[l.ssl][l.addr] > count[l.ssl][*p] {
			*p = l.addr
		}
	}
}

// includedServers returns the servers that listen on a chosen address
// and notes the listen directives and servers that are left out.
func (t *translator) includedServers() []*server {
	var out []*server
	for _, s := range t.servers {
		in := false
		for _, l := range s.listens {
			a := normalAddr(l.addr)
			if (!l.ssl && a == t.plain) || (l.ssl && a == t.tls) {
				in = true
			} else if l.d != s.d {
				t.omit(l.d, "%s: not translated (sessionproxy has one plain and one TLS listener: %s)", show(l.d), t.listenersText())
			}
		}
		for _, l := range s.quic {
			// HTTP/3 serves the same routes as the TLS listener: it
			// changes the transport, not who sees what.
			switch {
			case in && t.tls != "" && normalAddr(l.addr) == t.tls && t.http3Off:
				t.note(l.d, "%s: not translated (http3 off)", show(l.d))
			case in && t.tls != "" && normalAddr(l.addr) == t.tls:
				t.http3 = true
				t.note(l.d, "%s: translated as http3: true (HTTP/3 on listen_tls's UDP port, advertised with Alt-Svc)", show(l.d))
			default:
				t.omit(l.d, "%s: not translated (sessionproxy serves HTTP/3 only on listen_tls's port: %s)", show(l.d), t.listenersText())
			}
		}
		if in {
			out = append(out, s)
		} else if s.serves() || s.redirect != nil {
			t.omit(s.d, "server: not translated (it listens on none of %s)", t.listenersText())
		} else {
			t.note(s.d, "server: not translated (neither location nor root)")
		}
	}
	return out
}

func (t *translator) listenersText() string {
	var parts []string
	if t.plain != "" {
		parts = append(parts, "listen "+t.plain)
	}
	if t.tls != "" {
		parts = append(parts, "listen_tls "+t.tls)
	}
	return strings.Join(parts, " and ")
}

// defaultServer is nginx's default server: the one marked default_server,
// else the first. Its routes match every host.
func (t *translator) defaultServer(included []*server) *server {
	plain, tls := t.listenerDefault(included, false), t.listenerDefault(included, true)
	switch {
	case plain == nil:
		return tls
	case tls == nil || plain == tls || t.redirectTLS:
		return plain
	}
	t.omit(plain.d, "server: the default server of listen %s, but the server at line %d is listen_tls %s's: sessionproxy's routes have one default server", t.plain, tls.d.Line, t.tls)
	return tls
}

// listenerDefault is the default server of the plain or the TLS listener:
// the one marked default_server there, else the first there.
func (t *translator) listenerDefault(included []*server, ssl bool) *server {
	want := t.plain
	if ssl {
		want = t.tls
	}
	var first *server
	for _, s := range included {
		if !s.serves() {
			continue
		}
		for _, l := range s.listens {
			if l.ssl != ssl || normalAddr(l.addr) != want {
				continue
			}
			if l.def {
				return s
			}
			if first == nil {
				first = s
			}
		}
	}
	return first
}

// hostsOf turns one server_name into route hosts.
func (t *translator) hostsOf(d *Directive, name string) []string {
	n := strings.ToLower(name)
	switch {
	case n == "" || n == "_":
		return nil
	case strings.HasPrefix(n, "~"):
		t.omit(d, "server_name %s: not translated (regular expressions; route hosts are exact or *.domain)", name)
		return nil
	case strings.HasPrefix(n, "."):
		return t.validHosts(d, name, n[1:], "*"+n)
	case strings.Contains(strings.TrimPrefix(n, "*."), "*") || strings.Contains(n, "$"):
		t.omit(d, "server_name %s: not translated (route hosts are exact or *.domain)", name)
		return nil
	}
	return t.validHosts(d, name, n)
}

func (t *translator) validHosts(d *Directive, name string, hosts ...string) []string {
	for _, h := range hosts {
		if !config.ValidRouteHost(h) {
			t.omit(d, "server_name %s: not translated (not a host name)", name)
			return nil
		}
	}
	return hosts
}

// firstHost reports whether host is the first route host of s, so that
// a location's notes are written once, not once per name.
func (t *translator) firstHost(s *server, host string) bool {
	for _, nd := range s.names {
		for _, n := range nd.Args {
			n = strings.TrimPrefix(strings.ToLower(n), ".")
			if config.ValidRouteHost(n) {
				return n == host
			}
		}
	}
	return true
}

func (t *translator) rootDir(d *Directive, note bool) string { return t.dirOf(arg(d, 0), d, note) }

// dirOf checks a root or alias directory.
func (t *translator) dirOf(dir string, d *Directive, note bool) string {
	if strings.Contains(dir, "$") {
		if note {
			t.note(d, "%s: not translated (variables)", show(d))
		}
		return ""
	}
	if dir == "" {
		dir = "/"
	}
	if !path.IsAbs(dir) {
		if note {
			t.note(d, "%s: relative to nginx's prefix in nginx, to sessionproxy's working directory here: make it absolute", show(d))
		}
		return dir
	}
	return path.Clean(dir)
}

// poolFor returns the pool of a proxy_pass target, making it the first
// time: an upstream block's when the host names one (without a port, as
// nginx requires), else a pool of the one address.
func (t *translator) poolFor(tg target, at *Directive) *pool {
	key := tg.key
	block := t.blocks[tg.host]
	if tg.unix {
		block = nil
	}
	if block != nil {
		key = tg.host
	}
	if tg.scheme == "fastcgi" {
		key = "fastcgi " + key + " " + tg.fcgiRoot + " " + tg.fcgiIndex + " " + tg.fcgiScript // one pool per script rule
	}
	if p := t.pools[key]; p != nil {
		return p
	}
	p := &pool{balancer: "round_robin"}
	if block != nil {
		p.name = t.uniqueName(tg.host)
		if tg.scheme == "fastcgi" {
			p.fcgiRoot, p.fcgiIndex, p.fcgiScript = tg.fcgiRoot, tg.fcgiIndex, tg.fcgiScript
		}
		p.origin = fmt.Sprintf("nginx upstream %s (%s:%d)", tg.host, block.File, block.Line)
		t.upstreamBlock(p, block, tg.scheme)
	} else {
		n := strings.NewReplacer(":", "-", "[", "", "]", "").Replace(tg.host)
		if tg.unix {
			n = strings.TrimSuffix(path.Base(tg.host), ".sock")
		}
		p.name = t.uniqueName(n)
		p.origin = fmt.Sprintf("%s %s (%s:%d)", at.Name, arg(at, 0), at.File, at.Line)
		p.backends = []backend{{url: tg.url(), weight: 1}}
		p.fcgiRoot, p.fcgiIndex, p.fcgiScript = tg.fcgiRoot, tg.fcgiIndex, tg.fcgiScript
	}
	t.pools[key] = p
	t.poolOrder = append(t.poolOrder, p)
	return p
}

// uniqueName makes an upstream name sessionproxy accepts from an nginx one.
func (t *translator) uniqueName(n string) string {
	b := []byte(n)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			b[i] = '_'
		}
	}
	n = string(b)
	if len(n) > 60 {
		n = n[:60]
	}
	if n == "" || n == config.DefaultUpstream {
		n = "pool"
	}
	name := n
	for i := 2; t.nameTaken(name); i++ {
		name = n + "-" + strconv.Itoa(i)
	}
	return name
}

func (t *translator) nameTaken(n string) bool {
	for _, p := range t.poolOrder {
		if p.name == n {
			return true
		}
	}
	return false
}

func (t *translator) upstreamBlock(p *pool, up *Directive, scheme string) {
	for _, d := range up.Block {
		if !t.validUTF8(d) {
			continue
		}
		switch d.Name {
		case "server":
			t.upstreamServer(p, d, scheme)
		case "least_conn":
			p.balancer = "least_conn"
		case "ip_hash", "hash", "sticky", "random":
			t.note(d, "%s: not translated (sessionproxy shares sessions between backends, so requests need no stickiness; round_robin is used)", show(d))
		case "keepalive", "keepalive_timeout", "keepalive_requests", "keepalive_time":
			t.note(d, "%s: not needed (sessionproxy always keeps connections to backends alive)", show(d))
		default:
			t.skip(d, "")
		}
	}
	weighted := false
	for _, b := range p.backends {
		weighted = weighted || b.weight != 1
	}
	if weighted && p.balancer == "round_robin" {
		p.balancer = "weighted" // nginx's round robin honours weights
	}
}

func (t *translator) upstreamServer(p *pool, d *Directive, scheme string) {
	addr := arg(d, 0)
	var url string
	switch {
	case addr == "":
		t.skip(d, "")
		return
	case strings.HasPrefix(addr, "unix:"):
		sock := addr[len("unix:"):]
		if !path.IsAbs(sock) || strings.ContainsAny(sock, "?#$ ") {
			t.skip(d, "not a socket path")
			return
		}
		switch scheme {
		case "http":
			url = "unix:" + sock
		case "fastcgi":
			url = "fastcgi+unix:" + sock
		default:
			t.skip(d, "TLS over a unix socket")
			return
		}
	case strings.ContainsAny(addr, "/?#@$ "):
		t.skip(d, "not an address")
		return
	default:
		url = scheme + "://" + addr
	}
	b := backend{url: url, weight: 1}
	for _, param := range d.Args[1:] {
		name, value, _ := strings.Cut(param, "=")
		switch {
		case param == "backup":
			b.backup = true
		case param == "down":
			t.note(d, "%s: left out (marked down)", show(d))
			return
		case name == "weight":
			if w, err := strconv.Atoi(value); err == nil && w > 0 && w <= 1000 {
				b.weight = w
			} else {
				t.note(d, "weight=%s: not translated (not a weight from 1 to 1000)", value)
			}
		case name == "max_fails":
			if n, err := strconv.Atoi(value); err == nil && n >= 0 && n <= 1000 {
				if p.maxFails != nil && *p.maxFails != n {
					t.note(d, "max_fails=%s: sessionproxy has one max_fails per upstream: the last one seen is used", value)
				}
				p.maxFails = &n
			} else {
				t.note(d, "max_fails=%s: not translated", value)
			}
		case name == "fail_timeout":
			if dur, err := nginxDuration(value); err == nil && dur == 0 {
				t.note(d, "fail_timeout=0: not translated (sessionproxy's fail_timeout is above 0; its default is kept)")
			} else if err == nil {
				if p.failTimeout != nil && *p.failTimeout != dur {
					t.note(d, "fail_timeout=%s: sessionproxy has one fail_timeout per upstream: the last one seen is used", value)
				}
				p.failTimeout = &dur
			} else {
				t.note(d, "fail_timeout=%s: not translated (%v)", value, err)
			}
		default:
			t.note(d, "server parameter %s: not translated", param)
		}
	}
	p.backends = append(p.backends, b)
}

// collectErrorPages turns error_page URIs into files through the root or
// alias of the location that would serve them.
func (t *translator) collectErrorPages(included []*server) {
	t.errorPages, t.errorPageAt = map[int]string{}, map[int]*Directive{}
	done := map[*Directive]bool{}
	for _, s := range included {
		for _, d := range s.set.errorPages {
			if done[d] {
				continue // inherited from http by several servers
			}
			done[d] = true
			t.errorPage(s, d)
		}
	}
}

func (t *translator) errorPage(s *server, d *Directive) {
	if len(d.Args) < 2 {
		t.pageNote(d, "")
		return
	}
	uri := d.Args[len(d.Args)-1]
	var codes []int
	for _, a := range d.Args[:len(d.Args)-1] {
		if strings.HasPrefix(a, "=") {
			t.note(d, "%s: the answer keeps its status (%s not translated)", show(d), a)
			continue
		}
		c, err := strconv.Atoi(a)
		if err != nil || c < 400 || c > 599 {
			t.pageNote(d, "not a status from 400 to 599: "+a)
			return
		}
		codes = append(codes, c)
	}
	file, why := t.errorFile(s, uri)
	if file == "" {
		t.pageNote(d, why)
		return
	}
	for _, c := range codes {
		if prev, ok := t.errorPages[c]; ok && prev != file {
			t.note(d, "error_page %d: sessionproxy has one page per status: %s from %s:%d is kept", c, prev, t.errorPageAt[c].File, t.errorPageAt[c].Line)
			continue
		}
		t.errorPages[c], t.errorPageAt[c] = file, d
	}
}

// pageNote names an error_page left out: the page shown for an error,
// which cannot change who sees what.
func (t *translator) pageNote(d *Directive, why string) {
	t.note(d, "%s: not translated (%s); the proxy's own error pages stay plain", show(d), why)
}

func (t *translator) errorFile(s *server, uri string) (string, string) {
	if !strings.HasPrefix(uri, "/") || strings.Contains(uri, "$") || strings.ContainsAny(uri, "?#") {
		return "", "only a local page /FILE becomes error_pages"
	}
	var best *location
	for _, l := range s.locations {
		switch {
		case l.mod == "=" && l.path == uri:
			best = l
		case (l.mod == "" || l.mod == "^~") && strings.HasPrefix(uri, l.path) && (best == nil || best.mod != "=" && len(l.path) > len(best.path)):
			best = l
		}
	}
	root, rest := s.set.root, uri
	if best != nil {
		if best.mod == "=" {
			t.errorTargets[best] = true
		}
		switch {
		case best.alias != nil:
			if best.mod == "=" {
				return arg(best.alias, 0), ""
			}
			return strings.TrimSuffix(arg(best.alias, 0), "/") + "/" + strings.TrimPrefix(uri[len(best.path):], "/"), ""
		case best.pass != nil:
			return "", "the page comes from a backend"
		default:
			root = best.root
		}
	}
	if root == nil {
		return "", "no root serves " + uri
	}
	return strings.TrimSuffix(arg(root, 0), "/") + rest, ""
}

// collectCerts gathers the certificate pairs of the servers on the TLS
// listener, the default server's first: it is the pair for names no
// certificate carries.
func (t *translator) collectCerts(included []*server, def *server) {
	if t.tls == "" {
		return
	}
	order := append([]*server(nil), included...)
	sort.SliceStable(order, func(i, j int) bool { return order[i] == def && order[j] != def })
	seen := map[certPair]bool{}
	for _, s := range order {
		onTLS := false
		for _, l := range s.listens {
			onTLS = onTLS || l.ssl && normalAddr(l.addr) == t.tls
		}
		if !onTLS {
			continue
		}
		if s.set.cert == nil || s.set.key == nil {
			t.note(s.d, "server: listens with ssl but has no ssl_certificate and ssl_certificate_key")
			continue
		}
		p := certPair{arg(s.set.cert, 0), arg(s.set.key, 0)}
		if strings.Contains(p.cert+p.key, "$") || strings.HasPrefix(p.key, "engine:") || strings.HasPrefix(p.cert, "data:") {
			t.skip(s.set.cert, "certificates are files")
			continue
		}
		if !seen[p] {
			seen[p] = true
			t.certs = append(t.certs, p)
		}
	}
}

// redirects turns servers that only send plain HTTP to HTTPS into
// redirect_to_https.
func (t *translator) redirects(included []*server) {
	for _, s := range included {
		if s.redirect == nil {
			continue
		}
		switch {
		case t.tls == "":
			t.skip(s.redirect, "no TLS listener to redirect to")
		case len(s.locations) > 0:
			t.skip(s.redirect, "redirect_to_https redirects every request; this server also has locations")
		default:
			t.redirectTLS = true
			t.note(s.redirect, "%s: translated as redirect_to_https: true (308 to listen_tls for every request on the plain listener)", show(s.redirect))
		}
	}
	if !t.redirectTLS {
		return
	}
	for _, s := range included {
		onTLS := false
		for _, l := range s.listens {
			onTLS = onTLS || l.ssl && normalAddr(l.addr) == t.tls
		}
		if s.serves() && !onTLS {
			t.note(s.d, "server: listens on plain HTTP only, but redirect_to_https sends every plain request to HTTPS, where its routes answer")
		}
	}
}
