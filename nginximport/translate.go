package nginximport

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"sessionproxy/config"
)

// Note names something of the nginx configuration that the translation
// left out or translated with a difference, at its file and line.
type Note struct {
	File string
	Line int
	Msg  string
	// Omitted says that something of the nginx file that could change who
	// sees what was left out: the translation must not be used (section 15:
	// exit status 2). A Note without it is a difference worth knowing or
	// a directive on the documented harmless list (docs/migrating.md).
	Omitted bool
}

// String returns "FILE:LINE: message", as compilers and nginx -t write.
func (n Note) String() string { return fmt.Sprintf("%s:%d: %s", n.File, n.Line, n.Msg) }

// Result is a translation: the sessionproxy configuration and what it
// could not carry over.
type Result struct {
	YAML  string
	Notes []Note // in the order the directives appear
}

// Complete reports whether nothing that matters was left out: only then
// may the YAML be used.
func (r *Result) Complete() bool {
	for _, n := range r.Notes {
		if n.Omitted {
			return false
		}
	}
	return true
}

// ErrNothing is returned for a configuration with no server that proxies
// or serves files: there is nothing to translate.
var ErrNothing = errors.New("nginximport: no server with proxy_pass or root: nothing to translate")

// Translate turns parsed nginx directives (Parse, ParseFile) into a
// sessionproxy configuration (CONTRACT sections 9 and 15); source names
// the nginx file in the output's header comment. Every directive it does
// not translate, or translates with a difference worth knowing, is a
// Note; the YAML may be used only when the Result is Complete, since an
// omitted directive could have kept someone from seeing something.
func Translate(source string, ds []*Directive) (*Result, error) {
	t := &translator{pools: map[string]*pool{}, blocks: map[string]*Directive{}}
	t.misplacedBlocks(ds)
	t.top(ds)
	err := t.build()
	var yaml string
	if err == nil {
		yaml = t.yaml(source)
	}
	return &Result{YAML: yaml, Notes: t.sortedNotes()}, err
}

// misplacedBlocks omits each directive with a block that nginx takes
// with none: nginx refuses such a file ("directive is not terminated by
// ;"), and a server_name or proxy_pass read for its arguments alone, its
// block dropped, would route what nginx never served (FuzzTranslate:
// "server_name x { ... }" made its server the default one's route).
func (t *translator) misplacedBlocks(ds []*Directive) {
	for _, d := range ds {
		if d.HasBlock && !takesBlock(d.Name) {
			t.omit(d, "%s takes no block in nginx (nginx refuses the file: a \";\" is missing)", d.Name)
		}
		t.misplacedBlocks(d.Block)
	}
}

// blockDirectives are the directives nginx's own modules declare with a
// block (NGX_CONF_BLOCK); a module's "..._block" directives (ngx_lua's
// content_by_lua_block and the like) take one too.
var blockDirectives = map[string]bool{
	"http": true, "server": true, "location": true, "upstream": true,
	"events": true, "if": true, "limit_except": true, "map": true,
	"geo": true, "split_clients": true, "types": true, "stream": true,
	"mail": true, "match": true, "charset_map": true,
}

// takesBlock reports whether nginx accepts a block after the directive
// name.
func takesBlock(name string) bool {
	return blockDirectives[name] || strings.HasSuffix(name, "_block")
}

// sortedNotes puts the notes in file order: files as they were first
// named, lines within each.
func (t *translator) sortedNotes() []Note {
	rank := map[string]int{}
	for _, n := range t.notes {
		if _, ok := rank[n.File]; !ok {
			rank[n.File] = len(rank)
		}
	}
	sort.SliceStable(t.notes, func(i, j int) bool {
		a, b := t.notes[i], t.notes[j]
		if rank[a.File] != rank[b.File] {
			return rank[a.File] < rank[b.File]
		}
		return a.Line < b.Line
	})
	return t.notes
}

// settings are what an http, server or location block passes on to the
// blocks inside it. A list (allow/deny, add_header, proxy_set_header,
// limit_req) set in a block replaces the inherited one, as in nginx.
type settings struct {
	root       *Directive
	cert, key  *Directive
	errorPages []*Directive
	index      *Directive
	access     []*Directive // allow and deny, in order
	authBasic  *Directive
	authFile   *Directive
	limitReq   []*Directive
	addHeader  []*Directive // add_header, more_set_headers
	hide       []*Directive // proxy_hide_header, more_clear_headers
	reqHeader  []*Directive // proxy_set_header
	split      *Directive   // fastcgi_split_path_info
	// own says which lists this block set itself, so that its first
	// entry replaces the inherited list.
	own map[string]bool
}

// inherit is the settings an inner block starts with.
func (s settings) inherit() settings {
	s.own = map[string]bool{}
	return s
}

func (s *settings) appendOwn(kind string, list *[]*Directive, d *Directive) {
	if s.own == nil {
		s.own = map[string]bool{}
	}
	if !s.own[kind] {
		*list, s.own[kind] = nil, true
	}
	*list = append(*list, d)
}

type listen struct {
	addr string
	ssl  bool
	def  bool
	d    *Directive
}

type server struct {
	d         *Directive
	listens   []listen
	quic      []listen // listen ... quic: UDP, HTTP/3 (http3: true when on listen_tls's port)
	names     []*Directive
	set       settings
	locations []*location
	named     map[string]*location // @name locations
	redirect  *Directive           // return 3xx https://$host$request_uri on a plain server
	ret       *Directive           // any other return in the server block: every request's answer
}

type location struct {
	d      *Directive
	mod    string // "", "=", "^~", "~", "~*", "@"
	path   string
	pass   *Directive
	fcgi   *Directive // fastcgi_pass
	root   *Directive // its own or inherited
	alias  *Directive
	ret    *Directive // return
	try    *Directive // try_files
	fcgiIx *Directive // fastcgi_index
	// fcgiFile is a named location's "fastcgi_param SCRIPT_FILENAME
	// $document_root/index.php": the front controller a try_files
	// fallback runs (tryFiles checks it)
	fcgiFile *Directive
	set      settings
	nested   bool // inside another location
	broken   bool // a directive in it could not be translated: no route is made
	server   *server
}

// measured is a value set somewhere in the file.
type measured struct {
	v int64
	d *Directive
}

type translator struct {
	notes  []Note
	blocks map[string]*Directive // upstream blocks by name
	// upstreams are the upstream blocks in file order, so that the notes
	// on them come out in one order, not the map's.
	upstreams []*Directive
	servers   []*server
	http      settings
	// global settings, each as often as the file sets it
	maxBody, connect, read, clientRead, clientIdle []measured
	underscores, proxyProtocol, http3              bool
	http2Off, http3Off                             bool // "http2 off", "http3 off" somewhere
	realIPFrom                                     []string
	minVersion                                     string
	retries                                        int
	accessLog                                      string
	zones                                          map[string]*Directive // limit_req_zone by name

	// built
	pools        map[string]*pool // by nginx target: upstream name or scheme://host:port
	poolOrder    []*pool
	defaultPool  *pool
	plain, tls   string
	routes       []route
	errorPages   map[int]string
	errorPageAt  map[int]*Directive
	certs        []certPair
	redirectTLS  bool
	errorTargets map[*location]bool
}

func (t *translator) note(d *Directive, format string, args ...any) {
	t.notes = append(t.notes, Note{File: d.File, Line: d.Line, Msg: fmt.Sprintf(format, args...)})
}

// show writes a directive as it stands in the file, for notes.
func show(d *Directive) string {
	s := d.Name
	for _, a := range d.Args {
		s += " " + a
	}
	if d.HasBlock {
		s += " {...}"
	}
	return s
}

// skip names a directive left out: an omission (exit status 2) unless
// the directive is on the harmless list.
func (t *translator) skip(d *Directive, why string) {
	if harmless(d) {
		t.note(d, "%s: left out (tuning, logging, caching or what sessionproxy does itself: cannot change who sees what)", show(d))
		return
	}
	msg := show(d) + ": not translated"
	if why != "" {
		msg += " (" + why + ")"
	}
	t.omit(d, "%s", msg)
}

// omit names something left out that could change who sees what.
func (t *translator) omit(d *Directive, format string, args ...any) {
	t.notes = append(t.notes, Note{File: d.File, Line: d.Line, Msg: fmt.Sprintf(format, args...), Omitted: true})
}

// validUTF8 reports whether every word of d can go into YAML.
func (t *translator) validUTF8(d *Directive) bool {
	ok := utf8.ValidString(d.Name)
	for _, a := range d.Args {
		ok = ok && utf8.ValidString(a)
	}
	if !ok {
		t.omit(d, "%q: not translated (not valid UTF-8)", d.Name)
	}
	return ok
}

func arg(d *Directive, i int) string {
	if i < len(d.Args) {
		return d.Args[i]
	}
	return ""
}

// mainOnly are the directives of nginx's main context.
var mainOnly = map[string]bool{"events": true, "worker_processes": true, "worker_rlimit_nofile": true, "pid": true,
	"user": true, "daemon": true, "master_process": true, "load_module": true, "env": true, "pcre_jit": true,
	"worker_cpu_affinity": true, "thread_pool": true, "worker_shutdown_timeout": true}

// top reads the main context. A file without an http block (a file of
// sites-enabled/, holding only server and upstream blocks) is read as the
// inside of one.
func (t *translator) top(ds []*Directive) {
	var rest []*Directive
	for _, d := range ds {
		if !t.validUTF8(d) {
			continue
		}
		switch {
		case d.Name == "http":
			t.httpBlock(d.Block)
		case mainOnly[d.Name]:
			t.skip(d, "sessionproxy is one process with its own scheduling")
		case d.Name == "stream":
			t.skip(d, "TCP and UDP proxying")
		default:
			rest = append(rest, d)
		}
	}
	if len(rest) > 0 {
		t.httpBlock(rest)
	}
}

// httpBlock reads the block's own settings first: nginx merges them into
// every server whatever their order in the file.
func (t *translator) httpBlock(ds []*Directive) {
	var servers []*Directive
	for _, d := range ds {
		if !t.validUTF8(d) {
			continue
		}
		switch d.Name {
		case "upstream":
			if len(d.Args) != 1 || !d.HasBlock {
				t.skip(d, "")
				continue
			}
			t.blocks[d.Args[0]] = d
			t.upstreams = append(t.upstreams, d)
		case "server":
			if d.HasBlock {
				servers = append(servers, d)
			} else {
				t.skip(d, "")
			}
		case "limit_req_zone":
			t.limitZone(d)
		case "error_page":
			t.http.errorPages = append(t.http.errorPages, d)
		default:
			if !t.setting(d, &t.http) {
				t.global(d)
			}
		}
	}
	for _, d := range servers {
		t.server(d, t.http)
	}
}

// setting reads the directives that inner blocks inherit.
func (t *translator) setting(d *Directive, s *settings) bool {
	switch d.Name {
	case "root":
		s.root = d
	case "ssl_certificate":
		s.cert = d
	case "ssl_certificate_key":
		s.key = d
	case "index":
		s.index = d
	case "allow", "deny":
		s.appendOwn("access", &s.access, d)
	case "auth_basic":
		s.authBasic = d
	case "auth_basic_user_file":
		s.authFile = d
	case "limit_req":
		s.appendOwn("limit_req", &s.limitReq, d)
	case "add_header", "more_set_headers":
		s.appendOwn("add_header", &s.addHeader, d)
	case "proxy_hide_header", "more_clear_headers":
		s.appendOwn("hide", &s.hide, d)
	case "proxy_set_header":
		s.appendOwn("proxy_set_header", &s.reqHeader, d)
	case "fastcgi_split_path_info":
		s.split = d
	default:
		return false
	}
	return true
}

func (t *translator) server(d *Directive, inherited settings) {
	s := &server{d: d, set: inherited.inherit(), named: map[string]*location{}}
	s.set.errorPages = nil
	ownPages, sslOn := false, false
	var locations []*Directive // read after the server's own settings, which they inherit
	for _, sd := range d.Block {
		if !t.validUTF8(sd) {
			continue
		}
		switch sd.Name {
		case "listen":
			t.listen(s, sd)
		case "server_name":
			s.names = append(s.names, sd)
		case "location":
			locations = append(locations, sd)
		case "ssl":
			if arg(sd, 0) == "on" {
				sslOn = true
				t.note(sd, "ssl on: translated as \"listen ... ssl\" of this server's listen directives")
			}
		case "return":
			if isHTTPSRedirect(sd) {
				s.redirect = sd
			} else if s.ret == nil {
				s.ret = sd
			}
		case "error_page":
			if !ownPages {
				s.set.errorPages, ownPages = nil, true
			}
			s.set.errorPages = append(s.set.errorPages, sd)
		default:
			if !t.setting(sd, &s.set) {
				t.global(sd)
			}
		}
	}
	if !ownPages {
		s.set.errorPages = inherited.errorPages
	}
	if s.ret != nil {
		s.redirect = nil // nginx answers every request with the first return
	}
	for _, ld := range locations {
		t.location(s, ld, nil)
	}
	t.httpsOnly(s, sslOn)
	if len(s.listens) == 0 {
		s.listens = []listen{{addr: ":80", d: d}} // nginx's default
	}
	for i := range s.listens {
		s.listens[i].ssl = s.listens[i].ssl || sslOn
	}
	t.servers = append(t.servers, s)
}

// httpsOnly recognises Mastodon's and certbot's plain server: "location /"
// redirects to HTTPS and other locations (the ACME challenge) serve a
// little over plain HTTP. It becomes redirect_to_https, which redirects
// those too: nothing is seen that nginx did not show.
func (t *translator) httpsOnly(s *server, sslOn bool) {
	if s.ret != nil || s.redirect != nil || sslOn {
		return
	}
	for _, l := range s.listens {
		if l.ssl {
			return
		}
	}
	var slash *location
	for _, l := range s.locations {
		if (l.mod == "" || l.mod == "^~") && l.path == "/" && l.ret != nil && isHTTPSRedirect(l.ret) {
			slash = l
		}
	}
	if slash == nil {
		return
	}
	for _, l := range s.locations {
		if l != slash {
			t.note(l.d, "%s: redirected to HTTPS with the rest of this plain server (redirect_to_https)", show(l.d))
		}
	}
	s.redirect, s.locations = slash.ret, nil
}

// isHTTPSRedirect recognises the usual "send plain HTTP to HTTPS" server.
func isHTTPSRedirect(d *Directive) bool {
	switch arg(d, 0) {
	case "301", "302", "307", "308":
	default:
		return false
	}
	switch arg(d, 1) {
	case "https://$host$request_uri", "https://$server_name$request_uri", "https://$http_host$request_uri":
		return true
	}
	return false
}

func (t *translator) listen(s *server, d *Directive) {
	if len(d.Args) == 0 {
		t.skip(d, "")
		return
	}
	l := listen{addr: listenAddr(d.Args[0]), d: d}
	if strings.HasPrefix(d.Args[0], "unix:") {
		t.skip(d, "unix sockets")
		return
	}
	// "listen 443 quic" is the UDP side of a TLS server: neither the
	// plain nor the TLS listener, but HTTP/3 on one of them, decided
	// once the listeners are chosen (includedServers).
	isQUIC := false
	for _, p := range d.Args[1:] {
		isQUIC = isQUIC || p == "quic"
	}
	for _, p := range d.Args[1:] {
		switch {
		case p == "ssl":
			l.ssl = true
		case p == "default_server" || p == "default":
			l.def = true
		case p == "proxy_protocol":
			t.proxyProtocol = true
			t.note(d, "proxy_protocol: translated as proxy_protocol: true, which expects the PROXY header on every connection of both listeners")
		case p == "http2":
			t.note(d, "listen parameter http2: not needed (http2: true is the default on listen_tls)")
		case p == "quic":
		case p == "http3": // nginx 1.25.0's spelling of quic, before the release
			isQUIC = true
		case p == "reuseport" || p == "deferred" || strings.HasPrefix(p, "backlog=") || strings.HasPrefix(p, "ipv6only="):
			t.note(d, "listen parameter %s: not needed", p)
		case strings.HasPrefix(p, "rcvbuf=") || strings.HasPrefix(p, "sndbuf=") || strings.HasPrefix(p, "fastopen=") ||
			p == "bind" || strings.HasPrefix(p, "so_keepalive=") || strings.HasPrefix(p, "accept_filter="):
			t.note(d, "listen parameter %s: not needed (socket tuning)", p)
		default:
			t.omit(d, "listen parameter %s: not translated", p)
		}
	}
	if isQUIC {
		s.quic = append(s.quic, l)
		return
	}
	s.listens = append(s.listens, l)
}

// listenAddr turns nginx's listen address (80, 127.0.0.1:8080, [::]:80,
// *:80, 127.0.0.1) into host:port.
func listenAddr(s string) string {
	if _, err := strconv.Atoi(s); err == nil {
		return ":" + s
	}
	s = strings.TrimPrefix(s, "*")
	if strings.HasPrefix(s, "[") {
		if strings.Contains(s, "]:") {
			return s
		}
		return s + ":80"
	}
	if strings.Contains(s, ":") {
		return s
	}
	return s + ":80"
}

func (t *translator) location(s *server, d *Directive, outer *location) {
	loc := &location{d: d, server: s, set: s.set.inherit()}
	if outer != nil {
		loc.set, loc.nested = outer.set.inherit(), true
	}
	switch len(d.Args) {
	case 1:
		loc.path = d.Args[0]
		if strings.HasPrefix(loc.path, "@") {
			loc.mod = "@"
		}
	case 2:
		loc.mod, loc.path = d.Args[0], d.Args[1]
	default:
		t.skip(d, "")
		return
	}
	switch loc.mod {
	case "", "=", "^~", "~", "~*", "@":
	default:
		t.skip(d, "unknown location modifier")
		return
	}
	if loc.mod == "@" {
		if outer == nil {
			s.named[loc.path[1:]] = loc
		}
	} else {
		s.locations = append(s.locations, loc)
	}
	if outer != nil {
		t.omit(d, "%s: not translated (nested locations: routes cannot reproduce nginx's choice inside another location)", show(d))
		loc.broken = true
	}
	for _, ld := range d.Block {
		if !t.validUTF8(ld) {
			loc.broken = true
			continue
		}
		if t.setting(ld, &loc.set) {
			continue
		}
		switch ld.Name {
		case "proxy_pass":
			loc.pass = ld
		case "fastcgi_pass":
			loc.fcgi = ld
		case "fastcgi_index":
			loc.fcgiIx = ld
		case "fastcgi_param":
			if v := arg(ld, 1); loc.mod == "@" && strings.EqualFold(arg(ld, 0), "SCRIPT_FILENAME") && len(ld.Args) == 2 &&
				(strings.HasPrefix(v, "$document_root/") || strings.HasPrefix(v, "$realpath_root/")) {
				loc.fcgiFile = ld
				continue
			}
			t.global(ld)
		case "alias":
			loc.alias = ld
		case "return":
			if loc.ret == nil {
				loc.ret = ld
			}
		case "try_files":
			loc.try = ld
		case "internal":
			if loc.mod != "@" {
				t.note(ld, "internal: translated as a 404 for requests from clients")
				loc.ret = &Directive{Name: "return", Args: []string{"404"}, File: ld.File, Line: ld.Line}
			}
		case "location":
			t.location(s, ld, loc)
		case "error_page":
			t.skip(ld, "error_pages apply to every route; give error_page in the server block")
			loc.broken = true
		case "ssl_certificate", "ssl_certificate_key":
			t.skip(ld, "")
		case "access_log":
			// sessionproxy logs every request or none: one location's
			// log is not the whole proxy's
			t.skip(ld, "")
		default:
			t.global(ld)
		}
	}
	loc.root = loc.set.root
}

// global handles the directives that have one setting for the whole of
// sessionproxy, wherever nginx has them.
func (t *translator) global(d *Directive) {
	switch d.Name {
	case "proxy_connect_timeout":
		t.duration(d, &t.connect)
	case "proxy_read_timeout":
		t.duration(d, &t.read)
	case "client_header_timeout", "client_body_timeout":
		t.duration(d, &t.clientRead)
	case "keepalive_timeout":
		t.duration(d, &t.clientIdle)
	case "client_max_body_size":
		s, err := nginxSize(arg(d, 0))
		switch {
		case err != nil:
			t.skip(d, err.Error())
		case s == 0:
			t.note(d, "%s: 0 means no limit in nginx; sessionproxy's max_body keeps its default, raise it yourself", show(d))
		default:
			t.maxBody = append(t.maxBody, measured{int64(s), d})
		}
	case "underscores_in_headers":
		t.underscores = arg(d, 0) == "on"
	case "http2":
		// sessionproxy has one http2 setting: off anywhere turns it off,
		// so no server offers h2 that nginx did not.
		if arg(d, 0) == "off" {
			t.http2Off = true
			t.note(d, "%s: translated as http2: false (for every server)", show(d))
		} else {
			t.note(d, "%s: not needed (http2: true is the default on listen_tls)", show(d))
		}
	case "http3":
		if arg(d, 0) == "off" {
			t.http3Off = true
			t.note(d, "%s: translated as http3: false (for every server)", show(d))
		} else {
			t.note(d, "%s: not needed (listen ... quic on listen_tls's port makes http3: true)", show(d))
		}
	case "set_real_ip_from":
		if _, err := config.ParsePrefix(arg(d, 0)); err != nil {
			t.skip(d, err.Error())
			return
		}
		t.realIPFrom = append(t.realIPFrom, arg(d, 0))
	case "real_ip_header":
		switch strings.ToLower(arg(d, 0)) {
		case "x-forwarded-for":
		case "proxy_protocol":
			t.proxyProtocol = true
			t.note(d, "real_ip_header proxy_protocol: translated as proxy_protocol: true, which expects the PROXY header on every connection")
		default:
			t.skip(d, "sessionproxy takes the client address from X-Forwarded-For of real_ip_from peers")
		}
	case "real_ip_recursive":
		if arg(d, 0) != "on" {
			t.note(d, "real_ip_recursive off: not translated (sessionproxy takes the last address of X-Forwarded-For not in real_ip_from, as with on)")
		}
	case "ssl_protocols":
		t.sslProtocols(d)
	case "proxy_next_upstream_tries":
		if n, err := strconv.Atoi(arg(d, 0)); err == nil && n > 0 {
			t.retries = n - 1
		} else {
			t.skip(d, "")
		}
	case "access_log":
		if arg(d, 0) == "off" {
			t.accessLog = "off"
		} else {
			t.accessLog = "combined"
			t.note(d, "%s: translated as access_log: combined on standard error", show(d))
		}
	case "proxy_redirect":
		if a := arg(d, 0); a == "off" || a == "default" {
			t.note(d, "%s: not needed (sessionproxy passes Location as the backend sent it)", show(d))
			return
		}
		t.skip(d, "")
	case "satisfy":
		if arg(d, 0) != "all" {
			t.skip(d, "sessionproxy requires every access rule: satisfy all")
		}
	case "limit_req_status":
		if arg(d, 0) != "429" {
			t.note(d, "%s: sessionproxy answers 429 with Retry-After past a rate_limit", show(d))
		}
	case "limit_req_zone":
		t.limitZone(d)
	case "proxy_http_version":
		t.note(d, "%s: not needed (sessionproxy always speaks HTTP/1.1 with keep-alive to backends)", show(d))
	case "server_name", "listen":
		t.skip(d, "only in a server block")
	case "sendfile", "tcp_nopush", "tcp_nodelay", "types", "default_type", "server_tokens",
		"ssl_session_cache", "ssl_session_timeout", "ssl_session_tickets", "ssl_prefer_server_ciphers",
		"ssl_ciphers", "ssl_ecdh_curve", "ssl_dhparam", "ssl_stapling", "ssl_stapling_verify":
		t.skip(d, "sessionproxy uses its own defaults")
	case "include":
		t.skip(d, "no file matches it")
	case "map":
		if arg(d, 0) == "$http_upgrade" {
			t.note(d, "%s: not needed (sessionproxy passes WebSocket upgrades itself)", show(d))
			return
		}
		t.skip(d, "")
	default:
		t.skip(d, "")
	}
}

func (t *translator) duration(d *Directive, dst *[]measured) bool {
	v, err := nginxDuration(arg(d, 0))
	if err != nil {
		t.skip(d, err.Error())
		return false
	}
	*dst = append(*dst, measured{int64(v), d})
	return true
}

func (t *translator) sslProtocols(d *Directive) {
	lowest := ""
	for _, p := range d.Args {
		switch p {
		case "TLSv1.2":
			lowest = "1.2"
		case "TLSv1.3":
			if lowest == "" {
				lowest = "1.3"
			}
		default:
			t.note(d, "ssl_protocols %s: not translated (sessionproxy speaks TLS 1.2 and 1.3 only)", p)
		}
	}
	if lowest != "" {
		t.minVersion = lowest
	}
}

// nginxDuration parses nginx's time syntax: 30, 30s, 500ms, 1m, 1h, 1d, 1m30s.
func nginxDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 100*365*24*3600 {
		return time.Duration(n) * time.Second, nil
	}
	units := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute,
		"h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour, "M": 30 * 24 * time.Hour, "y": 365 * 24 * time.Hour}
	var total time.Duration
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		j := i
		for j < len(rest) && (rest[j] < '0' || rest[j] > '9') {
			j++
		}
		n, err := strconv.Atoi(rest[:i])
		unit, ok := units[rest[i:j]]
		// a century is more than any timeout means, and far from overflow
		if err != nil || !ok || n < 0 || time.Duration(n) > 100*365*24*time.Hour/unit {
			return 0, fmt.Errorf("invalid nginx time %q", s)
		}
		total += time.Duration(n) * unit
		rest = rest[j:]
	}
	if s == "" {
		return 0, fmt.Errorf("invalid nginx time %q", s)
	}
	return total, nil
}

// nginxSize parses nginx's size syntax: 1024, 8k, 10m, 1g.
func nginxSize(s string) (config.Size, error) {
	mult := int64(1)
	num := s
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			mult, num = 1<<10, s[:n-1]
		case 'm', 'M':
			mult, num = 1<<20, s[:n-1]
		case 'g', 'G':
			mult, num = 1<<30, s[:n-1]
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid nginx size %q", s)
	}
	return config.Size(n * mult), nil
}

// target is where a proxy_pass sends requests: an upstream block's name
// or a server address, and the URI part that replaces the location's
// prefix.
type target struct {
	key, scheme, host, uri string
	unix                   bool // host is a socket path
	// fcgiRoot, fcgiIndex and fcgiScript are the fastcgi: of a
	// fastcgi_pass target.
	fcgiRoot, fcgiIndex, fcgiScript string
}

// url is the backend URL of a target that names no upstream block.
func (tg target) url() string {
	switch {
	case tg.unix && tg.scheme == "fastcgi":
		return "fastcgi+unix:" + tg.host
	case tg.unix:
		return "unix:" + tg.host
	}
	return tg.scheme + "://" + tg.host
}

func parseProxyPass(s string) (target, error) {
	if strings.Contains(s, "$") {
		return target{}, errors.New("variables in proxy_pass")
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return target{}, errors.New("only http:// and https:// targets")
	}
	if sock, ok := strings.CutPrefix(rest, "unix:"); ok {
		// http://unix:/run/app.sock:/uri
		sock, uri, _ := strings.Cut(sock, ":")
		if scheme != "http" || !strings.HasPrefix(sock, "/") || strings.ContainsAny(sock, "?#$ ") {
			return target{}, errors.New("only http over a unix socket path")
		}
		return target{key: "unix:" + sock, scheme: scheme, host: sock, uri: uri, unix: true}, nil
	}
	host, uri := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		host, uri = rest[:i], rest[i:]
	}
	if host == "" {
		return target{}, errors.New("no host")
	}
	if _, err := url.Parse(scheme + "://" + host); err != nil {
		return target{}, err
	}
	return target{key: scheme + "://" + host, scheme: scheme, host: host, uri: uri}, nil
}
