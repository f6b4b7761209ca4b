package proxy

import (
	"fmt"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// Metrics holds the proxy's Prometheus metrics. Counters per status code are
// created on first use and then found by index, so counting a request does
// not format a name.
type Metrics struct {
	Set      *metrics.Set
	codes    [600]atomic.Pointer[metrics.Counter]
	duration *metrics.PrometheusHistogram
}

// NewMetrics registers the proxy's metrics in a new set.
func NewMetrics() *Metrics {
	s := metrics.NewSet()
	return &Metrics{
		Set:      s,
		duration: s.NewPrometheusHistogram("sessionproxy_request_duration_seconds"),
	}
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

// gauge registers a gauge computed at scrape time, once per name.
func (m *Metrics) gauge(name string, f func() float64) {
	m.Set.GetOrCreateGauge(name, f)
}
