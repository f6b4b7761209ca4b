package config

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"sessionproxy/proxy/rules"
)

// Respond is a route's fixed answer (nginx's return CODE "TEXT").
type Respond struct {
	Status int    `yaml:"status"` // 200 to 599 (required)
	Body   string `yaml:"body"`
}

// Redirect is a route's redirect (nginx's return CODE URL). To may hold
// the variables of rules.Variables.
type Redirect struct {
	To     string `yaml:"to"`
	Status int    `yaml:"status"` // 301, 302, 303, 307 or 308 (default 302)
}

// HeaderRules are a route's header edits, of the request before it is
// handed on and of the response before it is sent.
type HeaderRules struct {
	Request  HeaderEdit `yaml:"request"`
	Response HeaderEdit `yaml:"response"`
}

// HeaderEdit removes, then sets (replacing), then adds header lines.
type HeaderEdit struct {
	Set    map[string]string `yaml:"set"`
	Add    map[string]string `yaml:"add"`
	Remove []string          `yaml:"remove"`
}

// BasicAuth asks for a user and password from an htpasswd file of bcrypt
// entries (htpasswd -B), read at start and on each reload.
type BasicAuth struct {
	Realm    string `yaml:"realm"`
	Htpasswd string `yaml:"htpasswd"`
}

// RateLimit limits the requests of each client address or session (a
// leaky bucket, as nginx's limit_req with burst and nodelay).
type RateLimit struct {
	Key   string `yaml:"key"`  // client_ip (default) or session
	Rate  string `yaml:"rate"` // "10r/s" or "600r/m"
	Burst int    `yaml:"burst"`
}

// actions counts the answers a route names; it may name one.
func (r Route) actions() int {
	n := 0
	for _, set := range []bool{r.Upstream != "", r.Static != "", r.Respond != nil, r.Redirect != nil} {
		if set {
			n++
		}
	}
	return n
}

// PathMatchKind says how match.path p matches: "prefix", "exact" ("=
// /path"), "regex" ("~ RE") or "regex_nocase" ("~* RE").
func PathMatchKind(p string) string {
	switch {
	case strings.HasPrefix(p, "~*"):
		return "regex_nocase"
	case strings.HasPrefix(p, "~"):
		return "regex"
	case strings.HasPrefix(p, "="):
		return "exact"
	}
	return "prefix"
}

// PathMatch returns what match.path p compares: the path of a prefix or
// exact match, or the compiled regular expression (nil for the others).
// "^~ /path" is read as the prefix /path: routes are tried in order, so
// nginx's "no regex after this prefix" is a matter of where it stands.
func PathMatch(p string) (path string, re *rules.PathRegex, err error) {
	switch kind := PathMatchKind(p); kind {
	case "regex", "regex_nocase":
		expr := strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(p, "~*"), "~"))
		if expr == "" {
			return "", nil, fmt.Errorf("%q: an empty regular expression", p)
		}
		re, err := rules.CompilePathRegex(expr, kind == "regex_nocase")
		if err != nil {
			return "", nil, fmt.Errorf("invalid regular expression (RE2): %v", err)
		}
		return "", re, nil
	case "exact":
		path = strings.TrimSpace(p[1:])
	default:
		path = strings.TrimSpace(strings.TrimPrefix(p, "^~"))
	}
	if !strings.HasPrefix(path, "/") {
		return "", nil, fmt.Errorf("%q must start with / (or be \"= /path\", \"~ REGEX\", \"~* REGEX\")", p)
	}
	return path, nil, nil
}

var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// routeRules checks the section 15 keys of route r at path p.
func (v *validator) routeRules(p string, r Route) {
	if m := r.Match.Path; m != "" {
		if _, _, err := PathMatch(m); err != nil {
			v.errf(p+".match.path", "%s.match.path: %v", p, err)
		}
	}
	if a := r.Respond; a != nil {
		if a.Status < 200 || a.Status > 599 {
			v.errf(p+".respond.status", "%s.respond.status: %d is not a status from 200 to 599", p, a.Status)
		}
	}
	if a := r.Redirect; a != nil {
		switch a.Status {
		case 0, 301, 302, 303, 307, 308:
		default:
			v.errf(p+".redirect.status", "%s.redirect.status: %d is not 301, 302, 303, 307 or 308", p, a.Status)
		}
		if a.To == "" {
			v.errf(p+".redirect", "%s.redirect.to: the URL to send the client to is required", p)
		} else if _, err := rules.ParseTemplate(a.To); err != nil {
			v.errf(p+".redirect.to", "%s.redirect.to: %v", p, err)
		}
	}
	if len(r.TryFiles) > 0 {
		v.tryFiles(p, r)
	}
	for _, side := range []struct {
		name string
		e    HeaderEdit
	}{{"request", r.Headers.Request}, {"response", r.Headers.Response}} {
		hp := p + ".headers." + side.name
		for _, what := range []struct {
			key string
			m   map[string]string
		}{{"set", side.e.Set}, {"add", side.e.Add}} {
			for n, val := range what.m {
				if !headerNameRE.MatchString(n) {
					v.errf(hp+"."+what.key+"."+n, "%s.%s: %q is not a header name", hp, what.key, n)
				} else if framingHeader(n) {
					v.errf(hp+"."+what.key+"."+n, "%s.%s: %s frames the message; the proxy sets it", hp, what.key, n)
				}
				if strings.ContainsAny(val, "\r\n\x00") {
					v.errf(hp+"."+what.key+"."+n, "%s.%s.%s: a header value holds no CR, LF or NUL", hp, what.key, n)
				}
			}
		}
		for i, n := range side.e.Remove {
			if !headerNameRE.MatchString(n) {
				v.errf(fmt.Sprintf("%s.remove[%d]", hp, i), "%s.remove: %q is not a header name", hp, n)
			} else if framingHeader(n) {
				v.errf(fmt.Sprintf("%s.remove[%d]", hp, i), "%s.remove: %s frames the message; the proxy sets it", hp, n)
			}
		}
	}
	for _, list := range []struct {
		key   string
		items []string
	}{{"allow", r.Allow}, {"deny", r.Deny}} {
		for i, s := range list.items {
			if _, err := ParsePrefix(s); err != nil {
				v.errf(fmt.Sprintf("%s.%s[%d]", p, list.key, i), "%s.%s[%d]: %v", p, list.key, i, err)
			}
		}
	}
	if a := r.BasicAuth; a != nil {
		if a.Htpasswd == "" {
			v.errf(p+".basic_auth", "%s.basic_auth.htpasswd: the file of users is required", p)
		} else if _, err := rules.LoadHtpasswd(a.Htpasswd); err != nil {
			v.errf(p+".basic_auth.htpasswd", "%s.basic_auth.htpasswd: %v", p, err)
		}
	}
	if l := r.RateLimit; l != nil {
		v.oneOf(p+".rate_limit.key", l.Key, "", "client_ip", "session")
		if _, err := rules.ParseRate(l.Rate); err != nil {
			v.errf(p+".rate_limit.rate", "%s.rate_limit.rate: %q: %v", p, l.Rate, err)
		}
		if l.Burst < 0 || l.Burst > 1_000_000 {
			v.errf(p+".rate_limit.burst", "%s.rate_limit.burst: %d is not from 0 to 1000000", p, l.Burst)
		}
	}
}

// tryFiles checks try_files: only with static; templates; "@upstream" or
// "=CODE" only last.
func (v *validator) tryFiles(p string, r Route) {
	if r.Static == "" {
		v.errf(p+".try_files", "%s.try_files: needs static: DIRECTORY, the files it tries", p)
	}
	for i, item := range r.TryFiles {
		ip := fmt.Sprintf("%s.try_files[%d]", p, i)
		last := i == len(r.TryFiles)-1
		switch {
		case strings.HasPrefix(item, "@"):
			name := item[1:]
			if !last {
				v.errf(ip, "%s: %q: a fallback comes last", ip, item)
			} else if _, ok := v.c.Upstreams[name]; !ok && name != DefaultUpstream {
				v.errf(ip, "%s: unknown upstream %q (define it under upstreams:)", ip, name)
			}
		case strings.HasPrefix(item, "="):
			var code int
			if _, err := fmt.Sscanf(item, "=%d", &code); err != nil || code < 200 || code > 599 || http.StatusText(code) == "" || fmt.Sprintf("=%d", code) != item {
				v.errf(ip, "%s: %q is not =CODE", ip, item)
			} else if !last {
				v.errf(ip, "%s: %q: a status comes last", ip, item)
			}
		default:
			if _, err := rules.ParseTemplate(item); err != nil {
				v.errf(ip, "%s: %v", ip, err)
			} else if !strings.HasPrefix(item, "/") && !strings.HasPrefix(item, "$uri") {
				v.errf(ip, "%s: %q must start with / or $uri", ip, item)
			}
		}
	}
}

// framingHeader reports whether header rules must leave name alone: the
// headers that say where a message ends or what the connection does,
// which a rule could make disagree with the body (request smuggling,
// a truncated answer).
func framingHeader(name string) bool {
	switch strings.ToLower(name) {
	case "content-length", "transfer-encoding", "connection", "upgrade", "keep-alive", "te", "trailer":
		return true
	}
	return false
}
