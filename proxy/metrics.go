package proxy

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"sessionproxy/internal/promtext"
	"sessionproxy/sessionstore"
)

// Metrics holds the proxy's Prometheus counters. One Metrics lives as long
// as the process and is shared by the proxies that reloads build, so that
// counters do not restart at zero; gauges that describe one configuration's
// backends and nodes live with that Proxy. Counters per upstream and
// route are found once, when a configuration is loaded; per status code
// they are created on first use and then found by index, so counting a
// request does not format a name. Each family's HELP and TYPE are
// declared to promtext (init below), which writes /metrics.
type Metrics struct {
	// Set holds the counters, for the admin listener's /metrics.
	Set *metrics.Set
	// none counts the requests no upstream answers (static files,
	// redirects, fixed answers: the Recorder's).
	none     *upstreamMetrics
	lookups  [sessionstore.NumLookups]*metrics.Counter // by Lookup; none is not counted
	rejected *metrics.Counter
	// tunnelsRefused counts handshakes refused by a limit, by refusal.
	tunnelsRefused [numRefusals]*metrics.Counter

	mu        sync.Mutex // protects tunnels, upstreams and routes
	tunnels   []*Tunnels // the registries whose open tunnels the gauge sums
	upstreams map[string]*upstreamMetrics
	routes    map[string]*RouteMetrics
}

// upstreamMetrics counts the requests one upstream answers, by status
// code, and their durations. A Proxy finds its own once, at init, so a
// request only indexes an array.
type upstreamMetrics struct {
	set      *metrics.Set
	name     string
	codes    [600]atomic.Pointer[metrics.Counter]
	duration *metrics.PrometheusHistogram
}

// RouteMetrics counts the requests one route matched and their
// durations; a Route holds its own (Route.Metrics), found once when the
// configuration is loaded.
type RouteMetrics struct {
	requests *metrics.Counter
	duration *metrics.PrometheusHistogram
}

// upstreamNone labels the requests that no upstream answers.
const upstreamNone = "none"

func init() {
	for _, d := range [][3]string{
		{"sessionproxy_requests_total", promtext.Counter, "Requests answered, by upstream (\"none\": static files, redirects and fixed answers) and status code."},
		{"sessionproxy_request_duration_seconds", promtext.Histogram, "Time from a request's arrival to its answer, by upstream."},
		{"sessionproxy_route_requests_total", promtext.Counter, "Requests matched by a route, by route (host and path as configured) and the upstream it sends to (\"none\": static, respond, redirect)."},
		{"sessionproxy_route_request_duration_seconds", promtext.Histogram, "Time to answer the requests a route matched, by route and upstream."},
		{"sessionproxy_session_updates_rejected_total", promtext.Counter, "Session updates from a backend refused (too large, malformed)."},
		{"sessionproxy_tunnels_active", promtext.Gauge, "WebSocket tunnels open now."},
		{"sessionproxy_tunnels_refused_total", promtext.Counter, "WebSocket handshakes refused with 503, by the limit that refused them."},
		{"sessionproxy_sessions_ended_total", promtext.Counter, "Sessions ended, by reason."},
		{"sessionproxy_session_lookups_total", promtext.Counter, "Session lookups, by where the session was found."},
		{"sessionproxy_backend_up", promtext.Gauge, "Whether the backend may be given requests (1) or is out (0)."},
		{"sessionproxy_backend_active", promtext.Gauge, "Requests in flight and tunnels open on the backend now."},
		{"sessionproxy_backend_fails", promtext.Gauge, "The backend's consecutive passive failures now."},
		{"sessionproxy_backend_failures_total", promtext.Counter, "Failed requests to the backend (refused, timed out, invalid answer); restarts at zero on reload."},
	} {
		promtext.Describe(d[0], d[1], d[2])
	}
}

// A tunnelRefusal is the limit a WebSocket handshake was refused by (503).
type tunnelRefusal int

const (
	refusedMaxTunnels tunnelRefusal = iota // max_tunnels tunnels open
	refusedMaxConns                        // every backend at max_conns
	numRefusals
)

var refusalNames = [numRefusals]string{"max_tunnels", "max_conns"}

// NewMetrics registers the proxy's counters in a new set.
func NewMetrics() *Metrics {
	s := metrics.NewSet()
	m := &Metrics{
		Set:      s,
		rejected: s.NewCounter("sessionproxy_session_updates_rejected_total"),
	}
	m.none = m.upstream(upstreamNone)
	s.NewGauge("sessionproxy_tunnels_active", m.tunnelsActive)
	for r, name := range refusalNames {
		m.tunnelsRefused[r] = s.NewCounter(fmt.Sprintf(`sessionproxy_tunnels_refused_total{reason=%q}`, name))
	}
	for r := sessionstore.EndReason(0); r < sessionstore.NumEndReasons; r++ {
		// The store counts the sessions it ends; the counts outlive the
		// Store a reload replaces, as this Set does.
		// A gauge to the library, which has no counter read from a
		// func; promtext gives it its counter TYPE.
		s.NewGauge(fmt.Sprintf(`sessionproxy_sessions_ended_total{reason=%q}`, r), func() float64 {
			return float64(sessionstore.Ended(r))
		})
	}
	for l := sessionstore.LookupNone + 1; l < sessionstore.NumLookups; l++ {
		m.lookups[l] = s.NewCounter(fmt.Sprintf(`sessionproxy_session_lookups_total{result=%q}`, l))
	}
	return m
}

// countTunnels makes the sessionproxy_tunnels_active gauge count the
// tunnels of t too. The Proxies that share m normally share one registry
// (a reload passes both on); one that was given none has its own, and the
// gauge still counts every tunnel open.
func (m *Metrics) countTunnels(t *Tunnels) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.Contains(m.tunnels, t) {
		m.tunnels = append(m.tunnels, t)
	}
}

func (m *Metrics) tunnelsActive() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, t := range m.tunnels {
		n += t.Active()
	}
	return float64(n)
}

// upstream returns the counters of the upstream named name, made on
// first use and shared by every configuration that names it.
func (m *Metrics) upstream(name string) *upstreamMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u := m.upstreams[name]; u != nil {
		return u
	}
	if m.upstreams == nil {
		m.upstreams = map[string]*upstreamMetrics{}
	}
	u := &upstreamMetrics{set: m.Set, name: name,
		duration: m.Set.NewPrometheusHistogram(fmt.Sprintf(`sessionproxy_request_duration_seconds{upstream=%q}`, name))}
	m.upstreams[name] = u
	return u
}

// Route returns the counters of the route named name (its host and path
// as configured) that sends to upstream ("" for one no upstream answers:
// static files, respond, redirect), made on first use and kept across
// reloads. Call it when loading a configuration, not per request.
func (m *Metrics) Route(name, upstream string) *RouteMetrics {
	if upstream == "" {
		upstream = upstreamNone
	}
	labels := fmt.Sprintf(`{route=%q,upstream=%q}`, name, upstream)
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.routes[labels]; r != nil {
		return r
	}
	if m.routes == nil {
		m.routes = map[string]*RouteMetrics{}
	}
	r := &RouteMetrics{
		requests: m.Set.NewCounter("sessionproxy_route_requests_total" + labels),
		duration: m.Set.NewPrometheusHistogram("sessionproxy_route_request_duration_seconds" + labels),
	}
	m.routes[labels] = r
	return r
}

// count counts a request answered with status in d.
func (u *upstreamMetrics) count(status int, d time.Duration) {
	u.code(status).Inc()
	u.duration.Update(d.Seconds())
}

func (u *upstreamMetrics) code(status int) *metrics.Counter {
	if status < 100 || status >= len(u.codes) {
		status = 599
	}
	if c := u.codes[status].Load(); c != nil {
		return c
	}
	c := u.set.GetOrCreateCounter(fmt.Sprintf(`sessionproxy_requests_total{upstream=%q,code="%d"}`, u.name, status))
	u.codes[status].Store(c)
	return c
}

// count counts a request the route matched, answered in d. A nil r
// counts nothing.
func (r *RouteMetrics) count(d time.Duration) {
	if r == nil {
		return
	}
	r.requests.Inc()
	r.duration.Update(d.Seconds())
}

// Gauges returns the gauges that describe p's configuration: its
// backends and its session store. They live as long as p, while Metrics'
// counters outlive reloads; the admin listener's /metrics writes both.
func (p *Proxy) Gauges() *metrics.Set {
	p.once.Do(p.init)
	return p.gauges
}
