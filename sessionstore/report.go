package sessionstore

// Reporter is implemented by a Shared store that describes itself on the
// admin listener: its part of /status and its own gauges on /metrics. Each
// kind of store knows what its nodes are and what is worth watching on
// them, so the admin page and the proxy stay free of any one kind's
// vocabulary; a kind that does not implement Reporter shows no nodes.
type Reporter interface {
	// ReportStatus fills the store's own field of st, leaving the others
	// as they are.
	ReportStatus(st *StoreStatus)
	// RegisterMetrics declares the store's metrics through add, once
	// per configuration. Each Value func is called on every scrape, from
	// any goroutine.
	RegisterMetrics(add func(Metric))
}

// Metric is one of a store's metrics on /metrics, read on every scrape.
// The store says what it is, so that the page can give it its HELP and
// TYPE lines: a cumulative count is a Counter whose name ends in _total,
// anything that goes up and down a gauge.
type Metric struct {
	// Name is the Prometheus name with labels:
	// sessionproxy_memcached_up{node="a"}.
	Name string
	// Help is the family's HELP text; every sample of a family carries
	// the same.
	Help string
	// Counter says Value only grows (it may restart at zero with the
	// store); false makes it a gauge.
	Counter bool
	Value   func() float64
}

// StoreStatus is the session store's part of the admin listener's
// /status document: one field per kind of shared store, which that kind's
// Reporter fills.
type StoreStatus struct {
	// Memcached lists the memcached nodes. /status has always carried it,
	// empty when another store or none holds the sessions.
	Memcached []MemcachedStatus `json:"memcached"`
	// Redis lists the Redis servers when they are the store.
	Redis []RedisStatus `json:"redis,omitempty"`
}

// Status returns the shared store's part of /status. A nil Store (sessions
// off) reports no nodes, with the fields /status always carries, so that
// the document's shape does not depend on the configuration.
func (s *Store) Status() StoreStatus {
	st := StoreStatus{Memcached: []MemcachedStatus{}}
	if s == nil {
		return st
	}
	if r, ok := s.shared.(Reporter); ok {
		r.ReportStatus(&st)
	}
	return st
}

// RegisterMetrics declares the store's metrics through add: the hot
// tier's and the write modes' own, then the shared store's if it is a
// Reporter. Call it once per configuration that shows the store; each
// Value func reads the live state on every scrape.
func (s *Store) RegisterMetrics(add func(Metric)) {
	if r, ok := s.shared.(Reporter); ok {
		r.RegisterMetrics(add)
	}
	add(Metric{Name: "sessionproxy_local_cache_entries", Help: "Sessions held in the in-process hot tier.",
		Value: func() float64 { n, _ := s.LocalStats(); return float64(n) }})
	add(Metric{Name: "sessionproxy_local_cache_hit_rate", Help: "Share of session lookups the hot tier answered, 0 to 1.",
		Value: func() float64 { _, r := s.LocalStats(); return r }})
	add(Metric{Name: "sessionproxy_sessions_pending_writeback", Help: "Sessions changed in the hot tier and not yet written to the shared store.",
		Value: func() float64 { return float64(s.Dirty()) }})
	add(Metric{Name: "sessionproxy_session_async_pending", Help: "Asynchronous session writes queued and not yet written.",
		Value: func() float64 { return float64(s.Pending()) }})
	add(Metric{Name: "sessionproxy_session_async_written_total", Help: "Session writes done asynchronously, off the request path.", Counter: true,
		Value: func() float64 { w, _ := s.AsyncStats(); return float64(w) }})
	add(Metric{Name: "sessionproxy_session_async_inline_total", Help: "Asynchronous session writes done inline because the queue was full.", Counter: true,
		Value: func() float64 { _, i := s.AsyncStats(); return float64(i) }})
}
