package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"sessionproxy/config"
)

// The demo reproduces "two Tomcats behind nginx sharing sessions through
// memcached" in one process: two small backends that keep a visit counter
// in their session, and the proxy in front of them.

// demoBackend answers the demo page. It keeps no state: the session comes
// in X-Session-* headers and the new count goes back in X-Session-Set-Visits.
func demoBackend(name, color string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/favicon.ico" {
			http.NotFound(w, r)
			return
		}
		visits, _ := strconv.Atoi(r.Header.Get("X-Session-Attr-Visits"))
		visits++
		created, _ := strconv.ParseInt(r.Header.Get("X-Session-Created"), 10, 64)
		w.Header().Set("X-Session-Set-Visits", strconv.Itoa(visits))
		w.Header().Set("Cache-Control", "no-store")
		page := demoPage{
			Backend: name, Color: color, SessionID: r.Header.Get("X-Session-Id"),
			New: r.Header.Get("X-Session-New") == "1", Created: created, Visits: visits,
		}
		if strings.Contains(r.Header.Get("Accept"), "application/json") {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(page.json())
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		demoTemplate.Execute(w, page)
	})
}

type demoPage struct {
	Backend, Color, SessionID string
	New                       bool
	Created                   int64
	Visits                    int
}

// demoJSON is the contract's JSON form of the demo page.
type demoJSON struct {
	Backend   string `json:"backend"`
	SessionID string `json:"session_id"`
	Created   int64  `json:"created"`
	Visits    int    `json:"visits"`
}

func (p demoPage) json() demoJSON {
	return demoJSON{Backend: p.Backend, SessionID: p.SessionID, Created: p.Created, Visits: p.Visits}
}

func (p demoPage) CreatedTime() string {
	return time.UnixMilli(p.Created).UTC().Format("2006-01-02 15:04:05.000 UTC")
}

// demoTemplate is the demo page. Its empty data: icon keeps browsers from
// requesting /favicon.ico, which would take every other turn in the
// rotation and pin reloads to one backend.
var demoTemplate = template.Must(template.New("demo").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>sessionproxy demo: backend {{.Backend}}</title>
<link rel="icon" href="data:,">
<style>
body { font-family: system-ui, sans-serif; margin: 0; background: {{.Color}}; color: #fff; }
main { max-width: 40em; margin: 3em auto; padding: 2em; background: rgba(0,0,0,.25); border-radius: 1em; }
.backend { font-size: 6em; font-weight: bold; margin: 0; }
dt { opacity: .8; } dd { font-family: monospace; font-size: 1.3em; margin: 0 0 1em 0; }
</style></head>
<body><main>
<p>Served by backend</p>
<p class="backend">{{.Backend}}</p>
<dl>
<dt>Session ID</dt><dd>{{.SessionID}}{{if .New}} (new){{end}}</dd>
<dt>Session created</dt><dd>{{.CreatedTime}}</dd>
<dt>Visits in this session</dt><dd>{{.Visits}}</dd>
</dl>
<p>Reload: the proxy sends you to A and B in turn, and both see the same session,
kept by the proxy and handed to them in X-Session-* headers.</p>
</main></body></html>
`))

// demoBackends starts backends A and B on loopback and returns their URLs
// and a function that stops them.
func demoBackends() (urls []string, stop func(), err error) {
	var servers []*http.Server
	stop = func() {
		for _, s := range servers {
			s.Close()
		}
	}
	for _, b := range []struct{ name, color string }{{"A", "#1565c0"}, {"B", "#2e7d32"}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			stop()
			return nil, nil, err
		}
		srv := &http.Server{Handler: demoBackend(b.name, b.color), ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, srv)
		go srv.Serve(ln)
		urls = append(urls, "http://"+ln.Addr().String())
	}
	return urls, stop, nil
}

// demoConfig is the configuration of the demo proxy.
func demoConfig(listen, memcached string, backends []string) *config.Config {
	c := config.Default()
	c.Listen = listen
	c.AccessLog.Format = "off" // the demo prints its own guide to the terminal, which a line per request would bury
	for _, u := range backends {
		c.Backends = append(c.Backends, config.Backend{URL: u, Weight: 1})
	}
	c.Session.Ignore = `^/favicon\.ico$`
	if memcached != "" {
		memcachedSettings(c).Nodes = strings.Split(memcached, ",")
	}
	return c
}

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "listen `address`")
	memcached := fs.String("memcached", "", "memcached `nodes`, comma separated host:port or id:host:port (default: sessions in this process)")
	admin := fs.String("admin", "", "admin listener `address` (/status, /metrics; default off)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	urls, stop, err := demoBackends()
	if err != nil {
		fmt.Fprintf(stderr, "sessionproxy demo: %v\n", err)
		return 1
	}
	defer stop()
	c := demoConfig(*listen, *memcached, urls)
	c.Admin = *admin
	if err := c.Validate(); err != nil {
		reportConfigError(stderr, "", err, true)
		return 1
	}
	a, err := newApp(c, runFlags{}, newLogger(stderr))
	if err != nil {
		fmt.Fprintf(stderr, "sessionproxy demo: %v\n", err)
		return 1
	}
	a.onListen = func(addr string) {
		fmt.Fprintf(stdout, "sessionproxy demo: backends A (%s) and B (%s) behind the proxy.\n", urls[0], urls[1])
		fmt.Fprintf(stdout, "Open http://%s/ and reload: A and B take turns, one session, the counter climbs.\n", addr)
		fmt.Fprintf(stdout, "JSON: curl -s -c jar -b jar -H 'Accept: application/json' http://%s/\n", addr)
		if c.Admin != "" {
			fmt.Fprintf(stdout, "Admin: http://%s/status shows the backends and the store's nodes.\n", c.Admin)
		}
		fmt.Fprintln(stdout, "Ctrl-C stops it.")
	}
	return a.serve()
}
