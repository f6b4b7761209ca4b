package nginximport

import (
	"strings"
	"testing"
)

// section15Tests: one location (or server) each, the route it becomes, and
// whether the translation is complete (exit status 0) or names the line.
var section15Tests = []struct {
	name     string
	conf     string
	routes   []string // routesOf, in order; nil: not checked
	omitted  string   // a note that must be Omitted; "" for a complete translation
	contains string   // text the YAML must hold
}{
	{name: "allow then deny all", conf: `server { location / { allow 10.0.0.0/8; allow 192.168.1.5; deny all; proxy_pass http://127.0.0.1:1; } }`,
		routes: []string{"/ -> upstream 127.0.0.1-1 allow 10.0.0.0/8 192.168.1.5/32"}},
	{name: "deny then allow all", conf: `server { location / { deny 10.0.0.0/8; allow all; proxy_pass http://127.0.0.1:1; } }`,
		routes: []string{"/ -> upstream 127.0.0.1-1 deny 10.0.0.0/8"}},
	{name: "deny, allow, deny all", conf: `server { location / { deny 10.1.0.0/16; allow 10.0.0.0/8; deny all; proxy_pass http://127.0.0.1:1; } }`,
		routes: []string{"/ -> upstream 127.0.0.1-1 allow 10.0.0.0/8 deny 10.1.0.0/16"}},
	{name: "allow before a deny it does not overlap", conf: `server { location / { allow 10.0.0.1; deny 192.168.0.0/16; proxy_pass http://127.0.0.1:1; } }`,
		routes: []string{"/ -> upstream 127.0.0.1-1 deny 192.168.0.0/16"}},
	{name: "allow before a deny it overlaps", conf: `server { location / { allow 10.0.0.1; deny 10.0.0.0/8; proxy_pass http://127.0.0.1:1; } }`,
		omitted: "nginx.conf:1: deny 10.0.0.0/8: not translated (it follows \"allow 10.0.0.1\""},
	{name: "deny all is a 403 and the server's rules are inherited", conf: `server { deny all; location / { root /srv; } location /open/ { allow all; root /srv; } }`,
		routes: []string{"/open/ -> static /srv", "/ -> respond 403"}},
	{name: "return before access", conf: `server { location / { deny all; return 200 "hi"; } }`,
		routes: []string{"/ -> respond 200"}},
	{name: "redirect variables", conf: `server { server_name new.example; location /old/ { return 301 https://$server_name$uri?${args}; } location / { return https://$host$request_uri; } }`,
		routes: []string{"/old/ -> redirect 301 https://new.example$uri?$args", "/ -> redirect 302 https://$host$request_uri"}},
	{name: "unknown variable in a redirect", conf: `server { location / { return 301 https://$cookie_x$request_uri; } }`,
		omitted: "nginx.conf:1: return 301 https://$cookie_x$request_uri: not translated (variables"},
	{name: "server-level return answers everything", conf: `server { server_name gone.example; return 410; location / { proxy_pass http://127.0.0.1:1; } } server { listen 80 default_server; location / { proxy_pass http://127.0.0.1:2; } }`,
		routes: []string{"gone.example/ -> respond 410"}},
	{name: "regexes after ^~ and exact, before prefixes", conf: `server { location / { proxy_pass http://127.0.0.1:1; } location ~* \.(png|jpg)$ { root /img; } location ^~ /raw/ { root /raw; } location = /x.png { return 204; } location /deep/path/ { proxy_pass http://127.0.0.1:2; } }`,
		routes: []string{"= /x.png -> respond 204", "= /deep/path -> redirect 301 /deep/path/$is_args$args", "/raw/ -> static /raw", `~* \.(png|jpg)$ -> static /img`, "/deep/path/ -> upstream 127.0.0.1-2"}},
	// nginx answers "/a" with a 301 to "/a/" when "location /a/" proxies,
	// before trying the regexes; only "= /b" beats it (checked on nginx
	// 1.22: /a 301, /b 205, /c 301, /a?x=1 to /a/?x=1).
	{name: "a proxied prefix's path without its slash redirects, before regexes", conf: `server { location /a/ { proxy_pass http://127.0.0.1:1; } location ~ ^/a$ { return 204; } location = /b { return 205; } location /b/ { proxy_pass http://127.0.0.1:1; } location ~ ^/c$ { return 204; } location ^~ /c/ { root /c; fastcgi_pass 127.0.0.1:1; } location /d/ { root /d; } }`,
		routes: []string{"= /b -> respond 205", "= /a -> redirect 301 /a/$is_args$args", "= /c -> redirect 301 /c/$is_args$args", "/c/ -> upstream 127.0.0.1-1",
			"~ ^/a$ -> respond 204", "~ ^/c$ -> respond 204", "/a/ -> upstream 127.0.0.1-1-2", "/b/ -> upstream 127.0.0.1-1-2", "/d/ -> static /d", "/ -> respond 404"}},
	{name: "a prefix extending ^~ with regexes around", conf: `server { location ^~ /a/ { root /a; } location /a/b/ { root /b; } location ~ \.php$ { return 403; } location / { root /r; } }`,
		omitted: "nginx.conf:1: location /a/b/ {...}: not translated (it extends the \"^~\" location"},
	{name: "no location /: a 404 ends the server's routes", conf: `server { server_name a.example; location /x/ { root /x; } } server { listen 80 default_server; location / { root /r; } }`,
		routes: []string{"a.example/x/ -> static /x", "a.example/ -> respond 404", "/ -> static /r"}},
	{name: "named fallback", conf: `upstream app { server unix:/run/app.sock; } server { root /srv; location / { try_files $uri $uri/ @app; } location @app { proxy_pass http://app; } }`,
		routes: []string{"/ -> static /srv try $uri $uri/index.html @app"}, contains: `url: "unix:/run/app.sock"`},
	{name: "try_files to a file", conf: `server { root /srv; location / { try_files $uri /index.html; } }`,
		omitted: "try_files $uri /index.html: not translated"},
	{name: "fastcgi on a unix socket", conf: `server { root /var/www; index index.php; location ~ \.php$ { fastcgi_pass unix:/run/php/php8.2-fpm.sock; include fastcgi_params; fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name; } location / { try_files $uri /index.php$is_args$args; } }`,
		routes: []string{`~ \.php$ -> upstream php8.2-fpm`, "/ -> static /var/www try $uri @php8.2-fpm"}, contains: `fastcgi: {root: "/var/www", index: "index.php", script: "path"}`},
	// nginx's $fastcgi_script_name is the whole URI unless
	// fastcgi_split_path_info splits it: /a.php/rest is no script
	// ("script: path"); Debian's lazy split is section 13's ("script"
	// left out); the greedy one splits at the last .php, which a pool
	// does not (issue 26).
	{name: "fastcgi without fastcgi_split_path_info: the whole path is the script", conf: `server { root /var/www; location ~ \.php$ { fastcgi_pass 127.0.0.1:9000; } location ~ ^/admin/.*\.php$ { deny all; } location / { try_files $uri /index.php?$query_string; } }`,
		routes: []string{`~ \.php$ -> upstream 127.0.0.1-9000`, `~ ^/admin/.*\.php$ -> respond 403`, "/ -> static /var/www try $uri @127.0.0.1-9000"}, contains: `fastcgi: {root: "/var/www", index: "index.php", script: "path"}`},
	{name: "fastcgi with Debian's lazy split", conf: `server { root /var/www; location ~ [^/]\.php(/|$) { fastcgi_split_path_info ^(.+?\.php)(/.*)$; fastcgi_pass 127.0.0.1:9000; } }`,
		contains: `fastcgi: {root: "/var/www", index: "index.php"}`},
	{name: "Debian's snippets/fastcgi-php.conf, as included", conf: `server { root /var/www; location ~ \.php$ { fastcgi_split_path_info ^(.+?\.php)(/.*)$; try_files $fastcgi_script_name =404; set $path_info $fastcgi_path_info; fastcgi_param PATH_INFO $path_info; fastcgi_index index.php; fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name; fastcgi_pass unix:/run/php/php8.2-fpm.sock; } }`,
		contains: `fastcgi: {root: "/var/www", index: "index.php"}`},
	{name: "another set", conf: `server { root /var/www; location ~ \.php$ { set $path_info /x; fastcgi_param PATH_INFO $path_info; fastcgi_pass unix:/run/php/php8.2-fpm.sock; } }`,
		omitted: "set $path_info /x: not translated"},
	{name: "fastcgi_split_path_info inherited from the server", conf: `server { root /var/www; fastcgi_split_path_info ^(.+?\.php)(/.*)$; location ~ \.php(/|$) { fastcgi_pass 127.0.0.1:9000; } }`,
		contains: `fastcgi: {root: "/var/www", index: "index.php"}`},
	{name: "a lazy split that leaves /a.php/ whole", conf: `server { root /var/www; fastcgi_split_path_info ^(.+?\.php)(/.+)$; location ~ \.php(/|$) { fastcgi_pass 127.0.0.1:9000; } }`,
		omitted: `fastcgi_split_path_info ^(.+?\.php)(/.+)$: not translated`},
	{name: "fastcgi with a greedy split", conf: `server { root /var/www; location ~ ^/index\.php(/|$) { fastcgi_split_path_info ^(.+\.php)(/.*)$; fastcgi_pass 127.0.0.1:9000; } }`,
		omitted: `nginx.conf:1: fastcgi_split_path_info ^(.+\.php)(/.*)$: not translated (sessionproxy splits PATH_INFO at the first segment ending in .php`},
	{name: "one fastcgi_pass with and without a split: two pools", conf: `server { root /var/www; location ~ ^/api\.php(/|$) { fastcgi_split_path_info ^(.+?\.php)(/.*)$; fastcgi_pass 127.0.0.1:9000; } location ~ \.php$ { fastcgi_pass 127.0.0.1:9000; } }`,
		routes: []string{`~ ^/api\.php(/|$) -> upstream 127.0.0.1-9000`, `~ \.php$ -> upstream 127.0.0.1-9000-2`, "/ -> static /var/www"}},
	{name: "a custom fastcgi_param", conf: `server { root /var/www; location ~ \.php$ { fastcgi_pass 127.0.0.1:9000; fastcgi_param APP_ENV prod; } }`,
		omitted: "fastcgi_param APP_ENV prod: not translated"},
	// which script runs is the pool's rule: a SCRIPT_FILENAME naming
	// another script would have /api/admin.php run admin.php, not api.php
	{name: "a fixed SCRIPT_FILENAME", conf: `server { root /var/www; location /api/ { fastcgi_pass 127.0.0.1:9000; include fastcgi_params; fastcgi_param SCRIPT_FILENAME $document_root/api.php; } }`,
		omitted: "fastcgi_param SCRIPT_FILENAME $document_root/api.php: not translated"},
	{name: "the usual SCRIPT_FILENAME and PATH_INFO", conf: `server { root /var/www; location ~ \.php$ { fastcgi_pass 127.0.0.1:9000; fastcgi_param SCRIPT_FILENAME $realpath_root$fastcgi_script_name; fastcgi_param PATH_INFO $fastcgi_path_info; fastcgi_param SCRIPT_NAME $fastcgi_script_name; } }`,
		contains: `script: "path"`},
	// a named FastCGI fallback: nginx runs what its SCRIPT_FILENAME
	// names, sessionproxy's fallback the pool's index
	{name: "a named FastCGI fallback running the index", conf: `server { root /var/www; location / { try_files $uri @php; } location @php { include fastcgi_params; fastcgi_param SCRIPT_FILENAME $document_root/index.php; fastcgi_pass 127.0.0.1:9000; } }`,
		routes: []string{"/ -> static /var/www try $uri @127.0.0.1-9000"}},
	{name: "a named FastCGI fallback running the path", conf: `server { root /var/www; location / { try_files $uri @php; } location @php { include fastcgi_params; fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name; fastcgi_pass 127.0.0.1:9000; } }`,
		omitted: "try_files $uri @php: not translated (the named FastCGI location runs the path as its script"},
	{name: "a named FastCGI fallback running another script", conf: `server { root /var/www; location / { try_files $uri @php; } location @php { fastcgi_param SCRIPT_FILENAME $document_root/admin.php; fastcgi_pass 127.0.0.1:9000; } }`,
		omitted: "try_files $uri @php: not translated (the named FastCGI location runs the path as its script"},
	{name: "headers", conf: `server { add_header Strict-Transport-Security "max-age=1" always; location / { proxy_pass http://127.0.0.1:1; proxy_set_header X-Tenant acme; proxy_set_header Accept-Encoding ""; proxy_hide_header X-Powered-By; } }`,
		contains: `"X-Tenant": "acme"`},
	{name: "a location's add_header replaces the server's", conf: `server { add_header A 1; location / { add_header B 2; proxy_pass http://127.0.0.1:1; } }`,
		contains: `"B": "2"`},
	{name: "auth_basic and limit_req", conf: `limit_req_zone $binary_remote_addr zone=one:10m rate=5r/s; server { auth_basic "staff"; auth_basic_user_file /etc/htpasswd; location / { limit_req zone=one burst=10; proxy_pass http://127.0.0.1:1; } location /pub/ { auth_basic off; proxy_pass http://127.0.0.1:1; } }`,
		contains: `basic_auth: {realm: "staff", htpasswd: "/etc/htpasswd"}`},
	{name: "limit_req by another key", conf: `limit_req_zone $http_x_user zone=u:1m rate=1r/s; server { location / { limit_req zone=u; proxy_pass http://127.0.0.1:1; } }`,
		omitted: "limit_req_zone $http_x_user zone=u:1m rate=1r/s: not translated (only zones keyed"},
	{name: "auth_request", conf: `server { location / { auth_request /auth; proxy_pass http://127.0.0.1:1; } }`,
		omitted: "nginx.conf:1: auth_request /auth: not translated"},
	{name: "limit_except", conf: `server { location / { limit_except GET { deny all; } proxy_pass http://127.0.0.1:1; } }`,
		omitted: "nginx.conf:1: limit_except GET {...}: not translated"},
	{name: "an unknown directive", conf: `server { location / { frobnicate on; proxy_pass http://127.0.0.1:1; } }`,
		omitted: "nginx.conf:1: frobnicate on: not translated"},
	// The PHP location stays FastCGI; what no location matches nginx
	// answers from the server's root, and so does the last route (whose
	// static files never serve a .php name: static.RefusedName).
	{name: "a PHP location beside root never becomes static", conf: `server { root /var/www; location ~ \.php$ { fastcgi_pass 127.0.0.1:9000; } }`,
		routes: []string{`~ \.php$ -> upstream 127.0.0.1-9000`, "/ -> static /var/www"}},
}

func TestSection15(t *testing.T) {
	for _, tt := range section15Tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := Parse("nginx.conf", []byte(tt.conf))
			if err != nil {
				t.Fatal(err)
			}
			res, err := Translate("nginx.conf", ds)
			if err != nil && (err != ErrNothing || tt.omitted == "") {
				t.Fatal(err)
			}
			if tt.omitted != "" {
				found := false
				for _, n := range res.Notes {
					found = found || n.Omitted && strings.Contains(n.String(), tt.omitted)
				}
				if !found || res.Complete() {
					t.Fatalf("complete %v, want an omission %q:\n%s", res.Complete(), tt.omitted, notesText(res.Notes))
				}
				return
			}
			if !res.Complete() {
				t.Fatalf("not complete:\n%s", notesText(res.Notes))
			}
			if tt.routes != nil {
				if got := routesOf(t, res.YAML); strings.Join(got, "\n") != strings.Join(tt.routes, "\n") {
					t.Errorf("routes:\n%s\nwant\n%s\n%s", strings.Join(got, "\n"), strings.Join(tt.routes, "\n"), res.YAML)
				}
			}
			if !strings.Contains(res.YAML, tt.contains) {
				t.Errorf("no %q in\n%s", tt.contains, res.YAML)
			}
			o := readOutput(t, res.YAML)
			if err := sameChoice(ds, o, []string{"a.example", "gone.example", "other.example"}, samplePaths(ds, "/x.png", "/a.PNG", "/raw/x.png", "/deep/path/x.jpg")); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestTryFilesDirectoryPHPIndexNoted(t *testing.T) {
	// nginx runs /blog/index.php for /blog/ (index index.php, then
	// try_files $uri/); the translation's $uri/ tries index.html alone and
	// /blog/ runs the site's front controller: said, not silent.
	conf := `server { root /var/www; index index.php index.html;
		location / { try_files $uri $uri/ /index.php?$query_string; }
		location ~ \.php$ { fastcgi_pass unix:/run/php/php8.2-fpm.sock; include fastcgi_params; } }`
	ds, err := Parse("nginx.conf", []byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Translate("nginx.conf", ds)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Complete() {
		t.Fatalf("not complete:\n%s", notesText(res.Notes))
	}
	want := "nginx.conf:2: try_files $uri $uri/ /index.php?$query_string: $uri/ does not try index.php"
	if !strings.Contains(notesText(res.Notes), want) {
		t.Fatalf("notes, want %q:\n%s", want, notesText(res.Notes))
	}
}
