package nginximport

import (
	"path/filepath"
	"strings"
	"testing"

	"sessionproxy/config"
)

// sample is a request and what answers it: "proxy URL" (a backend),
// "static DIR" (a file below DIR), "respond STATUS", "redirect STATUS TO";
// a static route with a fallback reads "static DIR else proxy URL".
type sample struct{ host, path, want string }

// realConfigs are the test configs written in the shape of real ones
// (each file names the project it follows), with section 15's exit
// status: complete (0) or not (2, with the omissions at these lines).
var realConfigs = []struct {
	file     string
	complete bool
	omitted  []string // "LINE: text" for an incomplete one
	hosts    []string
	samples  []sample
	// toHTTPS: plain HTTP is redirected to HTTPS (redirect_to_https), as
	// the file's port-80 "return 301 https://..." does
	toHTTPS bool
}{
	{
		file: "php-fpm.conf", complete: true, hosts: []string{"php.example.com", "other.example"},
		samples: []sample{
			// the PHP source is never a file: .php goes to PHP-FPM
			{"php.example.com", "/config.php", "proxy fastcgi://127.0.0.1:9000"},
			{"php.example.com", "/index.php", "proxy fastcgi://127.0.0.1:9000"},
			{"php.example.com", "/css/app.css", "static /var/www/app/public else proxy fastcgi://127.0.0.1:9000"},
			{"php.example.com", "/users/1", "static /var/www/app/public else proxy fastcgi://127.0.0.1:9000"},
			{"php.example.com", "/.htaccess", "respond 403"},
			{"php.example.com", "/private/secret.php", "respond 403"},
			{"php.example.com", "/healthz", "respond 200"},
			{"php.example.com", "/favicon.ico", "static /var/www/app/public"},
			{"other.example", "/config.php", "proxy fastcgi://127.0.0.1:9000"}, // the only server is the default
		},
	},
	{
		// scripts refused by regexes ending in \.php$: the same paths
		// with "/x" after them run index.php (try_files' fallback), never
		// the script (sameScript, with scriptPaths' variants)
		file: "wordpress.conf", complete: true, hosts: []string{"wp.example.com", "other.example"},
		samples: []sample{
			{"wp.example.com", "/wp-login.php", "proxy fastcgi://127.0.0.1:9000"},
			{"wp.example.com", "/wp-config.php", "respond 404"},
			{"wp.example.com", "/wp-config.php/x", "static /var/www/wordpress else proxy fastcgi://127.0.0.1:9000"},
			{"wp.example.com", "/wp-config.php/x.php", "proxy fastcgi://127.0.0.1:9000"},
			{"wp.example.com", "/xmlrpc.php", "respond 403"},
			{"wp.example.com", "/xmlrpc.php/", "static /var/www/wordpress else proxy fastcgi://127.0.0.1:9000"},
			{"wp.example.com", "/wp-content/uploads/evil.php", "respond 403"},
			{"wp.example.com", "/wp-content/UPLOADS/evil.PHP", "respond 403"},
			{"wp.example.com", "/wp-content/uploads/evil.php/x", "static /var/www/wordpress else proxy fastcgi://127.0.0.1:9000"},
			{"wp.example.com", "/wp-admin/includes/file.php", "respond 403"},
			{"wp.example.com", "/wp-admin/includes/file.php/x", "static /var/www/wordpress else proxy fastcgi://127.0.0.1:9000"},
			{"wp.example.com", "/install.php/x", "static /var/www/wordpress else proxy fastcgi://127.0.0.1:9000"},
			{"wp.example.com", "/index.php/wp-config.php", "proxy fastcgi://127.0.0.1:9000"},
			{"wp.example.com", "/.git/config", "respond 403"},
		},
	},
	{
		file: "php-lookahead.conf", complete: false,
		omitted: []string{`9: location ~ /\.(?!well-known).* {...}: not translated (not an RE2 regular expression`},
	},
	{
		file: "mastodon.conf", complete: true, hosts: []string{"mastodon.example.com"}, toHTTPS: true,
		samples: []sample{
			{"mastodon.example.com", "/", "proxy http://127.0.0.1:3000"},
			{"mastodon.example.com", "/@alice", "proxy http://127.0.0.1:3000"},
			{"mastodon.example.com", "/sw.js", "static /home/mastodon/live/public"},
			{"mastodon.example.com", "/packs/app.js", "static /home/mastodon/live/public"},
			{"mastodon.example.com", "/system/media/1.png", "static /home/mastodon/live/public"},
			{"mastodon.example.com", "/api/v1/streaming/public", "proxy http://127.0.0.1:4000"},
			{"mastodon.example.com", "/api/v1/statuses", "proxy http://127.0.0.1:3000"},
		},
	},
	{
		file: "mastodon-nested.conf", complete: false,
		omitted: []string{"9: location /system/ {...}: not translated (nested locations", "13: add_header X-Cached $upstream_cache_status: not translated (variables)"},
	},
	{
		file: "discourse.conf", complete: true, hosts: []string{"forum.example.com", "other.example"},
		samples: []sample{
			{"forum.example.com", "/assets/app.js", "static /var/www/discourse/public"},
			{"forum.example.com", "/t/welcome/1", "static /var/www/discourse/public else proxy unix:/var/www/discourse/tmp/sockets/nginx.http.sock"},
			{"forum.example.com", "/srv/status", "proxy unix:/var/www/discourse/tmp/sockets/nginx.http.sock"},
			{"forum.example.com", "/srv/status/x", "static /var/www/discourse/public else proxy unix:/var/www/discourse/tmp/sockets/nginx.http.sock"},
			{"forum.example.com", "/admin/users", "static /var/www/discourse/public else proxy unix:/var/www/discourse/tmp/sockets/nginx.http.sock allow 10.0.0.0/8"},
			{"forum.example.com", "/letter_avatar_proxy/v4/a.png", "proxy https://avatars.discourse.org"},
		},
	},
	{
		file: "discourse-if.conf", complete: false,
		omitted: []string{"7: if ($http_cookie ~* _t= ) {...}: not translated"},
	},
	{
		file: "gitlab.conf", complete: true, hosts: []string{"gitlab.example.com", "other.example"},
		samples: []sample{
			{"gitlab.example.com", "/", "static /home/git/gitlab/public else proxy unix:/home/git/gitlab/tmp/sockets/gitlab-workhorse.socket"},
			{"gitlab.example.com", "/group/project/-/issues", "static /home/git/gitlab/public else proxy unix:/home/git/gitlab/tmp/sockets/gitlab-workhorse.socket"},
			{"gitlab.example.com", "/502.html", "respond 404"}, // internal
			{"other.example", "/500.html", "respond 404"},
		},
	},
	{
		file: "netbox.conf", complete: true, hosts: []string{"netbox.example.com", "other.example"}, toHTTPS: true,
		samples: []sample{
			{"netbox.example.com", "/static/netbox.css", "static /opt/netbox/netbox"},
			{"netbox.example.com", "/dcim/devices/", "proxy http://127.0.0.1:8001"},
			{"other.example", "/dcim/devices/", "proxy http://127.0.0.1:8001"},
		},
	},
	{
		file: "sentry.conf", complete: true, hosts: []string{"sentry.example.com"},
		samples: []sample{
			{"sentry.example.com", "/api/1/envelope/", "proxy http://127.0.0.1:3000"},
			{"sentry.example.com", "/api/42/store/", "proxy http://127.0.0.1:3000"},
			{"sentry.example.com", "/api/store/", "proxy http://127.0.0.1:3000"},
			{"sentry.example.com", "/api/0/relays/register/", "proxy http://127.0.0.1:3000"},
			{"sentry.example.com", "/api/0/projects/", "proxy http://127.0.0.1:9000"},
			{"sentry.example.com", "/js-sdk/7.0/bundle.js", "static /var/www"},
			{"sentry.example.com", "/_assets/app.js", "proxy http://127.0.0.1:9000"},
			{"sentry.example.com", "/organizations/x/issues/", "proxy http://127.0.0.1:9000"},
		},
	},
	{
		file: "prefix-static.conf", complete: true, hosts: []string{"any.example"},
		samples: []sample{
			{"any.example", "/", "proxy http://127.0.0.1:8001"},
			{"any.example", "/api/users", "proxy http://127.0.0.1:8002"},
			{"any.example", "/api/v2/users", "proxy http://127.0.0.1:8001"},
			{"any.example", "/static/a.css", "static /srv/www"},
			{"any.example", "/img/a.png", "static /srv/images"},
		},
	},
}

// TestRealConfigs translates each test config and checks section 15's
// exit status (complete or not, the omissions at their lines), the table
// of sample requests, and that every sample request (the table's and
// paths around each location) reaches the route made from the location
// nginx would pick.
func TestRealConfigs(t *testing.T) {
	for _, tc := range realConfigs {
		t.Run(tc.file, func(t *testing.T) {
			file := filepath.Join("testdata", tc.file)
			ds, err := ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Translate(file, ds)
			if err != nil {
				t.Fatal(err)
			}
			if res.Complete() != tc.complete {
				t.Fatalf("complete: %v, want %v; notes:\n%s", res.Complete(), tc.complete, notesText(res.Notes))
			}
			for _, want := range tc.omitted {
				found := false
				for _, n := range res.Notes {
					found = found || n.Omitted && strings.Contains(n.String(), file+":"+want)
				}
				if !found {
					t.Errorf("no omission %q in\n%s", want, notesText(res.Notes))
				}
			}
			if !tc.complete {
				return
			}
			o := readOutput(t, res.YAML)
			if o.redirectToHTTPS != tc.toHTTPS {
				t.Errorf("redirect_to_https %v, want %v", o.redirectToHTTPS, tc.toHTTPS)
			}
			for _, s := range tc.samples {
				if got := o.answer(s.host, s.path); got != s.want {
					t.Errorf("%s%s: %s, want %s", s.host, s.path, got, s.want)
				}
			}
			var paths []string
			for _, s := range tc.samples {
				paths = append(paths, s.path)
			}
			if err := sameChoice(ds, o, tc.hosts, samplePaths(ds, paths...)); err != nil {
				t.Errorf("%v\n%s", err, res.YAML)
			}
		})
	}
}

// TestRealConfigsPassCheck: every complete translation of the test
// configs is a configuration `check` reads (config.Parse: the files it
// names need not exist here). It uses section 15's route keys, so it
// passes once they are in config/ (branch i26-routes).
func TestRealConfigsPassCheck(t *testing.T) {
	for _, tc := range realConfigs {
		if !tc.complete {
			continue
		}
		t.Run(tc.file, func(t *testing.T) {
			file := filepath.Join("testdata", tc.file)
			ds, err := ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Translate(file, ds)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := config.Parse([]byte(res.YAML)); err != nil {
				t.Fatalf("%v\n%s", err, res.YAML)
			}
		})
	}
}
