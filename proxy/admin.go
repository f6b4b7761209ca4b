package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
)

// AdminHandler serves /healthz, /metrics, /status and /sessions/<id> for
// the proxy p. current lets the handler follow config reloads: it is called
// per request and returns the proxy in service.
func AdminHandler(current func() *Proxy) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		current().WritePrometheus(w)
	})
	// Profiles, for finding where a slow proxy spends its time.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, current().Status())
	})
	mux.HandleFunc("GET /sessions/{id}", func(w http.ResponseWriter, r *http.Request) {
		current().serveSessionGet(w, r.PathValue("id"))
	})
	mux.HandleFunc("DELETE /sessions/{id}", func(w http.ResponseWriter, r *http.Request) {
		current().serveSessionDelete(w, r.PathValue("id"))
	})
	return mux
}

// Status is the JSON document of GET /status.
type Status struct {
	Backends  []BackendStatus `json:"backends"`
	Memcached []NodeStatus    `json:"memcached"`
}

// BackendStatus describes one backend in /status.
type BackendStatus struct {
	URL    string `json:"url"`
	Up     bool   `json:"up"`
	Active int64  `json:"active"`
	Fails  int    `json:"fails"`
	Backup bool   `json:"backup"`
	Served uint64 `json:"served"`
}

// NodeStatus describes one memcached node in /status.
type NodeStatus struct {
	ID       string `json:"id"`
	Addr     string `json:"addr"`
	Up       bool   `json:"up"` // serving reads: State is "up"
	Failover bool   `json:"failover"`
	// State is "up", "down" or "catching_up" (CONTRACT.md section 8).
	State           string `json:"state"`
	HandoffPending  int    `json:"handoff_pending"`
	HandoffReplayed int64  `json:"handoff_replayed"`
	Copied          int64  `json:"copied"`          // sessions copied back by full copies
	Catchups        int64  `json:"catchups"`        // completed catch-ups
	LastCatchupMs   int64  `json:"last_catchup_ms"` // how long the last one took
}

// Status reports the live state of every backend and memcached node.
func (p *Proxy) Status() Status {
	s := Status{Backends: []BackendStatus{}, Memcached: []NodeStatus{}}
	for _, b := range p.Pool.Backends {
		s.Backends = append(s.Backends, BackendStatus{
			URL: b.URL, Up: b.Available(), Active: b.Inflight(), Fails: b.Fails(),
			Backup: b.Backup, Served: b.Served(),
		})
	}
	if p.Sessions != nil {
		s.Memcached = p.Sessions.nodeStatus()
	}
	return s
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
