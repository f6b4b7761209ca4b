package proxy

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"

	"sessionproxy/sessionstore"
)

// Metrics holds the proxy's Prometheus counters. One Metrics lives as long
// as the process and is shared by the proxies that reloads build, so that
// counters do not restart at zero; gauges that describe one configuration's
// backends and nodes live with that Proxy. Counters per status code are
// created on first use and then found by index, so counting a request does
// not format a name.
type Metrics struct {
	// Set holds the counters, for the admin listener's /metrics.
	Set      *metrics.Set
	codes    [600]atomic.Pointer[metrics.Counter]
	duration *metrics.PrometheusHistogram
	lookups  [sessionstore.NumLookups]*metrics.Counter // by Lookup; none is not counted
	rejected *metrics.Counter
	// tunnelsRefused counts handshakes refused by a limit, by refusal.
	tunnelsRefused [numRefusals]*metrics.Counter

	mu      sync.Mutex // protects tunnels
	tunnels []*Tunnels // the registries whose open tunnels the gauge sums
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
		duration: s.NewPrometheusHistogram("sessionproxy_request_duration_seconds"),
		rejected: s.NewCounter("sessionproxy_session_updates_rejected_total"),
	}
	s.NewGauge("sessionproxy_tunnels_active", m.tunnelsActive)
	for r, name := range refusalNames {
		m.tunnelsRefused[r] = s.NewCounter(fmt.Sprintf(`sessionproxy_tunnels_refused_total{reason=%q}`, name))
	}
	for r := sessionstore.EndReason(0); r < sessionstore.NumEndReasons; r++ {
		// The store counts the sessions it ends; the counts outlive the
		// Store a reload replaces, as this Set does.
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

func (m *Metrics) code(status int) *metrics.Counter {
	if status < 100 || status >= len(m.codes) {
		status = 599
	}
	if c := m.codes[status].Load(); c != nil {
		return c
	}
	c := m.Set.GetOrCreateCounter(fmt.Sprintf(`sessionproxy_requests_total{code="%d"}`, status))
	m.codes[status].Store(c)
	return c
}

// Gauges returns the gauges that describe p's configuration: its
// backends and its session store. They live as long as p, while Metrics'
// counters outlive reloads; the admin listener's /metrics writes both.
func (p *Proxy) Gauges() *metrics.Set {
	p.once.Do(p.init)
	return p.gauges
}
