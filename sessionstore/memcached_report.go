package sessionstore

import "fmt"

var _ Reporter = (*Memcached)(nil)

// MemcachedStatus describes one memcached node in /status.
type MemcachedStatus struct {
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

// ReportStatus lists every node in st.Memcached, in configuration order.
func (m *Memcached) ReportStatus(st *StoreStatus) {
	for _, n := range m.Status() {
		st.Memcached = append(st.Memcached, MemcachedStatus{ID: n.ID, Addr: n.Addr, Up: n.Up, Failover: n.Failover,
			State: n.State.String(), HandoffPending: n.HandoffPending, HandoffReplayed: n.HandoffReplayed,
			Copied: n.Copied, Catchups: n.Catchups, LastCatchupMs: n.LastCatchup.Milliseconds()})
	}
}

// RegisterGauges declares, for each node, whether it serves reads and its
// handoff and catch-up counters, labelled with its ID. The node list is
// fixed for the store's life, so each gauge finds its node by position.
func (m *Memcached) RegisterGauges(gauge func(name string, value func() float64)) {
	for i, n := range m.Status() {
		node := func() NodeState { return m.Status()[i] }
		gauge(fmt.Sprintf(`sessionproxy_memcached_up{node=%q}`, n.ID), func() float64 {
			if node().Up {
				return 1
			}
			return 0
		})
		gauge(fmt.Sprintf(`sessionproxy_handoff_pending{node=%q}`, n.ID), func() float64 {
			return float64(node().HandoffPending)
		})
		gauge(fmt.Sprintf(`sessionproxy_handoff_replayed_total{node=%q}`, n.ID), func() float64 {
			return float64(node().HandoffReplayed)
		})
		gauge(fmt.Sprintf(`sessionproxy_memcached_copied_total{node=%q}`, n.ID), func() float64 {
			return float64(node().Copied)
		})
		gauge(fmt.Sprintf(`sessionproxy_memcached_catchups_total{node=%q}`, n.ID), func() float64 {
			return float64(node().Catchups)
		})
		gauge(fmt.Sprintf(`sessionproxy_memcached_last_catchup_seconds{node=%q}`, n.ID), func() float64 {
			return node().LastCatchup.Seconds()
		})
	}
}
