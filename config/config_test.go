package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const fullConfig = `listen: "127.0.0.1:8080"
admin: "127.0.0.1:9090"
balancer: weighted
backends:
  - url: "http://127.0.0.1:9001"
    weight: 3
  - url: "http://127.0.0.1:9002"
  - url: "http://127.0.0.1:9003"
    backup: true
health:
  max_fails: 5
  fail_timeout: 20s
  check_path: /healthz
  check_interval: 500ms
timeouts:
  connect: 1s
  response: 5s
retries: 2
max_body: 1MiB
access_log: json
session:
  cookie: JSESSIONID
  ttl: 45m
  ignore: '.*\.(ico|png|gif|jpg|css|js)$'
  create: always
  max_size: 32KiB
  store_down: new
  local_cache:
    size: 0
    ttl: 5s
  memcached:
    nodes: ["n1:127.0.0.1:11211", "n2:127.0.0.1:11212"]
    failover_nodes: ["n2"]
    timeout: 50ms
`

func TestLoadFull(t *testing.T) {
	c, err := Load([]byte(fullConfig))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", c.Listen, "127.0.0.1:8080"},
		{"balancer", c.Balancer, "weighted"},
		{"weight set", c.Backends[0].Weight, 3},
		{"weight default", c.Backends[1].Weight, 1},
		{"backup", c.Backends[2].Backup, true},
		{"max_fails", c.Health.MaxFails, 5},
		{"check_interval", c.Health.CheckInterval.Std(), 500 * time.Millisecond},
		{"connect", c.Timeouts.Connect.Std(), time.Second},
		{"client_read default", c.Timeouts.ClientRead.Std(), 30 * time.Second},
		{"max_body", c.MaxBody, Size(1 << 20)},
		{"cookie", c.Session.Cookie, "JSESSIONID"},
		{"same_site default", c.Session.CookieSameSite, "lax"},
		{"max_size", c.Session.MaxSize, Size(32 << 10)},
		{"local size 0 kept", c.Session.LocalCache.Size, Size(0)},
		{"replicas default", memcachedOf(c).Replicas, 2},
		{"key_prefix default", memcachedOf(c).KeyPrefix, "sp:"},
		{"memcached timeout", memcachedOf(c).Timeout, 50 * time.Millisecond},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	nodes, err := memcachedOf(c).NodeList()
	if err != nil || len(nodes) != 2 || nodes[0].ID != "n1" || nodes[1].Addr != "127.0.0.1:11212" || !nodes[1].Failover || nodes[0].Failover {
		t.Fatalf("NodeList = %+v, %v", nodes, err)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Load([]byte("backends: [{url: 'http://127.0.0.1:1'}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":8080" || c.Balancer != "round_robin" || c.Retries != 1 || c.MaxBody != 10<<20 ||
		c.Session.TTL.Std() != 30*time.Minute || c.Session.LocalCache.Size != 64<<20 ||
		memcachedOf(c).MaxIdleConns != 1 || c.Session.Create != "on_write" || c.AccessLog.Format != "text" {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

// errorLines loads text and returns "LINE: message" per error.
func errorLines(t *testing.T, text string) []string {
	t.Helper()
	_, err := Load([]byte(text))
	if err == nil {
		t.Fatalf("Load succeeded, want errors for:\n%s", text)
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %T %v is not Errors", err, err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Error())
	}
	return out
}

var errorTests = []struct {
	name, text string
	want       []string // each must appear, in order, as a substring of one error
}{
	{"unknown key", "listen: ':1'\nbackends: [{url: 'http://a:1'}]\nsession:\n  cokie: x\n",
		[]string{`line 4: unknown key "cokie"`}},
	{"unknown backend key", "backends:\n  - url: 'http://a:1'\n    wieght: 2\n",
		[]string{`line 3: unknown key "wieght"`}},
	{"wrong type", "backends: [{url: 'http://a:1'}]\nretries: many\n",
		[]string{"line 2: wrong type"}},
	{"bad duration", "backends: [{url: 'http://a:1'}]\ntimeouts:\n  connect: 2 seconds\n",
		[]string{`line 3: invalid duration "2 seconds"`}},
	{"bad size", "backends: [{url: 'http://a:1'}]\nmax_body: lots\n",
		[]string{`line 2: invalid size "lots"`}},
	{"several at once", "backends: [{url: 'http://a:1'}]\nmax_body: lots\nretries: x\n",
		[]string{"line 2:", "line 3:"}},
	{"syntax", "backends: [\n  url: x\n", []string{"line "}},
	{"no backends", "listen: ':8080'\n", []string{"no backends"}},
	{"bad url", "backends:\n  - url: 'ftp://a:1'\n  - url: 'http://b:1/path'\n",
		[]string{"line 2: backends[0].url", "line 3: backends[1].url"}},
	{"weight below 1", "backends:\n  - url: 'http://a:1'\n    weight: 0\n",
		[]string{"line 3: backends[0].weight must be 1 or more"}},
	{"unknown balancer", "balancer: ip_hash\nbackends: [{url: 'http://a:1'}]\n",
		[]string{`line 1: balancer: unknown value "ip_hash"`}},
	{"all backup", "backends:\n  - url: 'http://a:1'\n    backup: true\n",
		[]string{"every backend is a backup"}},
	{"duplicate backend", "backends:\n  - url: 'http://a:1'\n  - url: 'http://a:1'\n",
		[]string{"line 3: backends[1].url"}},
	{"bad regexp", "backends: [{url: 'http://a:1'}]\nsession:\n  ignore: '(['\n",
		[]string{"line 3: session.ignore"}},
	{"failover not a node", "backends: [{url: 'http://a:1'}]\nsession:\n  memcached:\n    nodes: ['n1:127.0.0.1:1']\n    failover_nodes: ['n9']\n",
		[]string{"line 5: session.memcached.failover_nodes[0]"}},
	{"bad node", "backends: [{url: 'http://a:1'}]\nsession:\n  memcached:\n    nodes:\n      - 'n1:nope'\n",
		[]string{"line 5: session.memcached.nodes[0]"}},
	{"fastcgi without root", "backends:\n  - url: 'fastcgi://127.0.0.1:9000'\n", []string{"line 1: fastcgi.root is required"}},
	{"fastcgi without port", "backends:\n  - url: 'fastcgi://127.0.0.1'\n", []string{"line 1: fastcgi.root", "line 2: backends[0].url: URL \"fastcgi://127.0.0.1\" needs a port"}},
	{"fastcgi mixed with http", "backends:\n  - url: 'fastcgi://127.0.0.1:9000'\n  - url: 'http://a:1'\nfastcgi: {root: /var/www}\n", []string{"line 1: backends: FastCGI and HTTP"}},
	{"fastcgi key without fastcgi backends", "backends: [{url: 'http://a:1'}]\nfastcgi:\n  root: /var/www\n", []string{"line 2: fastcgi is set"}},
	{"fastcgi relative root", "backends: [{url: 'fastcgi+unix:/run/php.sock'}]\nfastcgi:\n  root: www\n", []string{"line 3: fastcgi.root"}},
	{"fastcgi bad index", "backends: [{url: 'fastcgi+unix:/run/php.sock'}]\nfastcgi:\n  root: /var/www\n  index: ../x.php\n", []string{"line 4: fastcgi.index"}},
	{"fastcgi unknown script rule", "backends: [{url: 'fastcgi+unix:/run/php.sock'}]\nfastcgi:\n  root: /var/www\n  script: first\n", []string{"line 4: fastcgi.script \"first\""}},
	{"fastcgi pipelined", "upstreams:\n  php:\n    pipeline: 4\n    backends: [{url: 'fastcgi://127.0.0.1:9000'}]\n    fastcgi: {root: /var/www}\nbackends: [{url: 'http://a:1'}]\n", []string{"line 3: upstreams.php.pipeline"}},
	{"unix relative", "backends: [{url: 'unix:app.sock'}]\n", []string{"line 1: backends[0].url: URL \"unix:app.sock\" must name an absolute"}},
	{"memcached and redis", "backends: [{url: 'http://a:1'}]\nsession:\n  memcached:\n    nodes: ['n1:127.0.0.1:1']\n  redis:\n    addrs: ['127.0.0.1:6379']\n",
		[]string{"line 6: session.redis.addrs and session.memcached.nodes exclude each other"}},
	{"bad redis addr", "backends: [{url: 'http://a:1'}]\nsession:\n  redis:\n    addrs:\n      - '127.0.0.1:6379'\n      - 'nope'\n      - '127.0.0.1:6379'\n",
		[]string{"line 6: session.redis.addrs[1]", "line 7: session.redis.addrs[2]: \"127.0.0.1:6379\" is listed twice"}},
	{"redis bad values", "backends: [{url: 'http://a:1'}]\nsession:\n  redis:\n    addrs: ['127.0.0.1:6379']\n    timeout: 0s\n    wait_replicas: -1\n    key_prefix: 'a b'\n",
		[]string{"line 5: session.redis.timeout", "line 6: session.redis.wait_replicas", "line 7: session.redis.key_prefix"}},
	{"redis async with client cache", "backends: [{url: 'http://a:1'}]\nsession:\n  write: async\n  redis:\n    addrs: ['127.0.0.1:6379']\n",
		[]string{"line 3: session.write: async needs"}},
	{"redis unknown key", "backends: [{url: 'http://a:1'}]\nsession:\n  redis:\n    adrs: ['127.0.0.1:6379']\n",
		[]string{`line 4: unknown key "adrs"`}},
	{"same_site none needs secure", "backends: [{url: 'http://a:1'}]\nsession:\n  cookie_same_site: none\n",
		[]string{"line 3: session.cookie_same_site: none needs cookie_secure"}},
	{"bad session lifetime and cookie", "backends: [{url: 'http://a:1'}]\nsession:\n  max_age: 500ms\n  cookie_domain: 'a.com; x'\n  cookie_path: 'app'\n",
		[]string{"line 3: session.max_age", "line 4: session.cookie_domain", "line 5: session.cookie_path"}},
	{"cookie_path with a semicolon", "backends: [{url: 'http://a:1'}]\nsession:\n  cookie_path: '/a;Domain=evil'\n",
		[]string{"line 3: session.cookie_path"}},
	{"bad access_log", "backends: [{url: 'http://a:1'}]\naccess_log: verbose\n",
		[]string{"line 2: access_log"}},
}

func TestErrorsHaveLines(t *testing.T) {
	for _, tt := range errorTests {
		t.Run(tt.name, func(t *testing.T) {
			got := errorLines(t, tt.text)
			i := 0
			for _, g := range got {
				if i < len(tt.want) && strings.Contains(g, tt.want[i]) {
					i++
				}
			}
			if i < len(tt.want) {
				t.Fatalf("errors = %q\nwant, in order, %q", got, tt.want)
			}
		})
	}
}

func TestErrorsFormat(t *testing.T) {
	es := Errors{{Line: 3, Msg: "bad"}, {Msg: "missing"}}
	want := "f.yaml:3: bad\nf.yaml:1: missing\n"
	if got := es.Format("f.yaml"); got != want {
		t.Fatalf("Format = %q, want %q", got, want)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "sp.yaml")
	os.WriteFile(name, []byte(fullConfig), 0o600)
	if _, err := LoadFile(name); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("LoadFile of a missing file succeeded")
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	c, err := Parse(nil)
	if err != nil || c.Listen != ":8080" {
		t.Fatalf("Parse(empty) = %+v, %v", c, err)
	}
}

func TestForgetDropsLines(t *testing.T) {
	c, err := Parse([]byte("listen: ':8080'\nbackends:\n  - url: 'ftp://x'\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.Backends = []Backend{{URL: "gopher://y", Weight: 1}}
	c.Forget("backends")
	err = c.Validate()
	var es Errors
	if !errors.As(err, &es) || es[0].Line != 0 {
		t.Fatalf("Validate after Forget = %v, want an error without a line", err)
	}
}

var sizeTests = []struct {
	in   string
	want Size
	ok   bool
}{
	{"65536", 65536, true},
	{"64KiB", 64 << 10, true},
	{"10MiB", 10 << 20, true},
	{"1GiB", 1 << 30, true},
	{"10 MiB", 10 << 20, true},
	{"2MB", 2 << 20, true},
	{"-1", 0, false},
	{"1.5MiB", 0, false},
	{"MiB", 0, false},
}

func TestParseSize(t *testing.T) {
	for _, tt := range sizeTests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
