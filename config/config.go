// Package config reads and checks sessionproxy's YAML configuration.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"sessionproxy/balancer"
	"sessionproxy/proxy/defaults"
)

// Config is the whole configuration file. Fields left out of the file keep
// the values of DefaultConfig.
type Config struct {
	Listen string `yaml:"listen"` // (default ":8080")
	Admin  string `yaml:"admin"`  // admin listener; empty turns it off (default off)
	// AdminToken, when set, is required as "Authorization: Bearer <token>"
	// on every admin path but /healthz; an admin address off loopback
	// needs one.
	AdminToken string `yaml:"admin_token"`
	// UnderscoresInHeaders passes request headers with "_" in their names
	// (nginx's underscores_in_headers); X-Session-* spelt with "_" is
	// dropped either way (default false: dropped).
	UnderscoresInHeaders bool      `yaml:"underscores_in_headers"`
	Balancer             string    `yaml:"balancer"` // round_robin | weighted | least_conn (default round_robin)
	Backends             []Backend `yaml:"backends"` // at least one is needed to run
	Health               Health    `yaml:"health"`   //
	Timeouts             Timeouts  `yaml:"timeouts"` //
	Retries              int       `yaml:"retries"`  // extra tries on another backend (default 1)
	MaxBody              Size      `yaml:"max_body"` // larger request bodies get 413 (default 10MiB)
	// MaxConns caps each backend's active connections, requests in flight
	// and open WebSocket tunnels, as nginx's max_conns (default 2048); an
	// upstream without its own max_conns takes this one (config/limits.go).
	MaxConns int `yaml:"max_conns"`
	// MaxTunnels caps the WebSocket tunnels open at once across the whole
	// proxy (default 10000).
	MaxTunnels int `yaml:"max_tunnels"`
	// RequestBuffering reads each request body whole (memory, then a
	// temporary file) before picking a backend (default false: stream).
	RequestBuffering bool      `yaml:"request_buffering"`
	AccessLog        AccessLog `yaml:"access_log"` // format (text | json | combined | off | a template) and path (config/accesslog.go)
	Session          Session   `yaml:"session"`    //

	Pipeline      int                 `yaml:"pipeline"`       // requests in flight per connection to the top-level backends; 0 = off (config/pipeline.go)
	FastCGI       FastCGI             `yaml:"fastcgi"`        // scripts of the top-level fastcgi:// backends (config/fastcgi.go)
	Upstreams     map[string]Upstream `yaml:"upstreams"`      // named pools besides the top-level backends ("default")
	Routes        []Route             `yaml:"routes"`         // tried in order; no match goes to "default"
	ErrorPages    map[int]string      `yaml:"error_pages"`    // status -> HTML file for the proxy's own errors
	RealIPFrom    []string            `yaml:"real_ip_from"`   // peers whose X-Forwarded-For is trusted
	ProxyProtocol bool                `yaml:"proxy_protocol"` // PROXY protocol v1/v2 header required on every connection
	ListenTLS     string              `yaml:"listen_tls"`     // HTTPS listener (default off)
	TLS           TLS                 `yaml:"tls"`            //
	HTTP2         bool                `yaml:"http2"`          // h2 on listen_tls through ALPN (default true; config/protocols.go)
	HTTP3         bool                `yaml:"http3"`          // HTTP/3 on listen_tls's UDP port (default false; config/protocols.go)
	// RedirectToHTTPS answers the plain listener with 308 to listen_tls.
	RedirectToHTTPS bool `yaml:"redirect_to_https"`
	// StateDir keeps what must survive a restart (the memcached nodes'
	// hints); used only with a shared store (default: StateDirDefault).
	StateDir string `yaml:"state_dir"`
	// Compression compresses static files' answers, and backends' with
	// proxied: true (config/compression.go).
	Compression Compression `yaml:"compression"`

	// lines maps a field path such as "backends[1].url" to its line in the
	// file, so that checks made after decoding can still name a line.
	lines map[string]int
}

// Backend is one upstream server.
type Backend struct {
	URL    string `yaml:"url"`    // http://host:port
	Weight int    `yaml:"weight"` // used by the weighted balancer (default 1)
	Backup bool   `yaml:"backup"` // used only while every other backend is down
}

// Health configures passive and active health checking.
type Health struct {
	MaxFails      int      `yaml:"max_fails"`      // consecutive failures that take a backend out; 0 disables (default 3)
	FailTimeout   Duration `yaml:"fail_timeout"`   // how long it stays out (default 10s)
	CheckPath     string   `yaml:"check_path"`     // active GET check path; empty = passive only
	CheckInterval Duration `yaml:"check_interval"` // (default 2s)
}

// Timeouts bounds each phase of a request.
type Timeouts struct {
	Connect    Duration `yaml:"connect"`     // dialing a backend (default 2s)
	Response   Duration `yaml:"response"`    // backend answer, else 504 (default 30s)
	ClientRead Duration `yaml:"client_read"` // reading a client's request (default 30s)
	ClientIdle Duration `yaml:"client_idle"` // idle client keep-alive (default 90s)
	Shutdown   Duration `yaml:"shutdown"`    // graceful drain on SIGTERM (default 30s)
	TunnelIdle Duration `yaml:"tunnel_idle"` // WebSocket tunnel without traffic either way (default 1h)
	ReadIdle   Duration `yaml:"read_idle"`   // silence between reads of a response body (default 60s)
}

// Session configures the session store and its cookie.
type Session struct {
	Cookie         string     `yaml:"cookie"`           // (default SPSESSIONID)
	CookieSecure   bool       `yaml:"cookie_secure"`    // (default false)
	CookieSameSite string     `yaml:"cookie_same_site"` // lax | strict | none (default lax)
	TTL            Duration   `yaml:"ttl"`              // sliding idle lifetime (default 30m)
	MaxAge         Duration   `yaml:"max_age"`          // absolute lifetime from creation (default 0: none)
	CookieDomain   string     `yaml:"cookie_domain"`    // the cookie's Domain (default none: this host only)
	CookiePath     string     `yaml:"cookie_path"`      // the cookie's Path (default /)
	Ignore         string     `yaml:"ignore"`           // regexp of paths that get no session (default none)
	Create         string     `yaml:"create"`           // on_write | always (default on_write)
	Write          string     `yaml:"write"`            // sync | async (default sync)
	MaxSize        Size       `yaml:"max_size"`         // encoded size of one session (default 64KiB)
	StoreDown      string     `yaml:"store_down"`       // reject | new (default reject)
	LocalCache     LocalCache `yaml:"local_cache"`      //
	// Stores are the shared stores' sections (memcached:, redis:), which
	// their packages declare (config/stores.go); Default fills in each
	// registered kind's defaults.
	Stores Stores `yaml:"-"`

	// Principal names the attribute that holds the logged-in user: sessions
	// are indexed by it (config/principal.go). MaxPerPrincipal > 0 limits
	// each principal's sessions. Both off by default.
	Principal       string `yaml:"principal"`
	MaxPerPrincipal int    `yaml:"max_per_principal"`
}

// LocalCache configures the in-process hot tier.
type LocalCache struct {
	Size Size `yaml:"size"` // 0 turns the tier off (default 64MiB)
	// TTL: auto trusts local copies while no other proxy's presence mark
	// is on the shared store and re-reads after 1s once one is; 0 trusts
	// them always; >0 re-reads after this long (default auto).
	TTL AutoDuration `yaml:"ttl"`
}

// DefaultConfig holds every default but the shared stores', which are
// their packages' (Session.Stores). Parse starts from Default.
var DefaultConfig = Config{
	Listen:   ":8080",
	Balancer: "round_robin",
	Health: Health{
		MaxFails:      3,
		FailTimeout:   Duration(10 * time.Second),
		CheckInterval: Duration(2 * time.Second),
	},
	Timeouts: Timeouts{
		Connect:    Duration(defaults.ConnectTimeout),
		Response:   Duration(defaults.ResponseTimeout),
		ClientRead: Duration(defaults.ClientReadTimeout),
		ClientIdle: Duration(defaults.ClientIdleTimeout),
		Shutdown:   Duration(30 * time.Second),
		TunnelIdle: Duration(defaults.TunnelIdle),
		ReadIdle:   Duration(defaults.ReadIdle),
	},
	Retries:   1,
	TLS:       TLS{MinVersion: "1.2"},
	HTTP2:     true,
	MaxBody:   defaults.MaxBody,
	AccessLog: AccessLog{Format: "text"},
	Session: Session{
		Cookie:         "SPSESSIONID",
		CookieSameSite: "lax",
		CookiePath:     "/",
		TTL:            Duration(30 * time.Minute),
		Create:         "on_write",
		Write:          "sync",
		MaxSize:        64 << 10,
		StoreDown:      "reject",
		LocalCache:     LocalCache{Size: 64 << 20, TTL: Auto},
	},

	MaxConns:    balancer.DefaultMaxConns,
	MaxTunnels:  defaults.MaxTunnels,
	Compression: defaultCompression(),
}

// Default returns a copy of DefaultConfig.
func Default() *Config {
	c := DefaultConfig
	c.Backends = nil
	c.Compression = defaultCompression() // slices of its own, never the default's
	c.Session.Stores = defaultStores()
	return &c
}

// Error is one problem in a configuration, at a line of the file when known
// (Line is 0 for values that came from flags or defaults).
type Error struct {
	Line int
	Msg  string
}

// Error returns "line N: message", or the message alone when the line is unknown.
func (e Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// Errors is every problem found in one configuration, in file order.
type Errors []Error

// Error returns one error per line.
func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Format writes one "FILE:LINE: message" line per error, as nginx -t and
// compilers do. An error about something missing from the file, which has
// no line of its own, is reported at line 1.
func (es Errors) Format(filename string) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%s:%d: %s\n", filename, max(e.Line, 1), e.Msg)
	}
	return b.String()
}

// LoadFile reads, parses and validates a configuration file. Its errors are
// Errors; a file that cannot be read is reported as a plain error.
func LoadFile(filename string) (*Config, error) {
	c, err := ParseFile(filename)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// ParseFile reads and parses a configuration file without validating it,
// so that flags can override it first.
func ParseFile(filename string) (*Config, error) {
	data, err := os.ReadFile(filename)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(data)
}

// Load parses and validates a configuration.
func Load(data []byte) (*Config, error) {
	c, err := Parse(data)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse decodes YAML over the defaults. Unknown keys and values of the wrong
// type are Errors with their line numbers.
func Parse(data []byte) (*Config, error) {
	c := Default()
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlErrors(err)
	}
	if root.Kind == 0 { // empty file
		c.lines = map[string]int{}
		return c, nil
	}
	// Decoding the node again through a strict decoder: Node.Decode would not
	// report unknown keys.
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlErrors(err)
	}
	c.lines = map[string]int{}
	recordLines(&root, "", c.lines)
	for i := range c.Backends {
		if _, set := c.lines[fmt.Sprintf("backends[%d].weight", i)]; !set {
			c.Backends[i].Weight = 1
		}
	}
	c.fillUpstreams()
	return c, nil
}

// recordLines walks the document and remembers each field path's line.
func recordLines(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			recordLines(c, path, lines)
		}
	case yaml.MappingNode:
		if path != "" {
			lines[path] = n.Line
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			lines[p] = k.Line
			recordLines(v, p, lines)
			lines[p] = k.Line
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = c.Line
			recordLines(c, p, lines)
		}
	}
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
var unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type \S+$`)

// yamlErrors turns yaml.v3's messages into Errors with line numbers.
func yamlErrors(err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	var es Errors
	for _, m := range msgs {
		e := Error{Msg: strings.TrimPrefix(m, "yaml: ")}
		if sm := yamlLineRE.FindStringSubmatch(m); sm != nil {
			e.Line, _ = strconv.Atoi(sm[1])
			e.Msg = sm[2]
		}
		if sm := unknownFieldRE.FindStringSubmatch(e.Msg); sm != nil {
			e.Msg = fmt.Sprintf("unknown key %q", sm[1])
		}
		e.Msg = strings.ReplaceAll(e.Msg, "cannot unmarshal ", "wrong type: cannot read ")
		es = append(es, e)
	}
	return es
}

// Line returns the line of a field path such as "session.ttl", or of its
// nearest parent that is in the file, or 0.
func (c *Config) Line(path string) int {
	for path != "" {
		if l, ok := c.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// Forget drops the file lines of a field path and everything below it; flags
// that replace a value call it so their errors do not point into the file.
func (c *Config) Forget(path string) {
	for p := range c.lines {
		if p == path || strings.HasPrefix(p, path+".") || strings.HasPrefix(p, path+"[") {
			delete(c.lines, p)
		}
	}
}
