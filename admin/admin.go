// Package admin serves sessionproxy's admin listener: /healthz, /metrics,
// /status, /sessions/<id>, pprof's profiles and a dashboard at /, behind
// a bearer token.
//
// It reports on the request path from beside it, with net/http: nothing
// here runs per proxied request, so the proxy package keeps only what the
// request path needs.
package admin

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/pprof"

	"github.com/VictoriaMetrics/metrics"

	"sessionproxy/internal/promtext"
	"sessionproxy/proxy"
	"sessionproxy/sessionstore"
)

// Target is the configuration in service that the admin pages describe.
// A reload builds a new one; Handler asks for it on every request.
type Target struct {
	// Upstreams are the proxies of every upstream, "default" first: their
	// backends fill /status, their gauges /metrics, and the first one's
	// Metrics, which every Proxy of the process shares, give the counters.
	Upstreams []*proxy.Proxy

	// Store holds the sessions that /sessions/<id> reads and deletes, and
	// gives /status its nodes. nil: sessions are off, /sessions/<id> is
	// 404 and /status lists no nodes.
	Store *sessionstore.Store

	// Principal is the attribute naming a session's logged-in user
	// (session.principal), shown in /sessions/<id>; "" shows none.
	Principal string
}

// Handler serves /healthz, /metrics, /status, /sessions/<id>, the
// dashboard (/ and /dashboard.json) and /debug/pprof/ for what current
// returns. current is called per request, so that the pages follow config
// reloads. Handler checks no credentials:
// wrap it in RequireToken unless it listens on loopback only.
func Handler(current func() Target) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		writeMetrics(w, current().Upstreams)
	})
	// Profiles, for finding where a slow proxy spends its time.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, current().status())
	})
	mux.HandleFunc("GET /sessions/{id}", func(w http.ResponseWriter, r *http.Request) {
		t := current()
		serveSessionGet(w, t.Store, t.Principal, r.PathValue("id"))
	})
	mux.HandleFunc("DELETE /sessions/{id}", func(w http.ResponseWriter, r *http.Request) {
		serveSessionDelete(w, current().Store, r.PathValue("id"))
	})
	// A principal's sessions (principal.go).
	mux.HandleFunc("GET /sessions", func(w http.ResponseWriter, r *http.Request) {
		servePrincipalGet(w, current().Store, r.URL.Query().Get("principal"))
	})
	mux.HandleFunc("DELETE /sessions", func(w http.ResponseWriter, r *http.Request) {
		servePrincipalDelete(w, current().Store, r.URL.Query().Get("principal"))
	})
	// The dashboard (dashboard.go): the page, and the samples it fetches,
	// whose counters are read from the /metrics page above.
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { serveDashboard(w) })
	mux.HandleFunc("GET /dashboard.json", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, current().dashboard(func(b *bytes.Buffer) {
			req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "/metrics", nil)
			mux.ServeHTTP(bufferWriter{b, http.Header{}}, req)
		}))
	})
	return mux
}

// writeMetrics writes the page of /metrics in Prometheus' text format: the
// counters every Proxy shares (they outlive reloads), each upstream's
// gauges (its backends, and the session store's, which the store names
// itself), then the process's own (memory, CPU, file descriptors).
//
// The Sets are written through promtext, which gives every family its HELP
// and TYPE lines once and keeps its samples together, as promtool wants.
func writeMetrics(w io.Writer, upstreams []*proxy.Proxy) {
	var writers []func(io.Writer)
	for i, p := range upstreams {
		gauges := p.Gauges() // first: it sets up p, Metrics included
		if i == 0 {
			writers = append(writers, p.Metrics.Set.WritePrometheus)
		}
		writers = append(writers, gauges.WritePrometheus)
	}
	writers = append(writers, metrics.WriteProcessMetrics)
	promtext.Write(w, writers...)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	w.Write([]byte(msg + "\n"))
}
