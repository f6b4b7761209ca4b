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
}

type output struct {
	routes          []outRoute
	defaultPool     string // the top-level backends' first URL
	upstreams       map[string]string
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
	o := output{upstreams: map[string]string{}}
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
	if ups := get(top, "upstreams"); ups != nil {
		for i := 0; i+1 < len(ups.Content); i += 2 {
			o.upstreams[ups.Content[i].Value] = firstURL(get(ups.Content[i+1], "backends"))
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
				or.what = "proxy " + o.upstreams[get(r, "upstream").Value]
			default:
				or.what = "static " + get(r, "static").Value
			}
			if tf := get(r, "try_files"); tf != nil {
				last := tf.Content[len(tf.Content)-1].Value
				if strings.HasPrefix(last, "@") {
					or.what += " else proxy " + o.upstreams[last[1:]]
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
// answers was made from the directive nginx would pick. It returns the
// first disagreement.
func sameChoice(ds []*Directive, o output, hosts []string, paths []string) error {
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
