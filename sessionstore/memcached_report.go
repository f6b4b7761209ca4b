package sessionstore

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
