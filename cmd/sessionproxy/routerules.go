package main

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"sessionproxy/config"
	"sessionproxy/proxy"
	"sessionproxy/proxy/rules"
)

// addRules sets what section 15 adds to a route from its config: how its
// path matches, a respond or redirect handler, and its guards and header
// rules. Files (htpasswd) are read here, so each reload reads them anew.
func addRules(route *proxy.Route, r config.Route, c *config.Config, rec *proxy.Recorder) error {
	if r.Match.Path != "" {
		path, re, err := config.PathMatch(r.Match.Path)
		if err != nil {
			return fmt.Errorf("match.path: %w", err)
		}
		route.Path, route.Regex = path, re
		route.Exact = config.PathMatchKind(r.Match.Path) == "exact"
	}
	switch {
	case r.Respond != nil:
		route.Handler = &proxy.Respond{Status: r.Respond.Status, Body: r.Respond.Body, Recorder: rec}
	case r.Redirect != nil:
		to, err := rules.ParseTemplate(r.Redirect.To)
		if err != nil {
			return fmt.Errorf("redirect.to: %w", err)
		}
		route.Handler = &proxy.Redirect{To: to, Status: r.Redirect.Status, Recorder: rec}
	}
	if len(r.Deny) > 0 || len(r.Allow) > 0 {
		acl := &proxy.ACL{}
		for _, s := range r.Deny {
			p, err := config.ParsePrefix(s)
			if err != nil {
				return fmt.Errorf("deny: %w", err)
			}
			acl.Deny = append(acl.Deny, p)
		}
		for _, s := range r.Allow {
			p, err := config.ParsePrefix(s)
			if err != nil {
				return fmt.Errorf("allow: %w", err)
			}
			acl.Allow = append(acl.Allow, p)
		}
		route.Guards = append(route.Guards, acl)
	}
	if a := r.BasicAuth; a != nil {
		users, err := rules.LoadHtpasswd(a.Htpasswd)
		if err != nil {
			return fmt.Errorf("basic_auth.htpasswd: %w", err)
		}
		route.Guards = append(route.Guards, proxy.NewBasicAuth(a.Realm, users))
	}
	if l := r.RateLimit; l != nil {
		rate, err := rules.ParseRate(l.Rate)
		if err != nil {
			return fmt.Errorf("rate_limit.rate: %w", err)
		}
		route.Guards = append(route.Guards, &proxy.RateLimit{
			Limiter:   rules.NewLimiter(rate, l.Burst, 0),
			BySession: l.Key == "session",
			Cookie:    c.Session.Cookie,
		})
	}
	route.Headers = headerRules(r.Headers)
	return nil
}

// headerRules returns the proxy's form of a route's headers, nil when it
// has none, so that such a route takes the plain path.
func headerRules(h config.HeaderRules) *proxy.HeaderRules {
	edit := func(e config.HeaderEdit) proxy.HeaderEdit {
		var out proxy.HeaderEdit
		out.Remove = e.Remove
		for _, n := range slices.Sorted(maps.Keys(e.Set)) {
			out.Set = append(out.Set, proxy.Header{Name: n, Value: e.Set[n]})
		}
		for _, n := range slices.Sorted(maps.Keys(e.Add)) {
			out.Add = append(out.Add, proxy.Header{Name: n, Value: e.Add[n]})
		}
		return out
	}
	req, resp := edit(h.Request), edit(h.Response)
	if len(req.Remove)+len(req.Set)+len(req.Add)+len(resp.Remove)+len(resp.Set)+len(resp.Add) == 0 {
		return nil
	}
	return &proxy.HeaderRules{Request: req, Response: resp}
}

// tryFiles makes the try_files handler of static route s: each entry but
// a last "@upstream" or "=CODE" is a file template. fallbacks are the
// upstreams as a fallback: a FastCGI upstream's front controller
// (proxy.FrontController), as nginx's "try_files ... /index.php?$query_string".
func tryFiles(s *proxy.Static, items []string, fallbacks map[string]*proxy.Proxy) *proxy.TryFiles {
	t := &proxy.TryFiles{Static: s}
	for _, item := range items {
		switch {
		case strings.HasPrefix(item, "@"):
			t.Fallback = fallbacks[item[1:]]
		case strings.HasPrefix(item, "="):
			t.Code, _ = strconv.Atoi(item[1:])
		default:
			tpl, _ := rules.ParseTemplate(item) // checked by config
			t.Tries = append(t.Tries, tpl)
		}
	}
	return t
}
