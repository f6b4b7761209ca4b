package config

import (
	"path/filepath"
	"strings"
)

// FastCGI says which script a request to a FastCGI backend (PHP-FPM)
// runs: a path with ".php" ending a segment runs that script under Root,
// any other path runs Root/Index (the front controller). CONTRACT.md
// section 13.
type FastCGI struct {
	Root  string `yaml:"root"`  // the scripts' directory as the FastCGI server sees it, e.g. /var/www/app/public
	Index string `yaml:"index"` // the front controller under root (default index.php)
	// KeepConn keeps connections to PHP-FPM open between requests
	// (default false, as nginx's fastcgi_keep_conn): PHP-FPM pins a
	// worker to each kept connection, so turn it on only with
	// pm.max_children at least the pool's max_conns.
	KeepConn bool `yaml:"keep_conn"`
	// Script says how a path names its script: "split" (the default,
	// section 13: the first segment ending in .php, the rest PATH_INFO)
	// or "path" (the whole path, as nginx's fastcgi_pass without
	// fastcgi_split_path_info: /a.php/rest is 404, not a.php; what
	// import-nginx writes for such a location).
	Script string `yaml:"script"`
}

// WholePath reports whether the whole path names the script (script: path).
func (f FastCGI) WholePath() bool { return f.Script == "path" }

// IsFastCGI reports whether a backend URL names a FastCGI server.
func IsFastCGI(url string) bool {
	u := strings.ToLower(url)
	return strings.HasPrefix(u, "fastcgi://") || strings.HasPrefix(u, "fastcgi+unix:")
}

// IndexOrDefault is Index, or index.php when it is empty.
func (f FastCGI) IndexOrDefault() string {
	if f.Index == "" {
		return "index.php"
	}
	return f.Index
}

// fastcgi checks each pool: FastCGI backends only with FastCGI backends
// and with fastcgi.root, fastcgi only with FastCGI backends, and no
// pipelining (PHP-FPM serves one request per connection at a time).
func (v *validator) fastcgi() {
	for _, name := range v.c.UpstreamNames() {
		u := v.c.UpstreamConfig(name)
		prefix := ""
		if name != DefaultUpstream {
			prefix = "upstreams." + name + "."
		}
		path := prefix + "fastcgi"
		n := 0
		for _, b := range u.Backends {
			if IsFastCGI(b.URL) {
				n++
			}
		}
		set := u.FastCGI != FastCGI{}
		switch {
		case n > 0 && n < len(u.Backends):
			v.errf(prefix+"backends", "%sbackends: FastCGI and HTTP backends cannot share a pool; give each its own upstream", prefix)
		case n == 0 && set:
			v.errf(path, "%s is set but no backend of the pool is fastcgi:// or fastcgi+unix:", path)
		case n > 0 && u.FastCGI.Root == "":
			v.errf(prefix+"backends", "%s.root is required with FastCGI backends (the directory of the scripts, e.g. /var/www/app/public)", path)
		}
		if set && u.FastCGI.Root != "" && (!filepath.IsAbs(u.FastCGI.Root) || filepath.Clean(u.FastCGI.Root) != u.FastCGI.Root) {
			v.errf(path+".root", "%s.root %q must be an absolute, clean path", path, u.FastCGI.Root)
		}
		if i := u.FastCGI.Index; i != "" && (strings.HasPrefix(i, "/") || strings.Contains(i, "..") || !strings.HasSuffix(i, ".php")) {
			v.errf(path+".index", "%s.index %q must be a .php file under root, e.g. index.php", path, i)
		}
		if sc := u.FastCGI.Script; sc != "" && sc != "split" && sc != "path" {
			v.errf(path+".script", "%s.script %q: split (PATH_INFO after the first .php segment) or path (the whole path is the script)", path, sc)
		}
		if n > 0 && u.Pipeline > 0 {
			pp := prefix + "pipeline"
			v.errf(pp, "%s: FastCGI backends take one request per connection; remove pipeline", pp)
		}
	}
}
