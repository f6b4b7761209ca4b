package nginximport

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"sessionproxy/config"
	// The session.memcached section the translation writes is the
	// memcached store's; cmd links it in, config alone does not.
	_ "sessionproxy/sessionstore/memcached"
)

// realisticConf is a multi-site nginx.conf as sites run it: plain HTTP
// redirected to HTTPS, a shop on an app pool with sessions and an API pool,
// static files by root and alias, error pages, an API host of its own, a
// static host for a domain and its subdomains, and the trusted load
// balancer in front.
const realisticConf = `user www-data;
worker_processes auto;
events { worker_connections 768; }

http {
    sendfile on;
    include mime.types;
    underscores_in_headers on;
    client_max_body_size 20m;
    proxy_connect_timeout 3s;
    proxy_read_timeout 60s;
    set_real_ip_from 10.0.0.0/8;
    set_real_ip_from 192.168.1.10;
    real_ip_header X-Forwarded-For;
    ssl_protocols TLSv1.2 TLSv1.3;

    upstream tomcats {
        least_conn;
        server 10.0.0.11:8080 max_fails=2 fail_timeout=15s;
        server 10.0.0.12:8080 max_fails=2 fail_timeout=15s;
        server 10.0.0.13:8080 backup;
        keepalive 32;
    }
    upstream api_pool {
        server 10.0.1.21:9000 weight=3;
        server 10.0.1.22:9000;
    }
    upstream unused { server 10.9.9.9:80; }

    server {
        listen 80 default_server;
        listen [::]:80 default_server;
        server_name shop.example.com www.example.com;
        return 301 https://$host$request_uri;
    }

    server {
        listen 443 ssl http2 default_server;
        listen [::]:443 ssl default_server;
        server_name shop.example.com;
        ssl_certificate /etc/ssl/shop.pem;
        ssl_certificate_key /etc/ssl/shop.key;
        root /var/www/shop;
        error_page 502 503 504 /50x.html;
        location = /50x.html { root /usr/share/nginx/html; }
        location / {
            proxy_pass http://tomcats;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }
        location /api/ {
            proxy_pass http://api_pool/;
            proxy_read_timeout 120s;
        }
        location /static/ {
            expires 7d;
        }
        location /img/ { alias /srv/images/; }
        location ~ \.php$ { proxy_pass http://127.0.0.1:9000; }
    }

    server {
        listen 443 ssl;
        server_name api.example.com;
        ssl_certificate /etc/ssl/api.pem;
        ssl_certificate_key /etc/ssl/api.key;
        client_max_body_size 100m;
        location /v1/ { proxy_pass http://api_pool/v1/; }
        location /legacy/ { proxy_pass http://10.0.2.5:8081/new/; }
    }

    server {
        listen 443 ssl;
        server_name .static.example.com;
        ssl_certificate /etc/ssl/shop.pem;
        ssl_certificate_key /etc/ssl/shop.key;
        root /var/www/static;
        gzip on;
    }
}
`

// translate parses and translates src and decodes the output, which must
// always be a configuration sessionproxy reads.
func translate(t *testing.T, src string) (*config.Config, string, []Note) {
	t.Helper()
	ds, err := Parse("nginx.conf", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Translate("nginx.conf", ds)
	if err != nil {
		t.Fatalf("Translate: %v (notes %v)", err, res.Notes)
	}
	return parseOutput(t, res.YAML), res.YAML, res.Notes
}

// section15 are the route keys of CONTRACT section 15.
var section15 = []string{"respond", "redirect", "try_files", "headers", "allow", "deny", "basic_auth", "rate_limit"}

// parseOutput reads a translation with config.Parse. Until section 15's
// route keys are in config/ (branch i26-routes), a translation using them
// is read without the routes that do (routesOf reads every route from
// the YAML itself), so that the rest is still checked; once they are
// merged the first Parse succeeds and nothing is left out.
func parseOutput(t *testing.T, y string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(y))
	if err == nil {
		return c
	}
	var doc yaml.Node
	if yaml.Unmarshal([]byte(y), &doc) != nil || !strings.Contains(err.Error(), "unknown key") {
		t.Fatalf("output does not parse: %v\n%s", err, y)
	}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "routes" {
			continue
		}
		rs := top.Content[i+1]
		var kept []*yaml.Node
		for _, r := range rs.Content {
			uses := false
			for j := 0; j+1 < len(r.Content); j += 2 {
				for _, k := range section15 {
					uses = uses || r.Content[j].Value == k
				}
			}
			if !uses {
				kept = append(kept, r)
			}
		}
		rs.Content = kept
	}
	stripped, _ := yaml.Marshal(&doc)
	c, err2 := config.Parse(stripped)
	if err2 != nil {
		t.Fatalf("output does not parse: %v (without section 15's routes: %v)\n%s", err, err2, y)
	}
	return c
}

// routesOf lists the routes of a translation, one line each: "HOST PATH
// -> what it does".
func routesOf(t *testing.T, y string) []string {
	t.Helper()
	var doc struct {
		Routes []struct {
			Match struct {
				Host, Path string
			}
			Upstream, Static string
			Rewrite          string `yaml:"rewrite_prefix"`
			Respond          *struct{ Status int }
			Redirect         *struct {
				To     string
				Status int
			}
			TryFiles []string `yaml:"try_files"`
			Allow    []string
			Deny     []string
		}
	}
	if err := yaml.Unmarshal([]byte(y), &doc); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range doc.Routes {
		s := r.Match.Host + r.Match.Path + " -> "
		switch {
		case r.Respond != nil:
			s += fmt.Sprintf("respond %d", r.Respond.Status)
		case r.Redirect != nil:
			s += fmt.Sprintf("redirect %d %s", r.Redirect.Status, r.Redirect.To)
		case r.Upstream != "":
			s += "upstream " + r.Upstream
		default:
			s += "static " + r.Static
		}
		if r.Rewrite != "" {
			s += " rewrite " + r.Rewrite
		}
		if r.TryFiles != nil {
			s += " try " + strings.Join(r.TryFiles, " ")
		}
		if r.Allow != nil {
			s += " allow " + strings.Join(r.Allow, " ")
		}
		if r.Deny != nil {
			s += " deny " + strings.Join(r.Deny, " ")
		}
		out = append(out, s)
	}
	return out
}

func noted(notes []Note, want string) bool {
	for _, n := range notes {
		if strings.Contains(n.String(), want) {
			return true
		}
	}
	return false
}

func TestTranslateRealistic(t *testing.T) {
	c, out, notes := translate(t, realisticConf)
	want := []string{
		"api.example.com= /v1 -> redirect 301 /v1/$is_args$args",
		"api.example.com= /legacy -> redirect 301 /legacy/$is_args$args",
		"api.example.com/legacy/ -> upstream 10.0.2.5-8081 rewrite /new/",
		"api.example.com/v1/ -> upstream api_pool",
		"api.example.com/ -> respond 404", // no location /: nginx answers 404, not the default server
		"static.example.com/ -> static /var/www/static",
		"*.static.example.com/ -> static /var/www/static",
		"= /50x.html -> static /usr/share/nginx/html",
		"= /api -> redirect 301 /api/$is_args$args",
		`~ \.php$ -> upstream 127.0.0.1-9000`, // before the prefixes, as nginx tries regexes first
		"/static/ -> static /var/www/shop",
		"/api/ -> upstream api_pool rewrite /",
		"/img/ -> static /srv/images rewrite /",
	}
	if got := routesOf(t, out); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("routes:\n%s\nwant\n%s\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), out)
	}
	if c.Listen != ":80" || c.ListenTLS != ":443" || !c.RedirectToHTTPS || c.TLS.MinVersion != "1.2" {
		t.Errorf("listen %q, listen_tls %q, redirect %v, min_version %q", c.Listen, c.ListenTLS, c.RedirectToHTTPS, c.TLS.MinVersion)
	}
	if len(c.TLS.Certificates) != 2 || c.TLS.Certificates[0].Cert != "/etc/ssl/shop.pem" || c.TLS.Certificates[1].Key != "/etc/ssl/api.key" {
		t.Errorf("certificates %+v", c.TLS.Certificates)
	}
	if c.Balancer != "least_conn" || len(c.Backends) != 3 || !c.Backends[2].Backup || c.Health.MaxFails != 2 || c.Health.FailTimeout.Std().String() != "15s" {
		t.Errorf("default pool: %s %+v %+v", c.Balancer, c.Backends, c.Health)
	}
	api := c.Upstreams["api_pool"]
	if api.Balancer != "weighted" || len(api.Backends) != 2 || api.Backends[0].Weight != 3 || api.Health.MaxFails != 3 {
		t.Errorf("api_pool: %+v (its health must not inherit the default pool's max_fails)", api)
	}
	if legacy := c.Upstreams["10.0.2.5-8081"]; len(legacy.Backends) != 1 || legacy.Backends[0].URL != "http://10.0.2.5:8081" {
		t.Errorf("direct proxy_pass pool: %+v", legacy)
	}
	if _, ok := c.Upstreams["unused"]; ok {
		t.Error("an upstream no proxy_pass uses was translated")
	}
	for _, code := range []int{502, 503, 504} {
		if c.ErrorPages[code] != "/usr/share/nginx/html/50x.html" {
			t.Errorf("error_pages[%d] = %q", code, c.ErrorPages[code])
		}
	}
	if len(c.RealIPFrom) != 2 || !c.UnderscoresInHeaders || c.MaxBody != 100<<20 ||
		c.Timeouts.Connect.Std().String() != "3s" || c.Timeouts.Response.Std().String() != "2m0s" {
		t.Errorf("real_ip_from %v, underscores %v, max_body %d, timeouts %+v", c.RealIPFrom, c.UnderscoresInHeaders, c.MaxBody, c.Timeouts)
	}
	for _, want := range []string{
		"nginx.conf:1: user www-data: left out (tuning, logging",
		"nginx.conf:7: include mime.types: left out (tuning, logging",
		"nginx.conf:28: upstream unused: not translated (no translated proxy_pass uses it)",
		"nginx.conf:34: return 301 https://$host$request_uri: translated as redirect_to_https",
		"nginx.conf:38: listen parameter http2: not needed",
		"nginx.conf:57: expires 7d: left out (tuning, logging, caching",
		"nginx.conf:11: proxy_read_timeout 60s: sessionproxy has one proxy_read_timeout for everything: the largest, 2m0s from nginx.conf:54",
		"nginx.conf:9: client_max_body_size 20m: sessionproxy has one client_max_body_size for everything: the largest, 104857600 from nginx.conf:68",
		"nginx.conf:79: gzip on: left out",
	} {
		if !noted(notes, want) {
			t.Errorf("no note %q in\n%s", want, notesText(notes))
		}
	}
	if noted(notes, "50x.html {...}: not translated") {
		t.Error("the location of an error page is noted as untranslated though it became error_pages")
	}
	for _, n := range notes {
		if n.Omitted {
			t.Errorf("omitted: %s", n)
		}
	}
}

func notesText(ns []Note) string {
	var b strings.Builder
	for _, n := range ns {
		b.WriteString(n.String() + "\n")
	}
	return b.String()
}

var translateTests = []struct {
	name   string
	conf   string
	routes []string // want, in order
	notes  []string // substrings of notes that must be there
	check  func(t *testing.T, c *config.Config)
}{
	{
		name:   "proxy_pass without a URI passes the path on",
		conf:   `http { server { listen 8080; location / { proxy_pass http://127.0.0.1:9001; } location /app/ { proxy_pass http://127.0.0.1:9002; } } }`,
		routes: []string{"= /app -> redirect 301 /app/$is_args$args", "/app/ -> upstream 127.0.0.1-9002"},
		check: func(t *testing.T, c *config.Config) {
			if c.Listen != ":8080" || c.Backends[0].URL != "http://127.0.0.1:9001" {
				t.Errorf("listen %q backends %+v", c.Listen, c.Backends)
			}
		},
	},
	{
		name:   "proxy_pass with a URI replaces the prefix",
		conf:   `http { upstream api { server 127.0.0.1:9001; } server { location /api/ { proxy_pass http://api/; } location /old/ { proxy_pass http://api/new/; } location / { root /srv/www; } } }`,
		routes: []string{"= /api -> redirect 301 /api/$is_args$args", "= /old -> redirect 301 /old/$is_args$args", "/api/ -> upstream api rewrite /", "/old/ -> upstream api rewrite /new/", "/ -> static /srv/www"},
		check: func(t *testing.T, c *config.Config) {
			if len(c.Backends) != 0 || len(c.Upstreams["api"].Backends) != 1 {
				t.Errorf("backends %+v upstreams %+v: a static catch-all needs no default pool", c.Backends, c.Upstreams)
			}
		},
	},
	{
		name: "https upstream",
		conf: `http { upstream secure { server 10.0.0.1:8443; } server { location / { proxy_pass https://secure; } } }`,
		check: func(t *testing.T, c *config.Config) {
			if c.Backends[0].URL != "https://10.0.0.1:8443" {
				t.Errorf("backends %+v", c.Backends)
			}
		},
	},
	{
		name:   "root and alias",
		conf:   `http { server { root /var/www; location /a/ { alias /data/other/; } location /static/ { alias /srv/site/static/; } location /s/ { } location /b { alias /data/b; } location / { proxy_pass http://127.0.0.1:9001; } } }`,
		routes: []string{"/static/ -> static /srv/site", "/a/ -> static /data/other rewrite /", "/s/ -> static /var/www", "/b -> static /data"},
	},
	{
		name: "server names: exact, then longest wildcard, then the default server",
		conf: `http {
  server { listen 80; location / { proxy_pass http://127.0.0.1:9000; } }
  server { listen 80; server_name *.example.com; location / { proxy_pass http://127.0.0.1:9001; } }
  server { listen 80; server_name *.eu.example.com; location / { proxy_pass http://127.0.0.1:9002; } }
  server { listen 80; server_name www.example.com example.com; location / { proxy_pass http://127.0.0.1:9003; } }
}`,
		routes: []string{
			"www.example.com/ -> upstream 127.0.0.1-9003", "example.com/ -> upstream 127.0.0.1-9003",
			"*.eu.example.com/ -> upstream 127.0.0.1-9002", "*.example.com/ -> upstream 127.0.0.1-9001"},
	},
	{
		name:   "default_server is the catch-all even when it comes later",
		conf:   `http { server { listen 80; server_name a.example; location / { proxy_pass http://127.0.0.1:9001; } } server { listen 80 default_server; server_name _; location / { proxy_pass http://127.0.0.1:9002; } } }`,
		routes: []string{"a.example/ -> upstream 127.0.0.1-9001"},
		check: func(t *testing.T, c *config.Config) {
			if c.Backends[0].URL != "http://127.0.0.1:9002" {
				t.Errorf("default pool %+v", c.Backends)
			}
		},
	},
	{
		name: "TLS with certificates picked by SNI",
		conf: `http {
  ssl_certificate /etc/ssl/default.pem; ssl_certificate_key /etc/ssl/default.key;
  server { listen 443 ssl; server_name a.example; location / { proxy_pass http://127.0.0.1:9001; } }
  server { listen 443 ssl; server_name b.example; ssl_certificate /etc/ssl/b.pem; ssl_certificate_key /etc/ssl/b.key; location / { proxy_pass http://127.0.0.1:9001; } }
  server { listen 8443 ssl; server_name c.example; location / { proxy_pass http://127.0.0.1:9001; } }
}`,
		notes: []string{"nginx.conf:5: server: not translated (it listens on none of listen_tls :443)"},
		check: func(t *testing.T, c *config.Config) {
			if c.ListenTLS != ":443" || c.Listen != "" && c.Listen != ":8080" || len(c.TLS.Certificates) != 2 || c.TLS.Certificates[1].Cert != "/etc/ssl/b.pem" {
				t.Errorf("listen %q listen_tls %q certificates %+v", c.Listen, c.ListenTLS, c.TLS.Certificates)
			}
		},
	},
	{
		name: "error_page through a location's root, alias or the server's root",
		conf: `http { server {
  root /srv/www;
  error_page 502 /errors/502.html;
  error_page 503 /maint.html;
  error_page 504 =200 /504.html;
  error_page 500 /app/oops.html;
  location /errors/ { alias /srv/errors/; }
  location = /504.html { root /srv/exact; }
  location /app/ { proxy_pass http://127.0.0.1:9001; } } }`,
		notes: []string{"nginx.conf:5: error_page 504 =200 /504.html: the answer keeps its status",
			"nginx.conf:6: error_page 500 /app/oops.html: not translated (the page comes from a backend)"},
		check: func(t *testing.T, c *config.Config) {
			if c.ErrorPages[502] != "/srv/errors/502.html" || c.ErrorPages[503] != "/srv/www/maint.html" || c.ErrorPages[504] != "/srv/exact/504.html" {
				t.Errorf("error_pages %v", c.ErrorPages)
			}
		},
	},
	{
		name:  "real_ip_header proxy_protocol",
		conf:  `http { set_real_ip_from 10.1.0.0/16; real_ip_header proxy_protocol; server { listen 80 proxy_protocol; location / { proxy_pass http://127.0.0.1:9001; } } }`,
		notes: []string{"translated as proxy_protocol: true"},
		check: func(t *testing.T, c *config.Config) {
			if !c.ProxyProtocol || len(c.RealIPFrom) != 1 || c.RealIPFrom[0] != "10.1.0.0/16" {
				t.Errorf("proxy_protocol %v real_ip_from %v", c.ProxyProtocol, c.RealIPFrom)
			}
		},
	},
	{
		name: "several upstreams keep their own balancer and health",
		conf: `http {
  upstream app { server 127.0.0.1:9001 max_fails=5 fail_timeout=30s; server 127.0.0.1:9002 max_fails=5 fail_timeout=30s; }
  upstream api { least_conn; server 127.0.0.1:9101; server 127.0.0.1:9102; }
  upstream search { ip_hash; server 127.0.0.1:9201 weight=2; server 127.0.0.1:9202 down; }
  server { location /api/ { proxy_pass http://api; } location /search/ { proxy_pass http://search; } location / { proxy_pass http://app; } } }`,
		routes: []string{"= /api -> redirect 301 /api/$is_args$args", "= /search -> redirect 301 /search/$is_args$args", "/search/ -> upstream search", "/api/ -> upstream api"},
		notes:  []string{"nginx.conf:4: ip_hash: not translated", "nginx.conf:4: server 127.0.0.1:9202 down: left out"},
		check: func(t *testing.T, c *config.Config) {
			if c.Health.MaxFails != 5 || c.Upstreams["api"].Balancer != "least_conn" || c.Upstreams["api"].Health.MaxFails != 3 ||
				c.Upstreams["search"].Balancer != "weighted" || len(c.Upstreams["search"].Backends) != 1 {
				t.Errorf("health %+v upstreams %+v", c.Health, c.Upstreams)
			}
		},
	},
	{
		name: "what cannot be translated is named with its line",
		conf: `http {
  server {
    listen 80;
    server_name example.com ~^(?<sub>.+)\.example\.com$ www.example.*;
    location = /exact { proxy_pass http://127.0.0.1:9001; }
    location @fallback { proxy_pass http://127.0.0.1:9001; }
    location /vars/ { proxy_pass http://$backend; }
    location /nothing/ { return 204; }
    location / { proxy_pass http://127.0.0.1:9001; if ($bad) { return 403; } rewrite ^/x$ /y; }
  }
  server { listen 81; location / { proxy_pass http://127.0.0.1:9002; } }
  server { listen 80 default_server; location / { proxy_pass http://127.0.0.1:9003; } }
}`,
		// an exact location and return are routes now; a location left out
		// answers 404 rather than let its requests reach the next route
		routes: []string{"example.com= /exact -> upstream 127.0.0.1-9001", "example.com= /vars -> redirect 301 /vars/$is_args$args", "example.com/nothing/ -> respond 204",
			"example.com/vars/ -> respond 404", "example.com/ -> upstream 127.0.0.1-9001"},
		notes: []string{
			"nginx.conf:4: server_name ~^(?<sub>.+)\\.example\\.com$: not translated (regular expressions",
			"nginx.conf:4: server_name www.example.*: not translated",
			"nginx.conf:7: proxy_pass http://$backend: not translated (variables in proxy_pass)",
			"nginx.conf:9: if ($bad) {...}: not translated",
			"nginx.conf:9: rewrite ^/x$ /y: not translated",
			"nginx.conf:11: server: not translated (it listens on none of listen :80)",
		},
	},
	{
		name: "ssl on after listen, and a plain server beside the redirect",
		conf: `http {
  server { listen 80; return 301 https://$host$request_uri; }
  server { listen 443; server_name a.example; ssl_certificate /c.pem; ssl_certificate_key /c.key; ssl on; location / { proxy_pass http://127.0.0.1:9001; } }
  server { listen 80; server_name b.example; location / { proxy_pass http://127.0.0.1:9002; } }
}`,
		notes: []string{"nginx.conf:4: server: listens on plain HTTP only, but redirect_to_https"},
		check: func(t *testing.T, c *config.Config) {
			if c.ListenTLS != ":443" || !c.RedirectToHTTPS || len(c.TLS.Certificates) != 1 {
				t.Errorf("listen_tls %q redirect %v certificates %v", c.ListenTLS, c.RedirectToHTTPS, c.TLS.Certificates)
			}
		},
	},
	{
		name: "a server without location / ends with a 404",
		conf: `http { server { server_name a.example; location /x/ { proxy_pass http://127.0.0.1:9001; } } server { server_name b.example; location / { proxy_pass http://127.0.0.1:9002; } } }`,
		// the default server's requests outside /x/ are nginx's 404, not
		// another server's pool
		routes: []string{"b.example/ -> upstream 127.0.0.1-9002", "= /x -> redirect 301 /x/$is_args$args", "/x/ -> upstream 127.0.0.1-9001", "/ -> respond 404"},
	},
	{
		name:  "timeouts and sizes in nginx's syntax",
		conf:  `http { proxy_connect_timeout 1m30s; keepalive_timeout 75; client_body_timeout 500ms; client_max_body_size 1g; proxy_next_upstream_tries 3; server { location / { proxy_pass http://127.0.0.1:9001; } } }`,
		notes: []string{},
		check: func(t *testing.T, c *config.Config) {
			if c.Timeouts.Connect.Std().String() != "1m30s" || c.Timeouts.ClientIdle.Std().String() != "1m15s" ||
				c.Timeouts.ClientRead.Std().String() != "500ms" || c.MaxBody != 1<<30 || c.Retries != 2 {
				t.Errorf("timeouts %+v max_body %d retries %d", c.Timeouts, c.MaxBody, c.Retries)
			}
		},
	},
}

func TestTranslate(t *testing.T) {
	for _, tt := range translateTests {
		t.Run(tt.name, func(t *testing.T) {
			c, out, notes := translate(t, tt.conf)
			if tt.routes != nil {
				if got := routesOf(t, out); strings.Join(got, "\n") != strings.Join(tt.routes, "\n") {
					t.Errorf("routes:\n%s\nwant\n%s\n%s", strings.Join(got, "\n"), strings.Join(tt.routes, "\n"), out)
				}
			}
			for _, want := range tt.notes {
				if !noted(notes, want) {
					t.Errorf("no note %q in\n%s", want, notesText(notes))
				}
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestTranslateNothing(t *testing.T) {
	for _, conf := range []string{"", "events {}", "http { upstream a { server 1.2.3.4; } }"} {
		ds, err := Parse("nginx.conf", []byte(conf))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Translate("nginx.conf", ds); err != ErrNothing {
			t.Errorf("Translate(%q): %v, want ErrNothing", conf, err)
		}
	}
}

// TestYAMLQuoting: every string the encoder writes reads back as itself,
// whatever YAML would make of it unquoted.
func TestYAMLQuoting(t *testing.T) {
	for _, s := range awkward {
		doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{mapping(false, "listen", text(s), "access_log", word(s))}}
		out, err := yaml.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		c, err := config.Parse(out)
		if err != nil || c.Listen != s || c.AccessLog.Format != s {
			t.Errorf("%q written as %s reads back as %q, %v", s, out, c.Listen, err)
		}
	}
}

// FuzzYAMLText: any string, written by the encoder as a value of the
// nginx file (text) or of the translator's own (word), reads back as
// itself through the configuration parser. yaml.v3 reads only UTF-8, so
// other input is where the file's reader would already have failed.
func FuzzYAMLText(f *testing.F) {
	for _, s := range awkward {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{mapping(false, "listen", text(s), "access_log", word(s))}}
		out, err := yaml.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		c, err := config.Parse(out)
		if err != nil || c.Listen != s || c.AccessLog.Format != s {
			t.Fatalf("%q written as %s reads back as %q, %q, %v", s, out, c.Listen, c.AccessLog.Format, err)
		}
	})
}

// awkward are strings YAML reads as something else unless quoted.
var awkward = []string{`a"b\c`, "tab\there", "nl\nx", "\u0085\u2028\ufeff", "\x7f\x00", "ü€😀",
	"# not a comment", "x: y", "a #b", "*alias", "&anchor", "!tag", "'single'", `"double"`, "true", "off",
	"~", "null", "12", "0x1F", "1e3", "- item", "[a]", "{a: b}", "%x", "@x", "`x", "|", ">", " lead", "trail ",
	"", ":80", "?", "a:b", "José 🙂", "\u00a0",
	"/a very long path/" + strings.Repeat("with spaces and words ", 10) + "end"}

// FuzzTranslate checks that no input panics the translation, that a
// complete translation (exit status 0) is a configuration `check` reads
// (with section 15's keys, which are on branch i26-routes: until they are
// merged, config.Parse refuses the seeds that use them), and that every
// sample request of a complete translation reaches the route made from
// the location nginx would pick: in particular a request for a .php file
// that nginx runs through fastcgi_pass never reaches a static route.
func FuzzTranslate(f *testing.F) {
	f.Add(realisticConf)
	for _, tt := range translateTests {
		f.Add(tt.conf)
	}
	for _, tc := range realConfigs {
		if b, err := os.ReadFile(filepath.Join("testdata", tc.file)); err == nil {
			f.Add(string(b))
		}
	}
	f.Fuzz(func(t *testing.T, src string) {
		ds, err := Parse("f.conf", []byte(src))
		if err != nil {
			return
		}
		res, err := Translate("f.conf", ds)
		if err != nil || !res.Complete() {
			return
		}
		o := readOutput(t, res.YAML)
		if err := sameChoice(ds, o, []string{"a.example", "www.example.com", "example.com"}, samplePaths(ds)); err != nil {
			t.Fatalf("%v\n%s", err, res.YAML)
		}
		if _, err := config.Parse([]byte(res.YAML)); err != nil {
			t.Fatalf("output does not parse: %v\n%s", err, res.YAML)
		}
	})
}

func TestNginxDurationAndSize(t *testing.T) {
	for s, want := range map[string]string{"30": "30s", "500ms": "500ms", "1m30s": "1m30s", "2h": "2h0m0s", "1d": "24h0m0s"} {
		if d, err := nginxDuration(s); err != nil || d.String() != want {
			t.Errorf("nginxDuration(%q) = %v, %v; want %s", s, d, err, want)
		}
	}
	for _, s := range []string{"", "x", "1x", "-1", "1m30", "99999999999y", "9223372036854775807", "s"} {
		if d, err := nginxDuration(s); err == nil {
			t.Errorf("nginxDuration(%q) = %v, want an error", s, d)
		}
	}
	for s, want := range map[string]int64{"1024": 1024, "8k": 8 << 10, "10M": 10 << 20, "1g": 1 << 30, "0": 0} {
		if n, err := nginxSize(s); err != nil || int64(n) != want {
			t.Errorf("nginxSize(%q) = %d, %v; want %d", s, n, err, want)
		}
	}
	for _, s := range []string{"", "k", "-1k", "1t", "9223372036854775807g"} {
		if n, err := nginxSize(s); err == nil {
			t.Errorf("nginxSize(%q) = %d, want an error", s, n)
		}
	}
}

// TestUnusedUpstreamNotesInFileOrder: the notes on upstreams nothing uses,
// each alone in an included file, come in the order of those files, every
// time, though the translator finds its blocks by name in a map.
func TestUnusedUpstreamNotesInFileOrder(t *testing.T) {
	var http []*Directive
	var want strings.Builder
	for _, f := range []string{"z.conf", "m.conf", "a.conf", "q.conf"} {
		ds, err := Parse(f, []byte("upstream u"+f[:1]+" {\n  server 127.0.0.1:1;\n}\n"))
		if err != nil {
			t.Fatal(err)
		}
		http = append(http, ds...)
		fmt.Fprintf(&want, "%s:1: upstream u%s: not translated (no translated proxy_pass uses it)\n", f, f[:1])
	}
	ds := []*Directive{{Name: "http", File: "nginx.conf", Line: 1, Block: http, HasBlock: true}}
	for range 20 {
		res, _ := Translate("nginx.conf", ds)
		if got := notesText(res.Notes); got != want.String() {
			t.Fatalf("notes:\n%swant:\n%s", got, want.String())
		}
	}
}

// TestAwkwardValuesRoundTrip: paths that YAML would misread unquoted (a
// ": ", a "#", a leading "*" or "-", quotes, "true", Unicode) go from
// nginx.conf through the translation and config.Load, validation
// included, unchanged.
func TestAwkwardValuesRoundTrip(t *testing.T) {
	base := t.TempDir()
	names := []string{"a: b", "#hash", "*star", "- dash", `q"uote'`, "true", "José 🙂", "x # y", "&anchor", "{flow}"}
	var conf strings.Builder
	conf.WriteString("http { server { listen 8080; location / { proxy_pass http://127.0.0.1:9001; }\n")
	want := map[string]string{}
	for i, n := range names {
		dir := filepath.Join(base, n)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		path := fmt.Sprintf("/%d%s/", i, n)
		want[path] = dir
		fmt.Fprintf(&conf, "  location %s { root %s; }\n", quote(path), quote(dir))
	}
	conf.WriteString("} }\n")
	ds, err := Parse("nginx.conf", []byte(conf.String()))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Translate("nginx.conf", ds)
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Load([]byte(res.YAML))
	if err != nil {
		t.Fatalf("%v\n%s", err, res.YAML)
	}
	got := map[string]string{}
	for _, r := range c.Routes {
		got[r.Match.Path] = r.Static
	}
	if !maps.Equal(got, want) {
		t.Errorf("routes %v, want %v\n%s", got, want, res.YAML)
	}
}

// TestTranslateHTTP2And3: section 14's keys from nginx's spellings.
// "listen 443 quic" beside the TLS listener is http3: true; "http2 on"
// and "listen ... http2" are the default; "http2 off" and "http3 off"
// turn the protocol off for every server (sessionproxy has one setting);
// a quic listener on another port than listen_tls cannot be kept.
func TestTranslateHTTP2And3(t *testing.T) {
	const tlsServer = `listen 443 ssl; ssl_certificate /c.pem; ssl_certificate_key /k.pem; location / { proxy_pass http://127.0.0.1:9001; }`
	for _, tt := range []struct {
		name, conf   string
		http2, http3 bool
		complete     bool
		note         string
	}{
		{"quic on listen_tls's port", `server { ` + tlsServer + ` listen 443 quic reuseport; http2 on; http3 on; }`, true, true, true, "nginx.conf:1: listen 443 quic reuseport: translated as http3: true"},
		{"listen ... http2", `server { listen 443 ssl http2; ssl_certificate /c.pem; ssl_certificate_key /k.pem; location / { proxy_pass http://127.0.0.1:9001; } }`, true, false, true, "listen parameter http2: not needed"},
		{"http3 spelt as in nginx 1.25.0", `server { ` + tlsServer + ` listen 443 http3; }`, true, true, true, "listen 443 http3: translated as http3: true"},
		{"http2 off and http3 off", `http { http2 off; server { ` + tlsServer + ` listen 443 quic; http3 off; } }`, false, false, true, "listen 443 quic: not translated (http3 off)"},
		{"quic on another port", `server { ` + tlsServer + ` listen 8443 quic; }`, true, false, false, "nginx.conf:1: listen 8443 quic: not translated (sessionproxy serves HTTP/3 only on listen_tls's port"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := Parse("nginx.conf", []byte(tt.conf))
			if err != nil {
				t.Fatal(err)
			}
			res, _ := Translate("nginx.conf", ds)
			if !noted(res.Notes, tt.note) {
				t.Errorf("no note %q in\n%s", tt.note, notesText(res.Notes))
			}
			if res.Complete() != tt.complete {
				t.Fatalf("complete %v, want %v:\n%s", res.Complete(), tt.complete, notesText(res.Notes))
			}
			if !tt.complete {
				return
			}
			c := parseOutput(t, res.YAML)
			if c.HTTP2 != tt.http2 || c.HTTP3 != tt.http3 {
				t.Errorf("http2 %v http3 %v, want %v and %v\n%s", c.HTTP2, c.HTTP3, tt.http2, tt.http3, res.YAML)
			}
		})
	}
}
