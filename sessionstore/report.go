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
	// RegisterGauges declares the store's gauges, by Prometheus name with
	// labels, through gauge, once per configuration. Each value func is
	// called on every scrape, from any goroutine.
	RegisterGauges(gauge func(name string, value func() float64))
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

// RegisterGauges declares the store's gauges through gauge: the hot tier's
// and the write modes' own, then the shared store's if it is a Reporter.
// Call it once per configuration that shows the store; each value func
// reads the live state on every scrape.
func (s *Store) RegisterGauges(gauge func(name string, value func() float64)) {
	if r, ok := s.shared.(Reporter); ok {
		r.RegisterGauges(gauge)
	}
	gauge("sessionproxy_local_cache_entries", func() float64 { n, _ := s.LocalStats(); return float64(n) })
	gauge("sessionproxy_local_cache_hit_rate", func() float64 { _, r := s.LocalStats(); return r })
	gauge("sessionproxy_sessions_pending_writeback", func() float64 { return float64(s.Dirty()) })
	gauge("sessionproxy_session_async_pending", func() float64 { return float64(s.Pending()) })
	gauge("sessionproxy_session_async_written", func() float64 { w, _ := s.AsyncStats(); return float64(w) })
	gauge("sessionproxy_session_async_inline", func() float64 { _, i := s.AsyncStats(); return float64(i) })
}
