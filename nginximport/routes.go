package nginximport

import (
	"net/netip"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"sessionproxy/config"
)

// serverRoutes adds the routes of s for host ("" for any) in an order
// where the first matching route is the location nginx picks
// (ngx_http_core_find_location): an exact match; else the longest
// matching prefix if it is "^~"; else the first matching regex in file
// order; else the longest matching prefix. So: exact locations, then
// "^~" prefixes longest first, then regexes in file order, then the other
// prefixes longest first. That is only right when no other prefix
// extends a "^~" one (a request for the longer prefix would stop at the
// "^~" route, where nginx tries the regexes): such a file is refused.
// The server's routes end with a 404 for its host unless a "/" prefix
// catches everything, so that no request reaches another server's routes;
// with a root, they end with the root's files instead (nginx answers a
// request no location matches from the server's root; a missing file is
// that host's 404 all the same).
func (t *translator) serverRoutes(s *server, host string) {
	first := host == "" || t.firstHost(s, host)
	if s.ret != nil {
		if r, ok := t.returnRoute(s, s.ret, first); ok {
			r.host, r.path = host, "/"
			t.routes = append(t.routes, r)
		} else {
			t.routes = append(t.routes, route{host: host, path: "/", respond: &respond{status: 404}, at: s.ret})
		}
		return
	}
	var exact, stop, regex, prefix []*location
	for _, l := range s.locations {
		switch l.mod {
		case "=":
			exact = append(exact, l)
		case "^~":
			stop = append(stop, l)
		case "~", "~*":
			regex = append(regex, l)
		default:
			prefix = append(prefix, l)
		}
	}
	longestFirst := func(ls []*location) {
		sort.SliceStable(ls, func(i, j int) bool { return len(ls[i].path) > len(ls[j].path) })
	}
	var order []*location
	if len(regex) == 0 {
		all := append(append([]*location(nil), stop...), prefix...)
		longestFirst(all)
		order = append(append(order, exact...), all...)
	} else {
		longestFirst(stop)
		longestFirst(prefix)
		if first {
			for _, p := range stop {
				for _, q := range prefix {
					if len(q.path) > len(p.path) && strings.HasPrefix(q.path, p.path) {
						t.omit(q.d, "%s: not translated (it extends the \"^~\" location at line %d and regular expressions follow: routes cannot reproduce nginx's choice)", show(q.d), p.d.Line)
					}
				}
			}
		}
		order = append(append(append(append(order, exact...), stop...), regex...), prefix...)
	}
	catchAll := false
	for i, l := range order {
		if i == len(exact) {
			t.autoRedirects(s, host, exact)
		}
		r, ok := t.locationRoute(l, first)
		if !ok {
			// Left out, a location would send its requests to the
			// routes after it: answer them 404 instead (and the run
			// fails, the omission being noted).
			r = route{respond: &respond{status: 404}, at: l.d}
			r.path = routePath(l)
		}
		r.host = host
		catchAll = catchAll || (l.mod == "" || l.mod == "^~") && l.path == "/"
		t.routes = append(t.routes, r)
	}
	if len(order) == len(exact) {
		t.autoRedirects(s, host, exact)
	}
	if !catchAll && s.set.root != nil {
		// made from the server: a request no location matches is
		// answered from the server's root, as nginx's static handler
		// does in the server's own context
		r := route{host: host, path: "/", static: t.rootDir(s.set.root, first), at: s.d}
		if r.static == "" || !t.access(&r, s.set, first) || r.respond == nil && (!t.headers(&r, s.set, first) || !t.rateLimit(&r, s.set, first)) {
			r = route{host: host, path: "/", respond: &respond{status: 404}, at: s.d}
		}
		t.routes = append(t.routes, r)
		catchAll = true
	}
	if !catchAll {
		t.routes = append(t.routes, route{host: host, path: "/", respond: &respond{status: 404}, at: s.d})
	}
}

// autoRedirects adds nginx's redirect for a proxied location whose path
// ends with a slash: a request for that path without the slash ("/api"
// for "location /api/ { proxy_pass ... }", with proxy_pass or
// fastcgi_pass) is answered 301 to the path with it and the query. nginx
// decides it while it looks up the prefixes, before any regex and after
// only an exact location of that path (auto_redirect in
// ngx_http_core_find_static_location), so the routes go right after the
// exact ones. Without them the request went on to another route: a
// backend or a file nginx never let it reach.
func (t *translator) autoRedirects(s *server, host string, exact []*location) {
	for _, l := range s.locations {
		if l.mod == "~" || l.mod == "~*" || l.mod == "@" || l.nested || l.broken || l.pass == nil && l.fcgi == nil ||
			len(l.path) < 2 || !strings.HasSuffix(l.path, "/") || strings.ContainsAny(l.path, "$?# \"") {
			continue
		}
		bare := strings.TrimSuffix(l.path, "/")
		taken := false
		for _, e := range exact {
			taken = taken || e.path == bare
		}
		if !taken {
			t.routes = append(t.routes, route{host: host, path: "= " + bare, redirect: &redirect{to: l.path + "$is_args$args", status: 301}, at: l.d})
		}
	}
}

// routePath writes a location's match as section 15 does.
func routePath(l *location) string {
	switch l.mod {
	case "=", "~", "~*":
		return l.mod + " " + l.path
	}
	return l.path
}

// locationRoute translates one location; note says whether to write
// notes (the first time the location is seen). A location that cannot
// be translated is noted as omitted and gives no route.
func (t *translator) locationRoute(l *location, note bool) (route, bool) {
	omit := func(d *Directive, format string, args ...any) {
		if note {
			t.omit(d, format, args...)
		}
	}
	if l.broken {
		return route{}, false
	}
	r := route{path: routePath(l), at: l.d}
	switch l.mod {
	case "=", "", "^~":
		if !strings.HasPrefix(l.path, "/") {
			omit(l.d, "%s: not translated (a location path starts with /)", show(l.d))
			return route{}, false
		}
	case "~", "~*":
		if _, err := regexp.Compile(l.path); err != nil {
			omit(l.d, "%s: not translated (not an RE2 regular expression: %v)", show(l.d), err)
			return route{}, false
		}
	}
	// nginx's rewrite phase (return) runs before access and content.
	if l.ret != nil {
		return t.returnRouteAt(l.server, l.ret, note, r)
	}
	if !t.access(&r, l.set, note) {
		return route{}, false
	}
	if r.respond != nil {
		return r, true // deny all: nothing else matters
	}
	if !t.headers(&r, l.set, note) || !t.rateLimit(&r, l.set, note) {
		return route{}, false
	}
	switch {
	case l.pass != nil && l.fcgi != nil:
		omit(l.d, "%s: not translated (both proxy_pass and fastcgi_pass)", show(l.d))
		return route{}, false
	case l.pass != nil || l.fcgi != nil:
		if l.try != nil && !t.fastcgiTry(l) {
			omit(l.try, "%s: not translated (try_files beside proxy_pass)", show(l.try))
			return route{}, false
		}
		p, rewrite, ok := t.passPool(l, note)
		if !ok {
			return route{}, false
		}
		r.pool, r.rewrite = p, rewrite
	case l.alias != nil:
		if l.mod != "" && l.mod != "^~" {
			omit(l.alias, "%s: not translated (alias in an exact or regex location)", show(l.alias))
			return route{}, false
		}
		dir := arg(l.alias, 0)
		if strings.Contains(dir, "$") {
			omit(l.alias, "%s: not translated (variables)", show(l.alias))
			return route{}, false
		}
		// alias DIR for location PREFIX serves DIR + the rest of the
		// path: a root one level up when DIR ends with PREFIX, else a
		// rewrite of the prefix to "/".
		trimmed := strings.TrimSuffix(dir, "/")
		if p := strings.TrimSuffix(l.path, "/"); p != "" && strings.HasSuffix(trimmed, p) && strings.HasSuffix(dir, "/") == strings.HasSuffix(l.path, "/") {
			r.static = t.dirOf(strings.TrimSuffix(trimmed, p), l.alias, note)
		} else {
			r.static, r.rewrite = t.dirOf(dir, l.alias, note), "/"
		}
		if l.try != nil {
			omit(l.try, "%s: not translated (try_files beside alias)", show(l.try))
			return route{}, false
		}
	case l.root != nil:
		r.static = t.rootDir(l.root, note)
		if r.static == "" {
			return route{}, false
		}
		if !t.staticIndex(l, note) {
			return route{}, false
		}
		if l.try != nil && !t.tryFiles(&r, l, note) {
			return route{}, false
		}
	default:
		omit(l.d, "%s: not translated (neither proxy_pass, fastcgi_pass, return nor root)", show(l.d))
		return route{}, false
	}
	if r.static == "" && r.pool == nil {
		return route{}, false
	}
	return r, true
}

// staticIndex accepts the index lists a static route serves: index.html.
func (t *translator) staticIndex(l *location, note bool) bool {
	d := l.set.index
	if d == nil {
		return true
	}
	for _, a := range d.Args {
		if a != "index.html" && a != "index.htm" && !strings.HasSuffix(a, ".php") {
			if note {
				t.omit(d, "%s: not translated (a static route serves index.html for a directory)", show(d))
			}
			return false
		}
	}
	return true
}

// returnRoute translates a server-level return.
func (t *translator) returnRoute(s *server, d *Directive, note bool) (route, bool) {
	return t.returnRouteAt(s, d, note, route{at: d})
}

// returnRouteAt fills r from "return CODE [TEXT]", "return 3xx URL" or
// "return URL".
func (t *translator) returnRouteAt(s *server, d *Directive, note bool, r route) (route, bool) {
	fail := func(why string) (route, bool) {
		if note {
			t.omit(d, "%s: not translated (%s)", show(d), why)
		}
		return route{}, false
	}
	args := d.Args
	if len(args) == 1 && (strings.HasPrefix(args[0], "http://") || strings.HasPrefix(args[0], "https://") || strings.HasPrefix(args[0], "$scheme")) {
		args = []string{"302", args[0]}
	}
	if len(args) == 0 || len(args) > 2 {
		return fail("")
	}
	code, err := strconv.Atoi(args[0])
	if err != nil || code < 200 || code > 599 || code == 444 {
		return fail("a status from 200 to 599")
	}
	switch code {
	case 301, 302, 307, 308:
		if len(args) != 2 {
			return fail("a redirect without a URL")
		}
		to, ok := t.redirectURL(s, args[1])
		if !ok {
			return fail("variables other than $request_uri, $uri, $host, $scheme, $args")
		}
		r.redirect = &redirect{to: to, status: code}
	case 303:
		return fail("303 is not among the redirect statuses")
	default:
		body := ""
		if len(args) == 2 {
			body = args[1]
			if strings.Contains(body, "$") {
				return fail("variables in the text")
			}
		}
		r.respond = &respond{status: code, body: body}
	}
	return r, true
}

// redirectURL keeps the variables sessionproxy's redirect has, in its
// spelling, and the server's first name for $server_name.
func (t *translator) redirectURL(s *server, u string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(u); {
		if u[i] != '$' {
			b.WriteByte(u[i])
			i++
			continue
		}
		j := i + 1
		braced := j < len(u) && u[j] == '{'
		if braced {
			j++
		}
		k := j
		for k < len(u) && (u[k] == '_' || u[k] >= 'a' && u[k] <= 'z' || u[k] >= 'A' && u[k] <= 'Z' || u[k] >= '0' && u[k] <= '9') {
			k++
		}
		name := u[j:k]
		if braced {
			if k >= len(u) || u[k] != '}' {
				return "", false
			}
			k++
		}
		switch name {
		case "request_uri", "uri", "host", "scheme", "args":
			b.WriteString("$" + name)
		case "query_string":
			b.WriteString("$args")
		case "server_name":
			n := ""
			if len(s.names) > 0 {
				n = arg(s.names[0], 0)
			}
			if n == "" || strings.ContainsAny(n, "*~$") || strings.HasPrefix(n, ".") || n == "_" {
				return "", false
			}
			b.WriteString(n)
		default:
			return "", false
		}
		i = k
	}
	return b.String(), true
}

// access translates allow/deny and auth_basic. nginx tries allow and
// deny in order and the first match decides; sessionproxy checks deny,
// then allow (with allow set, every other address is denied). The two
// agree unless an allow comes before a deny it overlaps: refused. A
// location everyone is denied answers 403.
func (t *translator) access(r *route, set settings, note bool) bool {
	type rule struct {
		allow bool
		all   bool
		p     netip.Prefix
		d     *Directive
	}
	var rules []rule
	for _, d := range set.access {
		v := arg(d, 0)
		if v == "all" {
			rules = append(rules, rule{allow: d.Name == "allow", all: true, d: d})
			break // later rules are never reached
		}
		p, err := config.ParsePrefix(v)
		if err != nil || len(d.Args) != 1 {
			if note {
				t.omit(d, "%s: not translated (not an address or CIDR range)", show(d))
			}
			return false
		}
		rules = append(rules, rule{allow: d.Name == "allow", p: p, d: d})
	}
	defaultDeny := false
	if n := len(rules); n > 0 && rules[n-1].all {
		defaultDeny = !rules[n-1].allow
		rules = rules[:n-1]
	}
	var allow, deny []string
	for i, a := range rules {
		if !a.allow {
			deny = append(deny, a.p.String())
			continue
		}
		allow = append(allow, a.p.String())
		for _, d := range rules[i+1:] {
			if !d.allow && d.p.Overlaps(a.p) {
				if note {
					t.omit(d.d, "%s: not translated (it follows \"%s\" at line %d, which it overlaps: sessionproxy checks deny before allow)", show(d.d), show(a.d), a.d.Line)
				}
				return false
			}
		}
	}
	switch {
	case defaultDeny && len(allow) == 0:
		r.respond = &respond{status: 403}
		return true
	case defaultDeny:
		r.allow, r.deny = allow, deny
	default:
		r.deny = deny // the allows only made exceptions to later denies, which do not overlap them
	}
	if set.authBasic != nil && arg(set.authBasic, 0) != "off" {
		if set.authFile == nil {
			if note {
				t.omit(set.authBasic, "%s: not translated (no auth_basic_user_file)", show(set.authBasic))
			}
			return false
		}
		f := arg(set.authFile, 0)
		if strings.Contains(f, "$") {
			if note {
				t.omit(set.authFile, "%s: not translated (variables)", show(set.authFile))
			}
			return false
		}
		if !path.IsAbs(f) && note {
			t.note(set.authFile, "%s: relative to nginx's prefix in nginx, to sessionproxy's working directory here: make it absolute", show(set.authFile))
		}
		r.auth = &basicAuth{realm: arg(set.authBasic, 0), htpasswd: f}
	}
	return true
}

// forwarded are the request headers sessionproxy sets itself.
var forwarded = map[string]bool{"host": true, "x-forwarded-for": true, "x-real-ip": true, "x-forwarded-proto": true,
	"x-forwarded-host": true, "x-forwarded-port": true, "upgrade": true, "connection": true, "proxy": true,
	"x-request-id": true, "x-forwarded-ssl": false}

// headers translates add_header, proxy_set_header, proxy_hide_header and
// more_set_headers/more_clear_headers without variables.
func (t *translator) headers(r *route, set settings, note bool) bool {
	fail := func(d *Directive, why string) bool {
		if note {
			t.omit(d, "%s: not translated (%s)", show(d), why)
		}
		return false
	}
	seen := map[string]bool{}
	for _, d := range set.addHeader {
		var name, value string
		if d.Name == "more_set_headers" {
			if len(d.Args) != 1 {
				return fail(d, "only one \"Name: value\" without -s or -t")
			}
			n, v, ok := strings.Cut(d.Args[0], ":")
			if !ok {
				return fail(d, "")
			}
			name, value = strings.TrimSpace(n), strings.TrimSpace(v)
		} else {
			if len(d.Args) < 2 || len(d.Args) > 3 || len(d.Args) == 3 && d.Args[2] != "always" {
				return fail(d, "")
			}
			name, value = d.Args[0], d.Args[1]
		}
		if strings.Contains(value, "$") || !validHeaderName(name) {
			return fail(d, "variables")
		}
		if seen[strings.ToLower(name)] {
			return fail(d, "one value per header")
		}
		seen[strings.ToLower(name)] = true
		if d.Name == "more_set_headers" {
			r.headers.respSet = append(r.headers.respSet, [2]string{name, value})
		} else {
			r.headers.respAdd = append(r.headers.respAdd, [2]string{name, value})
		}
	}
	for _, d := range set.hide {
		for _, n := range d.Args {
			if !validHeaderName(n) {
				return fail(d, "only header names")
			}
			r.headers.respRemove = append(r.headers.respRemove, n)
		}
	}
	for _, d := range set.reqHeader {
		name, value := arg(d, 0), arg(d, 1)
		if len(d.Args) != 2 || !validHeaderName(name) {
			return fail(d, "")
		}
		if forwarded[strings.ToLower(name)] {
			if note {
				t.note(d, "%s: not needed (sessionproxy does this by default)", show(d))
			}
			continue
		}
		switch {
		case value == "":
			r.headers.reqRemove = append(r.headers.reqRemove, name)
		case strings.Contains(value, "$"):
			return fail(d, "variables")
		default:
			r.headers.reqSet = append(r.headers.reqSet, [2]string{name, value})
		}
	}
	return true
}

func validHeaderName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// limitZone reads limit_req_zone KEY zone=NAME:SIZE rate=R.
func (t *translator) limitZone(d *Directive) {
	if t.zones == nil {
		t.zones = map[string]*Directive{}
	}
	for _, a := range d.Args {
		if v, ok := strings.CutPrefix(a, "zone="); ok {
			name, _, _ := strings.Cut(v, ":")
			t.zones[name] = d
			return
		}
	}
	t.skip(d, "")
}

// rateLimit translates limit_req zone=NAME [burst=N] [nodelay] with a
// zone keyed by the client address.
func (t *translator) rateLimit(r *route, set settings, note bool) bool {
	if len(set.limitReq) == 0 {
		return true
	}
	fail := func(d *Directive, why string) bool {
		if note {
			t.omit(d, "%s: not translated (%s)", show(d), why)
		}
		return false
	}
	if len(set.limitReq) > 1 {
		return fail(set.limitReq[1], "one limit_req per route")
	}
	d := set.limitReq[0]
	rl := &rateLimit{}
	var zone string
	for _, a := range d.Args {
		switch {
		case strings.HasPrefix(a, "zone="):
			zone = a[len("zone="):]
		case strings.HasPrefix(a, "burst="):
			n, err := strconv.Atoi(a[len("burst="):])
			if err != nil || n < 0 {
				return fail(d, "burst")
			}
			rl.burst = n
		case a == "nodelay":
		case strings.HasPrefix(a, "delay="):
			if note {
				t.note(d, "%s: sessionproxy does not delay requests in the burst", show(d))
			}
		default:
			return fail(d, "")
		}
	}
	z := t.zones[zone]
	if z == nil {
		return fail(d, "no limit_req_zone "+zone)
	}
	switch arg(z, 0) {
	case "$binary_remote_addr", "$remote_addr":
	default:
		return fail(z, "only zones keyed by $binary_remote_addr or $remote_addr")
	}
	for _, a := range z.Args[1:] {
		if v, ok := strings.CutPrefix(a, "rate="); ok {
			rl.rate = v
		}
	}
	if rl.rate == "" {
		return fail(z, "no rate")
	}
	if note {
		t.note(d, "%s: a bucket per route and client; nginx shares zone %s between the locations that name it", show(d), zone)
	}
	r.rate = rl
	return true
}

// tryFiles translates try_files of a static route: file entries on $uri
// and a last entry that is =404, a named location that proxies (@name →
// its upstream), or a PHP front controller (/index.php?... → the
// server's FastCGI pool).
func (t *translator) tryFiles(r *route, l *location, note bool) bool {
	d := l.try
	fail := func(why string) bool {
		if note {
			t.omit(d, "%s: not translated (%s)", show(d), why)
		}
		return false
	}
	if len(d.Args) < 2 {
		return fail("")
	}
	index := []string{"index.html"}
	var phpIndex []string // index entries a static route cannot run
	if l.set.index != nil {
		index = nil
		for _, a := range l.set.index.Args {
			if strings.HasSuffix(a, ".php") {
				phpIndex = append(phpIndex, a)
			} else {
				index = append(index, a)
			}
		}
	}
	var files []string
	for _, a := range d.Args[:len(d.Args)-1] {
		switch a {
		case "$uri", "$uri.html", "$uri.htm", "$uri/index.html", "$uri/index.htm":
			files = append(files, a)
		case "$uri/":
			for _, ix := range index {
				files = append(files, "$uri/"+ix)
			}
			if note && len(phpIndex) > 0 {
				// nginx runs /dir/index.php for /dir/; a static route
				// never hands a .php name on, so /dir/ falls through to
				// the last entry: the pool's own index, not the
				// directory's (a PHP app in a subdirectory).
				t.note(d, "%s: $uri/ does not try %s: a directory's PHP index is not run, /dir/ gets %s instead",
					show(d), strings.Join(phpIndex, ", "), d.Args[len(d.Args)-1])
			}
		default:
			return fail("entries other than $uri, $uri/, $uri.html, $uri/index.html")
		}
	}
	last := d.Args[len(d.Args)-1]
	switch {
	case last == "=404":
	case strings.HasPrefix(last, "@"):
		nl := l.server.named[last[1:]]
		if nl == nil {
			return fail("no location " + last)
		}
		if nl.pass == nil && nl.fcgi == nil || nl.ret != nil || nl.root != l.root && nl.fcgi != nil && nl.root == nil {
			return fail("the named location does not proxy")
		}
		// nginx checks the named location's access rules too: they must
		// be the route's (inherited alike) or none.
		if !sameList(nl.set.access, l.set.access) && len(nl.set.access) > 0 ||
			!sameList(nl.set.limitReq, l.set.limitReq) && len(nl.set.limitReq) > 0 ||
			nl.set.authBasic != l.set.authBasic && nl.set.authBasic != nil && arg(nl.set.authBasic, 0) != "off" {
			return fail("the named location has access rules the route does not")
		}
		// Request headers the named location sets must be the route's;
		// response headers only differ in what a response carries.
		var probe route
		if !t.headers(&probe, settings{reqHeader: nl.set.reqHeader}, false) || !probe.headers.empty() && !sameList(nl.set.reqHeader, l.set.reqHeader) {
			return fail("the named location sets request headers of its own")
		}
		p, rewrite, ok := t.passPool(nl, note)
		if !ok {
			return false
		}
		if rewrite != "" {
			return fail("proxy_pass with a URI in the named location")
		}
		// A FastCGI fallback runs the pool's index (the front
		// controller): the named location must run it too. With
		// $document_root$fastcgi_script_name it runs the path itself,
		// which a fallback never does.
		if nl.fcgi != nil {
			file := ""
			if nl.fcgiFile != nil {
				_, file, _ = strings.Cut(arg(nl.fcgiFile, 1), "_root/")
			}
			if file != p.fcgiIndex {
				return fail("the named FastCGI location runs the path as its script; sessionproxy's fallback runs the pool's index " + p.fcgiIndex + ": give the location fastcgi_param SCRIPT_FILENAME $document_root/" + p.fcgiIndex)
			}
		} else if nl.fcgiFile != nil {
			return fail("fastcgi_param SCRIPT_FILENAME without fastcgi_pass")
		}
		files = append(files, "@") // the pool's name is final when written
		r.fallback = p
	case strings.HasPrefix(last, "/") && strings.Contains(last, ".php"):
		script, _, _ := strings.Cut(last, "?")
		script, _, _ = strings.Cut(script, "$is_args")
		var php *location
		for _, o := range l.server.locations {
			if o.fcgi != nil && (o.mod == "~" || o.mod == "~*") {
				if re, err := regexp.Compile(regexPattern(o)); err == nil && re.MatchString(script) {
					php = o
					break
				}
			}
		}
		if php == nil || strings.Count(script, "/") != 1 {
			return fail("no FastCGI location runs " + script)
		}
		p, _, ok := t.passPool(php, note)
		if !ok {
			return false
		}
		if p.fcgiIndex != script[1:] {
			return fail("the front controller is not the FastCGI pool's index " + p.fcgiIndex)
		}
		files = append(files, "@") // the pool's name is final when written
		r.fallback = p
	default:
		return fail("the last entry is =404, @name or /index.php")
	}
	if len(files) == 1 && files[0] == "$uri" {
		return true // what a static route does anyway
	}
	r.tryFiles = files
	return true
}

// regexPattern is a regex location as Go compiles it.
func regexPattern(l *location) string {
	if l.mod == "~*" {
		return "(?i)" + l.path
	}
	return l.path
}

// fastcgiTry accepts the try_files a FastCGI pool does anyway: the script
// must exist, else 404.
func (t *translator) fastcgiTry(l *location) bool {
	if l.fcgi == nil {
		return false
	}
	switch strings.Join(l.try.Args, " ") {
	case "$uri =404", "$fastcgi_script_name =404", "$uri $uri/ =404":
		return true
	}
	return false
}

// passPool is the pool and rewrite_prefix of a location's proxy_pass or
// fastcgi_pass.
func (t *translator) passPool(l *location, note bool) (*pool, string, bool) {
	fail := func(d *Directive, why string) (*pool, string, bool) {
		if note {
			t.omit(d, "%s: not translated (%s)", show(d), why)
		}
		return nil, "", false
	}
	if l.fcgi != nil {
		if l.root == nil || strings.Contains(arg(l.root, 0), "$") {
			return fail(l.fcgi, "a FastCGI pool needs a root without variables")
		}
		index := "index.php"
		if l.fcgiIx != nil {
			index = arg(l.fcgiIx, 0)
		} else if l.set.index != nil {
			for _, a := range l.set.index.Args {
				if strings.HasSuffix(a, ".php") {
					index = a
					break
				}
			}
		}
		script, ok := t.fastcgiScript(l, note)
		if !ok {
			return nil, "", false
		}
		return t.fastcgiPool(arg(l.fcgi, 0), path.Clean(arg(l.root, 0)), index, script, l.fcgi, note)
	}
	tg, err := parseProxyPass(arg(l.pass, 0))
	if err != nil {
		return fail(l.pass, err.Error())
	}
	rewrite := ""
	if tg.uri != "" && tg.uri != l.path {
		if l.mod != "" && l.mod != "^~" {
			return fail(l.pass, "a URI in proxy_pass of an exact or regex location")
		}
		rewrite = tg.uri // nginx: the URI replaces the matched prefix
	}
	return t.poolFor(tg, l.pass), rewrite, true
}

// fastcgiPool is the pool of fastcgi_pass ADDR: unix:/path, host:port or
// an upstream block's name.
func (t *translator) fastcgiPool(addr, root, index, script string, at *Directive, note bool) (*pool, string, bool) {
	tg := target{scheme: "fastcgi", fcgiRoot: root, fcgiIndex: index, fcgiScript: script}
	switch {
	case strings.HasPrefix(addr, "unix:"):
		sock := addr[len("unix:"):]
		if !path.IsAbs(sock) || strings.ContainsAny(sock, "?#$ ") {
			if note {
				t.omit(at, "%s: not translated (not a socket path)", show(at))
			}
			return nil, "", false
		}
		tg.key, tg.host, tg.unix = "unix:"+sock, sock, true
	case t.blocks[addr] != nil:
		tg.key, tg.host = addr, addr
	default:
		host, port, ok := strings.Cut(addr, ":")
		if _, err := strconv.Atoi(port); !ok || err != nil || host == "" || strings.ContainsAny(addr, "/?#@$ ") {
			if note {
				t.omit(at, "%s: not translated (not host:port, unix:/path or an upstream)", show(at))
			}
			return nil, "", false
		}
		tg.key, tg.host = "fastcgi://"+addr, addr
	}
	return t.poolFor(tg, at), "", true
}

// lazySplit are the fastcgi_split_path_info patterns that split where a
// fastcgi: pool's "script: split" does, at the first segment ending in
// ".php": Debian's snippets/fastcgi-php.conf's, and nginx's PHP FastCGI
// example's. Others differ somewhere: "(/.+)" leaves /a.php/ whole
// (a.php/index.php), "(.*)" splits /a.phpx as a.php.
var lazySplit = map[string]bool{`^(.+?\.php)(/.*)$`: true}

// fastcgiScript is the fastcgi: script rule of a FastCGI location, nginx's
// meaning kept: without fastcgi_split_path_info the whole path is the
// script ("path": /a.php/rest is no script, as nginx's
// $fastcgi_script_name is then the whole URI); with it, the split at the
// first ".php" segment ("split", section 13's rule). Another pattern (the
// greedy ^(.+\.php)(/.*)$ splits at the last) is not translated: a
// split elsewhere could run a script nginx's would not.
func (t *translator) fastcgiScript(l *location, note bool) (string, bool) {
	d := l.set.split
	if d == nil {
		return "path", true
	}
	if len(d.Args) == 1 && lazySplit[d.Args[0]] {
		return "", true // section 13's split, the default
	}
	if note {
		t.omit(d, "%s: not translated (sessionproxy splits PATH_INFO at the first segment ending in .php, as ^(.+?\\.php)(/.*)$ does)", show(d))
	}
	return "", false
}

// sameList reports whether two inherited lists are the same directives.
func sameList(a, b []*Directive) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
