package nginximport

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// This file checks the translation against nginx's own location choice,
// written here a second time from nginx's documentation and
// ngx_http_core_find_location, independently of routes.go: for a request,
// nginxPick names the directive that answers it in nginx (a location, or
// a server's return, or the server itself for "no location: 404"), and
// routePick the directive the first matching route of the translation was
// made from (each route's match carries "FILE:LINE" in its comment). The
// two must agree. It reads the output as plain YAML, so it needs none of
// section 15's keys in config/ and runs before they are merged.

// outRoute is one route of the output.
type outRoute struct {
	host, path string
	line       int    // of the directive it was made from
	what       string // what answers: "upstream NAME", "static DIR", "respond 404", ...
	// upstream and fallback name the pool the route proxies to and the
	// one its try_files falls back to
	upstream, fallback string
}

// fcgiPool is an upstream's fastcgi: as the output writes it.
type fcgiPool struct{ index, script string }

type output struct {
	routes          []outRoute
	defaultPool     string // the top-level backends' first URL
	upstreams       map[string]string
	fcgi            map[string]fcgiPool // by upstream name
	redirectToHTTPS bool
	tls             bool
}

// readOutput reads the routes of a translation and where each came from.
func readOutput(t testing.TB, y string) output {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(y), &doc); err != nil {
		t.Fatalf("output is not YAML: %v\n%s", err, y)
	}
	o := output{upstreams: map[string]string{}, fcgi: map[string]fcgiPool{}}
	top := doc.Content[0]
	get := func(m *yaml.Node, key string) *yaml.Node {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == key {
				return m.Content[i+1]
			}
		}
		return nil
	}
	firstURL := func(backends *yaml.Node) string {
		if backends == nil || len(backends.Content) == 0 {
			return ""
		}
		return get(backends.Content[0], "url").Value
	}
	o.defaultPool = firstURL(get(top, "backends"))
	o.upstreams["default"] = o.defaultPool
	fastcgi := func(name string, m *yaml.Node) {
		if f := get(m, "fastcgi"); f != nil {
			fp := fcgiPool{index: "index.php", script: "split"}
			if v := get(f, "index"); v != nil {
				fp.index = v.Value
			}
			if v := get(f, "script"); v != nil {
				fp.script = v.Value
			}
			o.fcgi[name] = fp
		}
	}
	fastcgi("default", top)
	if ups := get(top, "upstreams"); ups != nil {
		for i := 0; i+1 < len(ups.Content); i += 2 {
			o.upstreams[ups.Content[i].Value] = firstURL(get(ups.Content[i+1], "backends"))
			fastcgi(ups.Content[i].Value, ups.Content[i+1])
		}
	}
	if r := get(top, "redirect_to_https"); r != nil && r.Value == "true" {
		o.redirectToHTTPS = true
	}
	o.tls = get(top, "listen_tls") != nil
	if rs := get(top, "routes"); rs != nil {
		for _, r := range rs.Content {
			m := get(r, "match")
			or := outRoute{}
			if h := get(m, "host"); h != nil {
				or.host = h.Value
			}
			if p := get(m, "path"); p != nil {
				or.path = p.Value
			}
			// "# FILE:LINE directive ..."
			c := strings.TrimPrefix(m.LineComment, "# ")
			c, _, _ = strings.Cut(c, " ")
			i := strings.LastIndexByte(c, ':')
			or.line, _ = strconv.Atoi(c[i+1:])
			switch {
			case get(r, "respond") != nil:
				or.what = "respond " + get(get(r, "respond"), "status").Value
			case get(r, "redirect") != nil:
				rd := get(r, "redirect")
				or.what = "redirect " + get(rd, "status").Value + " " + get(rd, "to").Value
			case get(r, "upstream") != nil:
				or.upstream = get(r, "upstream").Value
				or.what = "proxy " + o.upstreams[or.upstream]
			default:
				or.what = "static " + get(r, "static").Value
			}
			if tf := get(r, "try_files"); tf != nil {
				last := tf.Content[len(tf.Content)-1].Value
				if strings.HasPrefix(last, "@") {
					or.fallback = last[1:]
					or.what += " else proxy " + o.upstreams[or.fallback]
				}
			}
			if d := get(r, "allow"); d != nil {
				or.what += " allow"
				for _, c := range d.Content {
					or.what += " " + c.Value
				}
			}
			o.routes = append(o.routes, or)
		}
	}
	return o
}

func hostMatches(pattern, host string) bool {
	switch {
	case pattern == "":
		return true
	case strings.HasPrefix(pattern, "*."):
		return strings.HasSuffix(host, pattern[1:])
	}
	return pattern == host
}

func pathMatches(pattern, p string) bool {
	switch {
	case strings.HasPrefix(pattern, "= "):
		return p == pattern[2:]
	case strings.HasPrefix(pattern, "~* "):
		return regexp.MustCompile("(?i)" + pattern[3:]).MatchString(p)
	case strings.HasPrefix(pattern, "~ "):
		return regexp.MustCompile(pattern[2:]).MatchString(p)
	}
	return strings.HasPrefix(p, pattern)
}

// routePick is the route that answers host and path first: its index, or
// -1 for the top-level backends.
func (o output) routePick(host, p string) int {
	for i, r := range o.routes {
		if hostMatches(r.host, host) && pathMatches(r.path, p) {
			return i
		}
	}
	return -1
}

// answer says what answers a request in the translation.
func (o output) answer(host, p string) string {
	i := o.routePick(host, p)
	if i < 0 {
		return "proxy " + o.defaultPool
	}
	return o.routes[i].what
}

// nginxPick is the line of the directive that answers host and path in
// nginx, among the servers that listen with TLS (tls) or without it.
func nginxPick(ds []*Directive, host, p string, tls bool) (line int, loc *Directive) {
	var servers []*Directive
	var walk func([]*Directive)
	walk = func(ds []*Directive) {
		for _, d := range ds {
			switch d.Name {
			case "http":
				walk(d.Block)
			case "server":
				if d.HasBlock {
					ssl := false
					for _, sd := range d.Block {
						if sd.Name == "listen" {
							for _, a := range sd.Args[1:] {
								ssl = ssl || a == "ssl"
							}
						}
					}
					if ssl == tls {
						servers = append(servers, d)
					}
				}
			}
		}
	}
	walk(ds)
	var chosen *Directive
	best := ""
	for _, s := range servers {
		for _, sd := range s.Block {
			if sd.Name != "server_name" {
				continue
			}
			for _, n := range sd.Args {
				n = strings.ToLower(n)
				switch {
				case n == host && chosen == nil || n == host && best != host:
					chosen, best = s, n
				case strings.HasPrefix(n, "*.") && strings.HasSuffix(host, n[1:]) && best != host && len(n) > len(best):
					chosen, best = s, n
				case strings.HasPrefix(n, ".") && (host == n[1:] || strings.HasSuffix(host, n)) && best != host && len(n)+1 > len(best):
					chosen, best = s, "*"+n
				}
			}
		}
	}
	if chosen == nil {
		for _, s := range servers {
			for _, sd := range s.Block {
				if sd.Name == "listen" && strings.Contains(strings.Join(sd.Args, " "), "default") {
					chosen = s
				}
			}
			if chosen != nil {
				break
			}
		}
	}
	if chosen == nil && len(servers) > 0 {
		chosen = servers[0]
	}
	if chosen == nil {
		return 0, nil
	}
	var exact, longest *Directive
	longestMod := ""
	var regexes []*Directive
	for _, d := range chosen.Block {
		if d.Name == "return" {
			return d.Line, nil // the server rewrite phase answers before any location
		}
		if d.Name != "location" {
			continue
		}
		mod, lp := "", d.Args[0]
		if len(d.Args) == 2 {
			mod, lp = d.Args[0], d.Args[1]
		}
		switch mod {
		case "=":
			if p == lp {
				exact = d
			}
		case "", "^~":
			if strings.HasPrefix(lp, "@") {
				continue
			}
			if strings.HasPrefix(p, lp) && (longest == nil || len(lp) > len(arg(longest, len(longest.Args)-1))) {
				longest, longestMod = d, mod
			}
		case "~", "~*":
			regexes = append(regexes, d)
		}
	}
	if exact != nil {
		return exact.Line, exact
	}
	// auto_redirect: a proxied location "/a/" answers "/a" with a 301,
	// before the regexes (ngx_http_core_find_static_location)
	for _, d := range chosen.Block {
		if d.Name != "location" || len(d.Args) == 0 || d.Args[0] == "~" || d.Args[0] == "~*" || d.Args[len(d.Args)-1] != p+"/" {
			continue
		}
		for _, ld := range d.Block {
			if ld.Name == "proxy_pass" || ld.Name == "fastcgi_pass" {
				return d.Line, d
			}
		}
	}
	if longest != nil && longestMod == "^~" {
		return longest.Line, longest
	}
	for _, d := range regexes {
		re := d.Args[1]
		if d.Args[0] == "~*" {
			re = "(?i)" + re
		}
		if c, err := regexp.Compile(re); err == nil && c.MatchString(p) {
			return d.Line, d
		}
	}
	if longest != nil {
		return longest.Line, longest
	}
	return chosen.Line, nil // no location: nginx answers 404
}

// samplePaths are paths worth asking about a configuration: each
// location's path and paths below it, PHP and dot files, and extra.
func samplePaths(ds []*Directive, extra ...string) []string {
	paths := append([]string{"/", "/x", "/index.php", "/x.php", "/.htaccess", "/.git/config", "/a/b.php", "/api/1/", "/api/0/x"}, extra...)
	var walk func([]*Directive)
	walk = func(ds []*Directive) {
		for _, d := range ds {
			if d.Name == "location" && len(d.Args) > 0 {
				lp := d.Args[len(d.Args)-1]
				if strings.HasPrefix(lp, "/") {
					paths = append(paths, lp, lp+"x", lp+"x.php", lp+"/y", strings.TrimSuffix(lp, "/"))
				}
			}
			walk(d.Block)
		}
	}
	walk(ds)
	return paths
}

// sameChoice checks that, for every sample request, the route that
// answers was made from the directive nginx would pick, and that no
// sample (and no sample with a PATH_INFO after it) runs a script nginx
// would not (sameScript). It returns the first disagreement.
func sameChoice(ds []*Directive, o output, hosts []string, paths []string) error {
	if err := sameScript(ds, o, hosts, scriptPaths(paths)); err != nil {
		return err
	}
	for _, host := range hosts {
		for _, p := range paths {
			if !strings.HasPrefix(p, "/") {
				continue
			}
			line, loc := nginxPick(ds, host, p, o.tls)
			if line == 0 {
				continue
			}
			i := o.routePick(host, p)
			if i < 0 {
				// the top-level backends stand for the default server's
				// "location /" that only proxies
				if loc != nil && arg(loc, len(loc.Args)-1) == "/" {
					continue
				}
				return fmt.Errorf("%s%s: nginx picks line %d, the translation the top-level backends", host, p, line)
			}
			if o.routes[i].line != line {
				return fmt.Errorf("%s%s: nginx picks line %d, the translation the route from line %d (%s %s)", host, p, line, o.routes[i].line, o.routes[i].path, o.routes[i].what)
			}
		}
	}
	return nil
}

// The script a request runs, on both sides: nginxScript from nginx's
// documentation (ngx_http_fastcgi_module: $fastcgi_script_name, split by
// fastcgi_split_path_info when its pattern matches, fastcgi_index after a
// "/"; try_files' last entry an internal redirect to that URI's location),
// outputScript from section 13 and the FastCGI pool's script rule
// (docs/config.md). Both model a request whose path is no file, the case
// an attacker makes: try_files falls through.

// nginxScript is the SCRIPT_NAME nginx has the FastCGI server run for
// host and path, "" for none.
func nginxScript(ds []*Directive, host, p string, tls bool) string {
	_, loc := nginxPick(ds, host, p, tls)
	for hop := 0; loc != nil && hop < 2; hop++ {
		if blockHas(loc, "return") || denied(loc) {
			return ""
		}
		if blockHas(loc, "fastcgi_pass") {
			return scriptName(ds, loc, p)
		}
		try := child(loc, "try_files")
		if try == nil {
			return ""
		}
		last := try.Args[len(try.Args)-1]
		if !strings.HasPrefix(last, "/") {
			return "" // =404; a named location: section15's tables
		}
		p, _, _ = strings.Cut(last, "?")
		p, _, _ = strings.Cut(p, "$is_args")
		_, loc = nginxPick(ds, host, p, tls)
	}
	return ""
}

// scriptName is $fastcgi_script_name in loc for path p.
func scriptName(ds []*Directive, loc *Directive, p string) string {
	if d := inherited(ds, loc, "fastcgi_split_path_info"); d != nil {
		if re, err := regexp.Compile(d.Args[0]); err == nil {
			if m := re.FindStringSubmatch(p); len(m) > 1 {
				p = m[1]
			}
		}
	}
	if strings.HasSuffix(p, "/") {
		ix := "index.php" // the pool's index; a mismatch is section15's to find
		if d := inherited(ds, loc, "fastcgi_index"); d != nil {
			ix = d.Args[0]
		}
		p += ix
	}
	return p
}

func child(loc *Directive, name string) *Directive {
	for _, d := range loc.Block {
		if d.Name == name {
			return d
		}
	}
	return nil
}

func blockHas(loc *Directive, name string) bool { return child(loc, name) != nil }

// denied: "deny all" with no allow before it, in the location itself.
func denied(loc *Directive) bool {
	for _, d := range loc.Block {
		if d.Name == "allow" {
			return false
		}
		if d.Name == "deny" && arg(d, 0) == "all" {
			return true
		}
	}
	return false
}

// inherited is the directive name in loc, else in the server or http
// block around it.
func inherited(ds []*Directive, loc *Directive, name string) *Directive {
	if d := child(loc, name); d != nil {
		return d
	}
	var found *Directive
	var walk func(ds []*Directive, outer *Directive) bool
	walk = func(ds []*Directive, outer *Directive) bool {
		var here *Directive
		for _, d := range ds {
			if d.Name == name {
				here = d
			}
		}
		if here == nil {
			here = outer
		}
		for _, d := range ds {
			if d == loc {
				found = here
				return true
			}
			if d.HasBlock && walk(d.Block, here) {
				return true
			}
		}
		return false
	}
	walk(ds, nil)
	return found
}

// outputScript is the SCRIPT_NAME the translation runs for host and
// path, "" for none.
func (o output) outputScript(host, p string) string {
	name := "default"
	if i := o.routePick(host, p); i >= 0 {
		r := o.routes[i]
		if f, ok := o.fcgi[r.fallback]; ok && r.upstream == "" {
			return "/" + f.index // try_files' fallback: the front controller
		}
		name = r.upstream
	}
	f, ok := o.fcgi[name]
	if !ok {
		return ""
	}
	if f.script == "path" {
		if strings.HasSuffix(p, "/") {
			return p + f.index
		}
		if base := p[strings.LastIndexByte(p, '/')+1:]; len(base) > 4 && strings.HasSuffix(base, ".php") {
			return p
		}
		return ""
	}
	for i := 0; ; { // split: the first segment ending in .php after a name
		j := strings.Index(p[i:], ".php")
		if j < 0 {
			return "/" + f.index
		}
		end := i + j + 4
		if (end == len(p) || p[end] == '/') && i+j > 0 && p[i+j-1] != '/' {
			return p[:end]
		}
		i = end
	}
}

// sameScript checks that the translation runs no script nginx would not
// for any sample request: none, nginx's own, or the front controller
// where nginx names no .php script (whose name PHP-FPM answers 404 or
// refuses); it returns the first that breaks this.
func sameScript(ds []*Directive, o output, hosts, paths []string) error {
	for _, host := range hosts {
		for _, p := range paths {
			if !strings.HasPrefix(p, "/") {
				continue
			}
			got := o.outputScript(host, p)
			if got == "" {
				continue
			}
			want := nginxScript(ds, host, p, o.tls)
			if got == want {
				continue
			}
			if f, ok := o.fcgi[o.poolOf(host, p)]; ok && got == "/"+f.index && !strings.HasSuffix(want, ".php") {
				continue
			}
			return fmt.Errorf("%s%s: the translation runs %q, nginx %q", host, p, got, want)
		}
	}
	return nil
}

// poolOf names the FastCGI pool that answers host and path, directly or
// as try_files' fallback.
func (o output) poolOf(host, p string) string {
	i := o.routePick(host, p)
	if i < 0 {
		return "default"
	}
	if o.routes[i].upstream != "" {
		return o.routes[i].upstream
	}
	return o.routes[i].fallback
}

// scriptPaths are paths an attacker tries on a PHP site: every sample
// with "/x", "/", "/x.php" after it, spelt as the proxy's normalised
// path reads them.
func scriptPaths(paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, p, p+"/x", p+"/", p+"/x.php", p+"/index.php")
	}
	return out
}
