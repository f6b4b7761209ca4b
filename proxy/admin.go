package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"net/http/pprof"
	"strings"
)

// AdminHandler serves /healthz, /metrics, /status and /sessions/<id> for
// the proxy p. current lets the handler follow config reloads: it is called
// per request and returns the proxy in service. It checks no credentials:
// wrap it in RequireToken unless it listens on loopback only.
func AdminHandler(current func() *Proxy) http.Handler {
	return adminHandler(func() adminTarget { return current() })
}

// RouterAdminHandler is AdminHandler for a Router: /status and /metrics
// cover every upstream.
func RouterAdminHandler(current func() *Router) http.Handler {
	return adminHandler(func() adminTarget { return current() })
}

// adminTarget is what the admin paths report on: one Proxy or a Router of
// several.
type adminTarget interface {
	WritePrometheus(w io.Writer)
	Status() Status
	serveSessionGet(w http.ResponseWriter, id string)
	serveSessionDelete(w http.ResponseWriter, id string)
}

func adminHandler(current func() adminTarget) http.Handler {
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

// RequireToken wraps an admin handler so that every path but /healthz
// answers 401 unless the request carries "Authorization: Bearer <token>";
// /healthz stays open for load balancers and
// service managers. token is called per request, so that a config reload
// can change it; while it returns "" every request passes, as on an admin
// listener on loopback, the one place the config allows no token.
func RequireToken(token func() string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := token()
		if want == "" || r.URL.Path == "/healthz" {
			h.ServeHTTP(w, r)
			return
		}
		auth := r.Header.Get("Authorization")
		if bearerMatches(auth, want) {
			h.ServeHTTP(w, r)
			return
		}
		challenge := `Bearer realm="sessionproxy admin"`
		if auth != "" {
			challenge += `, error="invalid_token"` // RFC 6750 section 3.1
		}
		w.Header().Set("WWW-Authenticate", challenge)
		writeText(w, http.StatusUnauthorized, "unauthorized")
	})
}

// bearerMatches reports whether an Authorization value is the Bearer
// scheme (any case, RFC 9110 section 11.1) with the token want.
func bearerMatches(auth, want string) bool {
	scheme, cred, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	// ConstantTimeCompare returns at once when the lengths differ, which
	// would tell the token's length: compare digests of equal length.
	got, exp := sha256.Sum256([]byte(strings.TrimSpace(cred))), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(got[:], exp[:]) == 1
}

// Status is the JSON document of GET /status.
type Status struct {
	Backends  []BackendStatus `json:"backends"`
	Memcached []NodeStatus    `json:"memcached"`
	// Redis lists the Redis servers when they are the store.
	Redis []RedisStatus `json:"redis,omitempty"`
}

// BackendStatus describes one backend in /status.
type BackendStatus struct {
	Upstream string `json:"upstream"`
	URL      string `json:"url"`
	Up       bool   `json:"up"`
	Active   int64  `json:"active"`
	Fails    int    `json:"fails"`
	Backup   bool   `json:"backup"`
	Served   uint64 `json:"served"`
}

// NodeStatus describes one memcached node in /status.
type NodeStatus struct {
	ID       string `json:"id"`
	Addr     string `json:"addr"`
	Up       bool   `json:"up"` // serving reads: State is "up"
	Failover bool   `json:"failover"`
	// State is "up", "down" or "catching_up".
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
			Upstream: p.upstream(), URL: b.URL, Up: b.Available(), Active: b.Inflight(), Fails: b.Fails(),
			Backup: b.Backup, Served: b.Served(),
		})
	}
	if p.Sessions != nil {
		s.Memcached = p.Sessions.nodeStatus()
		s.Redis = p.Sessions.redisStatus()
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
