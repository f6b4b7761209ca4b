package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"sessionproxy/internal/testutil"
	"sessionproxy/internal/tlstest"
)

// TestImportNginxRefuses: section 15's exit status 2 for what cannot be
// kept (nested locations, "if", a PCRE lookahead in a deny location),
// with nothing on stdout and each omission named as FILE:LINE.
func TestImportNginxRefuses(t *testing.T) {
	for file, want := range map[string][]string{
		"mastodon-nested.conf": {":9: location /system/ {...}: not translated (nested locations", ":13: add_header X-Cached $upstream_cache_status: not translated (variables)"},
		"discourse-if.conf":    {":7: if ($http_cookie ~* _t= ) {...}: not translated"},
		"php-lookahead.conf":   {`:9: location ~ /\.(?!well-known).* {...}: not translated`},
	} {
		path := filepath.Join("..", "..", "nginximport", "testdata", file)
		code, out, errOut := run("import-nginx", path)
		if code != 2 || out != "" {
			t.Errorf("%s: exit %d, stdout %q; want 2 and nothing", file, code, out)
		}
		for _, w := range want {
			if !strings.Contains(errOut, path+w) {
				t.Errorf("%s: stderr lacks %q:\n%s", file, path+w, errOut)
			}
		}
	}
}

// TestImportNginxRealConfigsExitZero: the test configs in the shape of
// Mastodon, Discourse, GitLab, NetBox, Sentry and a PHP-FPM site translate
// with exit status 0 apart from the files they name that are missing on
// this machine, which `check` reports (exit 1, output printed). It needs
// section 15's route keys in config/ (branch i26-routes): before they are
// merged, check refuses them too.
func TestImportNginxRealConfigsExitZero(t *testing.T) {
	for _, file := range []string{"php-fpm.conf", "mastodon.conf", "discourse.conf", "gitlab.conf", "netbox.conf", "sentry.conf", "prefix-static.conf", "two-sites.conf", "wordpress.conf"} {
		path := filepath.Join("..", "..", "nginximport", "testdata", file)
		code, out, errOut := run("import-nginx", path)
		if code == 2 || out == "" {
			t.Errorf("%s: exit %d:\n%s", file, code, errOut)
			continue
		}
		// Only files missing here may fail check.
		for _, line := range strings.Split(errOut, "\n") {
			if strings.HasPrefix(line, "output:") && !strings.Contains(line, "no such file") && !strings.Contains(line, "does not exist") {
				t.Errorf("%s: %s", file, line)
			}
		}
	}
}

// sideBySide is one configuration run by nginx and by sessionproxy.
type sideBySide struct {
	file string
	name string // the subtest's name, when not file
	// edit rewrites the file for the test: addresses to the stubs'
	// ({{NAME}} is the stub NAME's host:port, {{unix:NAME}} its socket),
	// directories to the test's ({{dir}}), the listen address ({{listen}}).
	edit     []string // pairs: old, new
	backends []string // HTTP stubs answering "backend NAME"
	sockets  []string // HTTP stubs on unix sockets (app1 and app2 both answer "backend app": one pool)
	fastcgi  []string // FastCGI stubs answering "fastcgi SCRIPT_FILENAME"
	files    []string // files below {{dir}}, each holding "file NAME"
	copies   []string // pairs: a file of this machine, its copy's name below {{dir}}
	host     string
	// paths are the sample requests, on host unless written
	// "//OTHERHOST/path". On a TLS configuration they go to the HTTPS
	// listeners, and plain to the plain ones, whose answers must be the
	// same redirect to HTTPS.
	paths []string
	plain []string
	// dotfiles are samples where nginx serves a file and sessionproxy,
	// by design, does not: its static package never serves a path with
	// a segment starting with "." (.env, .git, .htpasswd) other than
	// .well-known (static/static.go). Each maps to sessionproxy's
	// answer: "404", or the body of the try_files fallback that answers
	// instead (the request goes on as if the file were missing). Less
	// than nginx, never more.
	dotfiles map[string]string
	// stricter are samples sessionproxy refuses and nginx answers, by
	// design, each with sessionproxy's status: a path segment is read up
	// to its first ";" (";" or "%3b"), as Tomcat reads path parameters
	// (proxy/reqline.go normalizePath), so /xmlrpc.php;x is
	// /xmlrpc.php to every route, which nginx reads as another name.
	// Less than nginx, never more.
	stricter map[string]int
	// tls: the configuration listens on {{listen_tls}} with {{cert}}
	// and {{key}}, a certificate from internal/tlstest for host and
	// other.example.com.
	tls bool
}

var sideBySides = []sideBySide{
	{
		// Only what sessionproxy had before section 15: passes now.
		file: "prefix-static.conf",
		edit: []string{"listen 80;", "listen {{listen}};", "127.0.0.1:8001", "{{app}}", "127.0.0.1:8002", "{{api}}",
			"/srv/www", "{{dir}}/www", "/srv/images/", "{{dir}}/images/"},
		backends: []string{"app", "api"},
		files:    []string{"www/static/a.css", "images/a.png", "www/index.html"},
		host:     "any.example",
		paths:    []string{"/", "/x", "/api/users", "/api/v2/users", "/static/a.css", "/static/none.css", "/img/a.png", "/img/none.png"},
	},
	{
		file: "sentry.conf",
		edit: []string{"user nginx;", "", "pid /var/run/nginx.pid;", "pid {{dir}}/nginx.pid;", "error_log /var/log/nginx/error.log warn;", "error_log {{dir}}/error.log;",
			"listen 80;", "listen {{listen}};", "127.0.0.1:3000", "{{relay}}", "127.0.0.1:9000", "{{web}}", "root /var/www/;", "root {{dir}}/;"},
		backends: []string{"relay", "web"},
		files:    []string{"js-sdk/7.0/bundle.js", "js-sdk/.env", "sentry.conf.py"},
		host:     "sentry.example.com",
		paths: []string{"/api/1/envelope/", "/api/42/store/", "/api/store/", "/api/0/relays/register/", "/api/0/projects/",
			"/js-sdk/7.0/bundle.js", "/js-sdk/7.0/bundle.js/", "/js-sdk/none.js", "/_assets/app.js", "/_static/x.js", "/organizations/x/issues/",
			"/api/0/relays", "/api/0/relays?x=1", "/api/store", "/API/1/store/", "/api/01/store/", "/js-sdk/", "/js-sdk/../sentry.conf.py", "/sentry.conf.py",
			"/js-sdk/.env", "//other.example.com/api/1/store/", "//other.example.com/js-sdk/7.0/bundle.js"},
		dotfiles: map[string]string{"/js-sdk/.env": "404"},
	},
	{
		file: "gitlab.conf",
		edit: []string{"listen 0.0.0.0:80 default_server;", "listen {{listen}} default_server;", "listen [::]:80 default_server;", "",
			"unix:/home/git/gitlab/tmp/sockets/gitlab-workhorse.socket", "{{unix:workhorse}}", "/home/git/gitlab/public", "{{dir}}/public",
			"/var/log/nginx/", "{{dir}}/"},
		sockets: []string{"workhorse"},
		files:   []string{"public/robots.txt", "public/help/index.html", "public/about.html", "public/502.html", "public/404.html", "public/500.html", "public/.env", "secrets.yml"},
		host:    "gitlab.example.com",
		paths: []string{"/", "/robots.txt", "/help/", "/help", "/about", "/group/project/-/issues", "/502.html", "/404.html", "/500.html", "/503.html",
			"/none", "/.env", "/../secrets.yml", "/secrets.yml", "//other.example.com/", "//other.example.com/robots.txt"},
		dotfiles: map[string]string{"/.env": "backend workhorse /.env"},
	},
	{
		file: "discourse.conf",
		edit: []string{"listen 80;", "listen {{listen}};", "unix:/var/www/discourse/tmp/sockets/nginx.http.sock", "{{unix:app1}}",
			"unix:/var/www/discourse/tmp/sockets/nginx2.http.sock", "{{unix:app2}}", "/var/www/discourse/public", "{{dir}}/public",
			"https://avatars.discourse.org/", "http://{{avatars}}/"},
		sockets:  []string{"app1", "app2"},
		backends: []string{"avatars"},
		files:    []string{"public/assets/app.js", "public/favicon.ico", "public/admin/x.txt", "public/.env", "public/assets/.env"},
		host:     "forum.example.com",
		paths: []string{"/assets/app.js", "/assets/none.js", "/favicon.ico", "/t/welcome/1", "/srv/status", "/srv/status/x", "/letter_avatar_proxy/v4/a.png",
			"/letter_avatar_proxy", "/admin/x.txt", "/admin/", "/admin/users", "/admin", "/assets/../admin/x.txt", "/.env", "/assets/.env",
			"//other.example.com/t/welcome/1", "//other.example.com/admin/x.txt"},
		dotfiles: map[string]string{"/.env": "backend app /.env", "/assets/.env": "404"},
	},
	{
		file: "mastodon.conf",
		edit: []string{"listen 80;", "listen {{listen}};", "listen [::]:80;", "", "listen 443 ssl http2;", "listen {{listen_tls}} ssl http2;", "listen [::]:443 ssl http2;", "",
			"/etc/letsencrypt/live/mastodon.example.com/fullchain.pem", "{{cert}}", "/etc/letsencrypt/live/mastodon.example.com/privkey.pem", "{{key}}",
			"/home/mastodon/live/public", "{{dir}}/public", "127.0.0.1:3000", "{{backend}}", "127.0.0.1:4000", "{{streaming}}"},
		tls:      true,
		backends: []string{"backend", "streaming"},
		files:    []string{"public/sw.js", "public/assets/app.js", "public/packs/p.js", "public/system/media/a.png", "public/500.html", "public/.env", "public/robots.txt"},
		host:     "mastodon.example.com",
		paths: []string{"/", "/sw.js", "/sw.js/x", "/assets/app.js", "/assets/none.js", "/packs/p.js", "/xassets/app.js", "/system/media/a.png", "/system/none.png",
			"/api/v1/streaming", "/api/v1/streaming/user", "/api/v1/streamingx", "/api/v1/timelines/home", "/robots.txt", "/.env", "/500.html",
			"//other.example.com/", "//other.example.com/sw.js"},
		// Not /.well-known/acme-challenge/: nginx answers it from root on
		// the plain port, sessionproxy sends it to HTTPS with the rest
		// (and answers ACME's own challenges itself: section 14).
		plain: []string{"/", "/sw.js", "/api/v1/timelines/home?limit=2", "/.env", "//other.example.com/x"},
	},
	{
		file: "netbox.conf",
		edit: []string{"listen [::]:443 ssl ipv6only=off;", "listen {{listen_tls}} ssl;", "listen [::]:80 ipv6only=off;", "listen {{listen}};",
			"/etc/ssl/certs/netbox.crt", "{{cert}}", "/etc/ssl/private/netbox.key", "{{key}}",
			"/opt/netbox/netbox/static/", "{{dir}}/static/", "127.0.0.1:8001", "{{netbox}}"},
		tls:      true,
		backends: []string{"netbox"},
		files:    []string{"static/css/base.css", "static/.gitkeep", "configuration.py"},
		host:     "netbox.example.com",
		paths: []string{"/", "/dcim/devices/", "/static/css/base.css", "/static/none.css", "/static", "/staticx/css/base.css", "/static/.gitkeep",
			"/configuration.py", "/static/../configuration.py", "/netbox.conf", "//other.example.com/static/css/base.css", "//other.example.com/login/"},
		dotfiles: map[string]string{"/static/.gitkeep": "404"},
		plain:    []string{"/", "/static/css/base.css", "/login/?next=/dcim/", "//other.example.com/x"},
	},
	{
		// Two servers on one port: a path none of the app's locations
		// matches is its 404, never the default site's file.
		file: "two-sites.conf",
		edit: []string{"listen 80;", "listen {{listen}};", "listen 80 default_server;", "listen {{listen}} default_server;",
			"/srv/app/public", "{{dir}}/app", "/srv/www", "{{dir}}/www", "127.0.0.1:8001", "{{api}}"},
		backends: []string{"api"},
		files:    []string{"app/assets/a.css", "app/data.json", "app/assets/b.json", "app/index.html", "www/index.html", "www/about.html", "www/docs/index.html", "www/assets/a.css"},
		host:     "app.example.com",
		paths: []string{"/", "/index.html", "/about.html", "/assets/a.css", "/assets/b.json", "/assets/none.css", "/data.json", "/api/users", "/api",
			"/healthz", "/healthz/", "/none", "/data%2ejson", "/data%2Ejson", "/assets/b%2ejson", "/data.json/", "/data.JSON", "//www.example.com/", "//www.example.com/about.html", "//www.example.com/docs/", "//www.example.com/assets/a.css",
			"//www.example.com/data.json", "//other.example.com/about.html", "//other.example.com/api/users", "//APP.example.com/about.html"},
	},
	{
		file: "php-fpm.conf",
		edit: []string{"listen 80 default_server;", "listen {{listen}} default_server;", "/var/www/app/public", "{{dir}}/public",
			"include snippets/fastcgi-php.conf;", "include /etc/nginx/fastcgi_params; fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name; try_files $uri =404;",
			"127.0.0.1:9000", "{{fpm}}"},
		fastcgi: []string{"fpm"},
		files: []string{"public/index.php", "public/config.php", "public/css/app.css", "public/.htaccess", "public/.htpasswd", "public/.env", "public/favicon.ico",
			"public/private/secret.php", "public/private/notes.txt", "app.php"},
		host: "php.example.com",
		paths: []string{"/config.php", "/index.php", "/none.php", "/css/app.css", "/users/1", "/.htaccess", "/private/secret.php",
			"/healthz", "/favicon.ico", "/.htpasswd", "/.env", "/private/", "/private/notes.txt", "/PRIVATE/secret.php", "/index.php/../config.php", "/css/app.css/",
			"/css/app.css.php", "/healthz/", "/../app.php", "/CONFIG.PHP", "//other.example.com/config.php", "//other.example.com/private/notes.txt",
			// nginx's try_files runs /index.php for them, and so does
			// sessionproxy's fallback (proxy.FrontController): before
			// issue 26 the pool ran config.php with PATH_INFO /x
			"/config.php/x", "/config.php/", "/private/secret.php/x", "/.htaccess.php/x"},
		dotfiles: map[string]string{"/.env": "fastcgi /public/index.php"},
	},
	{
		// The PHP site with Debian's own snippets/fastcgi-php.conf (and
		// the fastcgi.conf it includes), read by both: its
		// fastcgi_split_path_info ^(.+?\.php)(/.*)$ is the pool's
		// script: split, its try_files $fastcgi_script_name =404 the
		// pool's 404 for a missing script.
		file: "php-fpm.conf",
		name: "php-fpm.conf with Debian's snippet",
		edit: []string{"listen 80 default_server;", "listen {{listen}} default_server;", "/var/www/app/public", "{{dir}}/public",
			"127.0.0.1:9000", "{{fpm}}"},
		copies:  []string{"/etc/nginx/snippets/fastcgi-php.conf", "snippets/fastcgi-php.conf", "/etc/nginx/fastcgi.conf", "fastcgi.conf"},
		fastcgi: []string{"fpm"},
		files:   []string{"public/index.php", "public/config.php", "public/css/app.css", "public/private/secret.php", "public/sub.php/a.php"},
		host:    "php.example.com",
		paths: []string{"/config.php", "/index.php", "/none.php", "/users/1", "/config.php/x", "/config.php/", "/config.php/x.php",
			"/none.php/x.php", "/index.php/config.php", "/private/secret.php", "/private/secret.php/x", "/sub.php/a.php", "/sub.php/a.php/x.php",
			"/CONFIG.PHP", "/config%2ephp/x.php", "//config.php//x.php", "/x/../config.php/x.php", "/css/app.css/x.php"},
	},
	{
		// Scripts refused by regexes ending in \.php$ and by an exact
		// location: a path going on past the script's name
		// (/wp-config.php/x) matches none of them, nor "\.php$", so
		// nginx's try_files runs index.php; it must never run the
		// refused script (issue 26: the FastCGI pool ran
		// wp-config.php with PATH_INFO /x). The samples an attacker
		// would try: encoded dots and slashes, "..", double slashes,
		// case, trailing dots and slashes.
		file: "wordpress.conf",
		edit: []string{"listen 80 default_server;", "listen {{listen}} default_server;", "/var/www/wordpress", "{{dir}}/wordpress", "127.0.0.1:9000", "{{fpm}}",
			"include fastcgi_params;", "include /etc/nginx/fastcgi_params;"},
		fastcgi: []string{"fpm"},
		files: []string{"wordpress/index.php", "wordpress/wp-login.php", "wordpress/wp-config.php", "wordpress/install.php", "wordpress/xmlrpc.php",
			"wordpress/wp-content/uploads/evil.php", "wordpress/wp-admin/includes/file.php", "wordpress/wp-admin/index.php", "wordpress/readme.html"},
		host: "wp.example.com",
		paths: []string{"/", "/readme.html", "/wp-login.php", "/index.php", "/wp-admin/index.php", "/hello-world/",
			"/wp-config.php", "/wp-config.php/x", "/wp-config.php/", "/wp-config.php/x.php", "/wp-config.php/x/", "/install.php/x",
			"/xmlrpc.php", "/xmlrpc.php/x", "/xmlrpc.php/", "/wp-content/uploads/evil.php", "/wp-content/uploads/evil.php/x",
			"/wp-content/uploads/evil.php/x.php", "/wp-admin/includes/file.php", "/wp-admin/includes/file.php/x", "/wp-login.php/x",
			"/wp-config%2ephp/x", "/wp-config%2Ephp/x", "/wp-config.php%2fx", "/wp-config.php%2Fx", "/wp-content/uploads/evil%2ephp/x",
			"/wp-content%2fuploads/evil.php/x", "//wp-config.php/x", "/wp-content//uploads/evil.php/x", "/./wp-config.php/x",
			"/wp-admin/../wp-config.php/x", "/x/../wp-config.php/x", "/WP-CONFIG.PHP/x", "/wp-config.PHP/x", "/wp-config.php./x",
			"/wp-config.php../x", "/wp-config.php%20/x", "/wp-content/uploads/evil.php./x", "/wp-content/UPLOADS/evil.php/x",
			"/xmlrpc.php;x", "/xmlrpc.php%3bx", "/wp-config.php;/x", "/wp-config.php%3b/x", "/index.php/wp-config.php", "/index.php/../wp-config.php/x"},
		stricter: map[string]int{"/xmlrpc.php;x": 403, "/xmlrpc.php%3bx": 403},
	},
}

// TestImportNginxSideBySide runs nginx and sessionproxy on the same
// configuration (each test config, its addresses rewritten to stubs on
// free 127.0.0.1 ports and sockets, its directories to temporary ones,
// its certificates to internal/tlstest's) and compares, request by
// request, the status and which backend or file answers. The TLS
// configurations (Mastodon, NetBox) are compared over HTTPS, and their
// plain listeners must redirect every sample to the same https URL.
func TestImportNginxSideBySide(t *testing.T) {
	if _, err := exec.LookPath("nginx"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nginx is not installed (make deps installs Debian's nginx)")
		}
		t.Skip("nginx is not installed (make deps installs Debian's nginx)")
	}
	for _, sb := range sideBySides {
		name := sb.file
		if sb.name != "" {
			name = sb.name
		}
		t.Run(name, func(t *testing.T) { sb.run(t) })
	}
}

func (sb sideBySide) run(t *testing.T) {
	dir := t.TempDir()
	// nginx's workers may run as another user (nobody, when the tests
	// run as root): the files and sockets must be theirs to read.
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	for _, f := range sb.files {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("file "+f), 0o644)
		for d := filepath.Dir(p); d != dir; d = filepath.Dir(d) {
			os.Chmod(d, 0o755) // MkdirAll's mode is masked by the umask
		}
	}
	for i := 0; i+1 < len(sb.copies); i += 2 {
		b, err := os.ReadFile(sb.copies[i])
		if err != nil {
			// Debian's nginx package ships the snippet: under CI, which
			// installs it, a missing one is a failure, not a skip.
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s: %v", sb.copies[i], err)
			}
			t.Skipf("%s: %v", sb.copies[i], err)
		}
		p := filepath.Join(dir, sb.copies[i+1])
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, b, 0o644)
	}
	vars := map[string]string{"{{dir}}": dir}
	for _, name := range sb.backends {
		vars["{{"+name+"}}"] = stubHTTP(t, "tcp", "127.0.0.1:0", name)
	}
	for _, name := range sb.sockets {
		sock := filepath.Join(dir, name+".sock")
		stubHTTP(t, "unix", sock, strings.TrimRight(name, "0123456789"))
		os.Chmod(sock, 0o777)
		vars["{{unix:"+name+"}}"] = "unix:" + sock
	}
	for _, name := range sb.fastcgi {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go fcgi.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			env := fcgi.ProcessEnv(r)
			fmt.Fprintf(w, "fastcgi %s", strings.TrimPrefix(env["SCRIPT_FILENAME"], dir))
		}))
		vars["{{"+name+"}}"] = ln.Addr().String()
	}
	src, err := os.ReadFile(filepath.Join("..", "..", "nginximport", "testdata", sb.file))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(src)
	nginxAddr := freeAddr(t)
	vars["{{listen}}"] = nginxAddr
	var ca *tlstest.CA
	var nginxTLS, spTLS string
	if sb.tls {
		ca = tlstest.NewCA(t)
		vars["{{cert}}"], vars["{{key}}"] = ca.Leaf(t, dir, sb.host, "other.example.com")
		nginxTLS, spTLS = freeAddr(t), freeAddr(t)
		vars["{{listen_tls}}"] = nginxTLS
	}
	for i := 0; i+1 < len(sb.edit); i += 2 {
		if !strings.Contains(conf, sb.edit[i]) {
			t.Fatalf("%s has no %q", sb.file, sb.edit[i])
		}
		conf = strings.ReplaceAll(conf, sb.edit[i], sb.edit[i+1])
	}
	for k, v := range vars {
		conf = strings.ReplaceAll(conf, k, v)
	}
	site := filepath.Join(dir, sb.file)
	os.WriteFile(site, []byte(conf), 0o644)

	// sessionproxy: the translation, on its own listener
	code, out, errOut := run("import-nginx", site)
	if code != 0 {
		t.Fatalf("import-nginx: exit %d\n%s\n%s", code, errOut, out)
	}
	yaml := strings.Replace(out, `listen: "`+nginxAddr+`"`, `listen: "{{listen}}"`, 1)
	if sb.tls {
		if !strings.Contains(yaml, `listen_tls: "`+nginxTLS+`"`) {
			t.Fatalf("the translation has no listen_tls %s:\n%s", nginxTLS, out)
		}
		yaml = strings.Replace(yaml, `listen_tls: "`+nginxTLS+`"`, `listen_tls: "`+spTLS+`"`, 1)
	}
	p := startProcess(t, yaml)

	// nginx: the same file, in a main file of its own when it holds only
	// server blocks
	main := site
	if !strings.Contains(conf, "http {") {
		main = filepath.Join(dir, "nginx.conf")
		os.WriteFile(main, []byte(fmt.Sprintf("pid %s/nginx.pid;\nerror_log %s/error.log;\nevents {}\nhttp {\n include %s;\n}\n", dir, dir, site)), 0o644)
	}
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	ng := exec.Command("nginx", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", main, "-g", "daemon off;")
	ng.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var ngErr strings.Builder
	ng.Stderr = &ngErr
	if err := ng.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ng.Process.Kill(); ng.Wait() })
	testutil.WaitFor(t, 10*time.Second, "nginx", func() bool {
		c, err := net.Dial("tcp", nginxAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	noFollow := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	plainClient := &http.Client{Timeout: 5 * time.Second, CheckRedirect: noFollow}
	// tlsClients: one a host, for its SNI; HTTP/1.1 on both sides (h2
	// is the same routes behind another framing, section 14).
	tlsClients := map[string]*http.Client{}
	clientFor := func(host string) *http.Client {
		if !sb.tls {
			return plainClient
		}
		if tlsClients[host] == nil {
			tlsClients[host] = &http.Client{Timeout: 5 * time.Second, CheckRedirect: noFollow, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: host}}}
			t.Cleanup(tlsClients[host].CloseIdleConnections)
		}
		return tlsClients[host]
	}
	nAddr, sAddr, scheme := nginxAddr, p.addr, "http"
	if sb.tls {
		nAddr, sAddr, scheme = nginxTLS, spTLS, "https"
	}
	for _, sample := range sb.paths {
		host, path := sb.sample(sample)
		n := fetchVia(t, clientFor(host), scheme, nAddr, host, path)
		s := fetchVia(t, clientFor(host), scheme, sAddr, host, path)
		// Bodies are compared where a backend or a file answers; nginx's
		// and sessionproxy's own error pages differ in their words.
		if want, ok := sb.dotfiles[sample]; ok {
			if n.status != http.StatusOK || !strings.HasPrefix(n.body, "file ") ||
				(want == "404") != (s.status == http.StatusNotFound) || want != "404" && (s.status != http.StatusOK || s.body != want) {
				t.Errorf("%s://%s%s: nginx %d %q, sessionproxy %d %q; want nginx's file and sessionproxy's %q (a dotfile)", scheme, host, path, n.status, n.body, s.status, s.body, want)
			}
			continue
		}
		if want, ok := sb.stricter[sample]; ok {
			if n.status != http.StatusOK || s.status != want {
				t.Errorf("%s://%s%s: nginx %d %q, sessionproxy %d %q; want nginx's 200 and sessionproxy's %d (stricter)", scheme, host, path, n.status, n.body, s.status, s.body, want)
			}
			continue
		}
		if n.status != s.status || n.status < 300 && n.body != s.body {
			t.Errorf("%s://%s%s: nginx %d %q, sessionproxy %d %q", scheme, host, path, n.status, n.body, s.status, s.body)
		}
		// A redirect goes to the same path: nginx's Location is absolute
		// (absolute_redirect), sessionproxy's may be relative.
		if n.status >= 300 && n.status < 400 && pathOf(n.location) != pathOf(s.location) {
			t.Errorf("%s://%s%s: nginx %d to %q, sessionproxy %d to %q", scheme, host, path, n.status, n.location, s.status, s.location)
		}
	}
	// The plain listener of a TLS configuration: nginx's "return 301
	// https://$host$request_uri" and sessionproxy's redirect_to_https
	// send the client to the same URL. They count as the same redirect
	// although nginx says 301 and sessionproxy 308: 308 also keeps the
	// method and body, which a browser's 301 may turn into a GET.
	// nginx's $host carries no port, so its URL is for 443;
	// sessionproxy's names listen_tls's port, which the test cannot
	// make 443: on a real site both are 443 and the URLs are the same.
	_, spTLSPort, _ := net.SplitHostPort(spTLS)
	for _, sample := range sb.plain {
		host, path := sb.sample(sample)
		n := fetchVia(t, plainClient, "http", nginxAddr, host, path)
		s := fetchVia(t, plainClient, "http", p.addr, host, path)
		if n.status != http.StatusMovedPermanently || n.location != "https://"+host+path {
			t.Errorf("http://%s%s: nginx %d Location %q, want 301 to https://%s%s (the test's assumption about nginx)", host, path, n.status, n.location, host, path)
		}
		if s.status != http.StatusPermanentRedirect || s.location != "https://"+host+":"+spTLSPort+path {
			t.Errorf("http://%s%s: sessionproxy %d Location %q, nginx %d Location %q", host, path, s.status, s.location, n.status, n.location)
		}
	}
	if t.Failed() {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		t.Logf("nginx error log:\n%s%s\ntranslation:\n%s", b, ngErr.String(), out)
	}
}

var htmlTags = regexp.MustCompile(`\s+`)

// sample splits a sample request into its host (sb.host unless written
// "//HOST/path") and path.
func (sb sideBySide) sample(s string) (host, path string) {
	if !strings.HasPrefix(s, "//") {
		return sb.host, s
	}
	host, path, _ = strings.Cut(s[2:], "/")
	return host, "/" + path
}

// pathOf is a Location without its scheme and host.
func pathOf(loc string) string {
	if i := strings.Index(loc, "://"); i >= 0 {
		if j := strings.IndexByte(loc[i+3:], '/'); j >= 0 {
			return loc[i+3+j:]
		}
		return "/"
	}
	return loc
}

// sideAnswer is what the side-by-side test compares.
type sideAnswer struct {
	status   int
	body     string
	location string
}

func fetchVia(t *testing.T, c *http.Client, scheme, addr, host, path string) sideAnswer {
	t.Helper()
	req, err := http.NewRequest("GET", scheme+"://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s://%s%s from %s: %v", scheme, host, path, addr, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return sideAnswer{resp.StatusCode, htmlTags.ReplaceAllString(string(b), " "), resp.Header.Get("Location")}
}

// stubHTTP is a backend that answers "backend NAME" on a TCP address or
// a unix socket, and returns its address.
func stubHTTP(t *testing.T, network, addr, name string) string {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend %s %s", name, r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
