package proxy

import "io"

// writeMetrics writes p's counters and gauges as the admin listener's
// /metrics does, without the process's own metrics: the admin package
// imports proxy, so proxy's tests cannot call it.
func writeMetrics(w io.Writer, p *Proxy) {
	gauges := p.Gauges() // first: it sets up p, Metrics included
	p.Metrics.Set.WritePrometheus(w)
	gauges.WritePrometheus(w)
}
