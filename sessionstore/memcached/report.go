package memcached

import (
	"fmt"

	"sessionproxy/sessionstore"
)

var _ sessionstore.Reporter = (*Memcached)(nil)

// ReportStatus lists every node in st.Memcached, in configuration order.
func (m *Memcached) ReportStatus(st *sessionstore.StoreStatus) {
	for _, n := range m.Status() {
		st.Memcached = append(st.Memcached, sessionstore.MemcachedStatus{ID: n.ID, Addr: n.Addr, Up: n.Up, Failover: n.Failover,
			State: n.State.String(), HandoffPending: n.HandoffPending, HandoffReplayed: n.HandoffReplayed,
			Copied: n.Copied, Catchups: n.Catchups, LastCatchupMs: n.LastCatchup.Milliseconds()})
	}
}

// RegisterMetrics declares, for each node, whether it serves reads and
// its handoff and catch-up counts, labelled with its ID. The node list is
// fixed for the store's life, so each metric finds its node by position.
func (m *Memcached) RegisterMetrics(add func(sessionstore.Metric)) {
	for i, n := range m.Status() {
		node := func() sessionstore.NodeState { return m.Status()[i] }
		label := fmt.Sprintf(`{node=%q}`, n.ID)
		add(sessionstore.Metric{Name: "sessionproxy_memcached_up" + label, Help: "Whether the memcached node serves reads (1) or not (0).",
			Value: func() float64 {
				if node().Up {
					return 1
				}
				return 0
			}})
		add(sessionstore.Metric{Name: "sessionproxy_handoff_pending" + label, Help: "Session writes held for the node while it is down, to replay when it is back.",
			Value: func() float64 { return float64(node().HandoffPending) }})
		add(sessionstore.Metric{Name: "sessionproxy_handoff_replayed_total" + label, Help: "Held session writes replayed to the node after it came back.", Counter: true,
			Value: func() float64 { return float64(node().HandoffReplayed) }})
		add(sessionstore.Metric{Name: "sessionproxy_memcached_copied_total" + label, Help: "Sessions copied to the node by catch-ups.", Counter: true,
			Value: func() float64 { return float64(node().Copied) }})
		add(sessionstore.Metric{Name: "sessionproxy_memcached_catchups_total" + label, Help: "Catch-ups run for the node after it came back.", Counter: true,
			Value: func() float64 { return float64(node().Catchups) }})
		add(sessionstore.Metric{Name: "sessionproxy_memcached_last_catchup_seconds" + label, Help: "How long the node's last catch-up took.",
			Value: func() float64 { return node().LastCatchup.Seconds() }})
	}
}
