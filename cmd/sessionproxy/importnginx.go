package main

import (
	"flag"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	ngconfig "github.com/tufanbarisyildirim/gonginx/config"
	"github.com/tufanbarisyildirim/gonginx/parser"

	"sessionproxy/config"
)

// importNginx translates the load-balancing part of an nginx.conf: the
// server block that proxies to an upstream, and that upstream. Everything
// it does not translate is listed on stderr, never dropped silently.
type importNginx struct {
	notes []string
	cfg   *config.Config
	// perServer collects max_fails/fail_timeout, which nginx sets per
	// server and sessionproxy per pool.
	maxFails, failTimeout map[string]bool
}

func (im *importNginx) note(format string, args ...any) {
	im.notes = append(im.notes, fmt.Sprintf(format, args...))
}

func cmdImportNginx(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import-nginx", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: sessionproxy import-nginx FILE")
		return 2
	}
	p, err := parser.NewParser(fs.Arg(0), parser.WithSkipValidDirectivesErr(), parser.WithSkipComments())
	if err != nil {
		fmt.Fprintf(stderr, "sessionproxy import-nginx: %v\n", err)
		return 1
	}
	conf, err := p.Parse()
	if err != nil {
		fmt.Fprintf(stderr, "sessionproxy import-nginx: %s: %v\n", fs.Arg(0), err)
		return 1
	}
	im := &importNginx{cfg: config.Default(), maxFails: map[string]bool{}, failTimeout: map[string]bool{}}
	yaml, err := im.translate(conf.GetDirectives())
	for _, n := range im.notes {
		fmt.Fprintf(stderr, "import-nginx: %s\n", n)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sessionproxy import-nginx: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, yaml)
	return 0
}

// proxyTarget is one location that proxies to an upstream.
type proxyTarget struct {
	upstream string
	listen   string
	server   ngconfig.IDirective
	location ngconfig.IDirective
}

func params(d ngconfig.IDirective) []string {
	var out []string
	for _, p := range d.GetParameters() {
		out = append(out, p.GetValue())
	}
	return out
}

func where(d ngconfig.IDirective) string {
	return fmt.Sprintf("line %d: %s %s", d.GetLine(), d.GetName(), strings.Join(params(d), " "))
}

func (im *importNginx) translate(top []ngconfig.IDirective) (string, error) {
	upstreams := map[string]ngconfig.IDirective{}
	var targets []proxyTarget
	var walk func(ds []ngconfig.IDirective, server ngconfig.IDirective, listen string)
	walk = func(ds []ngconfig.IDirective, server ngconfig.IDirective, listen string) {
		for _, d := range ds {
			switch d.GetName() {
			case "http", "location":
				if d.GetBlock() != nil {
					walk(d.GetBlock().GetDirectives(), server, listen)
				}
			case "server":
				if d.GetBlock() == nil {
					continue
				}
				l := ":80"
				for _, sd := range d.GetBlock().GetDirectives() {
					if sd.GetName() == "listen" && len(params(sd)) > 0 {
						l = nginxListen(params(sd)[0])
						break
					}
				}
				walk(d.GetBlock().GetDirectives(), d, l)
			case "upstream":
				if p := params(d); len(p) > 0 {
					upstreams[p[0]] = d
				}
			case "proxy_pass":
				u := strings.TrimPrefix(strings.TrimPrefix(firstParam(d), "http://"), "https://")
				u, _, _ = strings.Cut(u, "/")
				targets = append(targets, proxyTarget{upstream: u, listen: listen, server: server, location: d})
			default:
				im.directive(d)
			}
		}
	}
	walk(top, nil, ":80")
	if len(targets) == 0 {
		return "", fmt.Errorf("no proxy_pass found: nothing to translate")
	}
	t := targets[0]
	for _, other := range targets[1:] {
		im.note("not translated: %s (only the first proxy_pass, to %q, becomes this config; run one sessionproxy per upstream)", where(other.location), t.upstream)
	}
	im.cfg.Listen = t.listen
	up, ok := upstreams[t.upstream]
	if ok {
		im.upstream(up)
	} else {
		// proxy_pass straight to one server.
		im.cfg.Backends = append(im.cfg.Backends, config.Backend{URL: "http://" + withPort(t.upstream), Weight: 1})
	}
	for name, u := range upstreams {
		if name != t.upstream {
			im.note("not translated: %s (not used by the translated proxy_pass)", where(u))
		}
	}
	return im.yaml()
}

func firstParam(d ngconfig.IDirective) string {
	if p := params(d); len(p) > 0 {
		return p[0]
	}
	return ""
}

// nginxListen turns nginx's listen parameter (80, 127.0.0.1:8080, [::]:80)
// into host:port.
func nginxListen(s string) string {
	if _, err := strconv.Atoi(s); err == nil {
		return ":" + s
	}
	return s
}

func withPort(addr string) string {
	if strings.HasPrefix(addr, "[") {
		if strings.Contains(addr, "]:") {
			return addr
		}
		return addr + ":80"
	}
	if strings.Contains(addr, ":") {
		return addr
	}
	return addr + ":80"
}

func (im *importNginx) upstream(up ngconfig.IDirective) {
	if up.GetBlock() == nil {
		return
	}
	for _, d := range up.GetBlock().GetDirectives() {
		switch d.GetName() {
		case "server":
			im.server(d)
		case "least_conn":
			im.cfg.Balancer = "least_conn"
		case "ip_hash", "hash", "sticky", "random":
			im.note("not supported: %s (sessionproxy shares sessions between backends, so requests need no stickiness; round_robin is used)", where(d))
		case "keepalive", "keepalive_timeout", "keepalive_requests":
			im.note("not needed: %s (sessionproxy always keeps connections to backends alive)", where(d))
		default:
			im.note("not translated: %s", where(d))
		}
	}
	weighted := false
	for _, b := range im.cfg.Backends {
		weighted = weighted || b.Weight != 1
	}
	if weighted && im.cfg.Balancer == "round_robin" {
		im.cfg.Balancer = "weighted" // nginx's round robin honours weights
	}
	if len(im.maxFails) > 1 || len(im.failTimeout) > 1 {
		im.note("max_fails/fail_timeout differ between servers; sessionproxy has one setting for all, the last one seen is used")
	}
}

var nginxParamRE = regexp.MustCompile(`^(\w+)=(.*)$`)

func (im *importNginx) server(d ngconfig.IDirective) {
	p := params(d)
	if len(p) == 0 {
		return
	}
	addr := p[0]
	if strings.HasPrefix(addr, "unix:") {
		im.note("not supported: %s (unix sockets)", where(d))
		return
	}
	b := config.Backend{URL: "http://" + withPort(addr), Weight: 1}
	for _, param := range p[1:] {
		m := nginxParamRE.FindStringSubmatch(param)
		switch {
		case param == "backup":
			b.Backup = true
		case param == "down":
			im.note("left out: %s (marked down)", where(d))
			return
		case m != nil && m[1] == "weight":
			b.Weight, _ = strconv.Atoi(m[2])
		case m != nil && m[1] == "max_fails":
			im.cfg.Health.MaxFails, _ = strconv.Atoi(m[2])
			im.maxFails[m[2]] = true
		case m != nil && m[1] == "fail_timeout":
			if dur, err := nginxDuration(m[2]); err == nil {
				im.cfg.Health.FailTimeout = config.Duration(dur)
				im.failTimeout[m[2]] = true
			} else {
				im.note("not translated: fail_timeout=%s in %s: %v", m[2], where(d), err)
			}
		default:
			im.note("not translated: parameter %q of %s", param, where(d))
		}
	}
	im.cfg.Backends = append(im.cfg.Backends, b)
}

// directive handles a directive outside upstream blocks.
func (im *importNginx) directive(d ngconfig.IDirective) {
	switch d.GetName() {
	case "listen", "server_name":
		// listen is read with its server block; server_name has no equivalent
		if d.GetName() == "server_name" {
			im.note("not needed: %s (sessionproxy serves every Host it is sent)", where(d))
		}
	case "proxy_connect_timeout":
		im.duration(d, &im.cfg.Timeouts.Connect)
	case "proxy_read_timeout":
		im.duration(d, &im.cfg.Timeouts.Response)
	case "client_header_timeout", "client_body_timeout":
		im.duration(d, &im.cfg.Timeouts.ClientRead)
	case "keepalive_timeout":
		im.duration(d, &im.cfg.Timeouts.ClientIdle)
	case "client_max_body_size":
		if s, err := nginxSize(firstParam(d)); err == nil && s > 0 {
			im.cfg.MaxBody = s
		} else {
			im.note("not translated: %s", where(d))
		}
	case "proxy_next_upstream_tries":
		if n, err := strconv.Atoi(firstParam(d)); err == nil && n > 0 {
			im.cfg.Retries = n - 1
		}
	case "access_log":
		if firstParam(d) == "off" {
			im.cfg.AccessLog = "off"
		} else {
			im.cfg.AccessLog = "combined"
			im.note("translated: %s as access_log: combined on stderr (sessionproxy logs to its standard error)", where(d))
		}
	case "proxy_set_header":
		switch strings.ToLower(firstParam(d)) {
		case "host", "x-forwarded-for", "x-real-ip", "x-forwarded-proto", "x-forwarded-host", "connection":
			im.note("not needed: %s (sessionproxy does this by default)", where(d))
		default:
			im.note("not translated: %s", where(d))
		}
	case "proxy_http_version":
		im.note("not needed: %s (sessionproxy always speaks HTTP/1.1 to backends)", where(d))
	default:
		im.note("not translated: %s", where(d))
		if d.GetBlock() != nil && d.GetName() != "events" {
			for _, inner := range d.GetBlock().GetDirectives() {
				im.directive(inner)
			}
		}
	}
}

func (im *importNginx) duration(d ngconfig.IDirective, dst *config.Duration) {
	v, err := nginxDuration(firstParam(d))
	if err != nil {
		im.note("not translated: %s: %v", where(d), err)
		return
	}
	*dst = config.Duration(v)
}

// nginxDuration parses nginx's time syntax: 30, 30s, 500ms, 1m, 1h, 1d, 1m30s.
func nginxDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	var total time.Duration
	re := regexp.MustCompile(`(\d+)(ms|s|m|h|d|w|M|y)`)
	rest := re.ReplaceAllStringFunc(s, func(part string) string {
		m := re.FindStringSubmatch(part)
		n, _ := strconv.Atoi(m[1])
		unit := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute,
			"h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour, "M": 30 * 24 * time.Hour, "y": 365 * 24 * time.Hour}[m[2]]
		total += time.Duration(n) * unit
		return ""
	})
	if rest != "" || s == "" {
		return 0, fmt.Errorf("invalid nginx time %q", s)
	}
	return total, nil
}

// nginxSize parses nginx's size syntax: 1024, 8k, 10m, 1g.
func nginxSize(s string) (config.Size, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(strings.ToLower(s), "k"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(strings.ToLower(s), "m"):
		mult, s = 1<<20, s[:len(s)-1]
	case strings.HasSuffix(strings.ToLower(s), "g"):
		mult, s = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return config.Size(n * mult), err
}

// yaml writes the translated configuration with the session section left
// at its defaults and ready to fill in.
func (im *importNginx) yaml() (string, error) {
	c := im.cfg
	var b strings.Builder
	b.WriteString("# Generated by sessionproxy import-nginx. Check it with: sessionproxy check -config FILE\n")
	fmt.Fprintf(&b, "listen: %q\n", c.Listen)
	fmt.Fprintf(&b, "balancer: %s\n", c.Balancer)
	b.WriteString("backends:\n")
	for _, be := range c.Backends {
		fmt.Fprintf(&b, "  - url: %q\n", be.URL)
		if be.Weight != 1 {
			fmt.Fprintf(&b, "    weight: %d\n", be.Weight)
		}
		if be.Backup {
			b.WriteString("    backup: true\n")
		}
	}
	fmt.Fprintf(&b, "health:\n  max_fails: %d\n  fail_timeout: %s\n", c.Health.MaxFails, c.Health.FailTimeout.Std())
	t := c.Timeouts
	fmt.Fprintf(&b, "timeouts:\n  connect: %s\n  response: %s\n  client_read: %s\n  client_idle: %s\n",
		t.Connect.Std(), t.Response.Std(), t.ClientRead.Std(), t.ClientIdle.Std())
	fmt.Fprintf(&b, "retries: %d\n", c.Retries)
	fmt.Fprintf(&b, "max_body: %d\n", int64(c.MaxBody))
	fmt.Fprintf(&b, "access_log: %s\n", c.AccessLog)
	b.WriteString(`session:
  cookie: SPSESSIONID
  ttl: 30m
  # ignore: '.*\.(ico|png|gif|jpg|css|js)$'   # memcached-session-manager's requestUriIgnorePattern
  memcached:
    nodes: []                  # e.g. ["n1:127.0.0.1:11211", "n2:127.0.0.1:11212"]
    failover_nodes: []         # e.g. ["n2"]
`)
	out := b.String()
	if _, err := config.Load([]byte(out)); err != nil {
		return out, fmt.Errorf("the translation is not a valid config:\n%v", err)
	}
	return out, nil
}
