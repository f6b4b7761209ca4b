package proxy

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"

	"sessionproxy/sessionstore"
)

// RedisStatus describes one Redis server in /status.
type RedisStatus struct {
	Addr string `json:"addr"`
	Up   bool   `json:"up"` // answered the last PING
}

// memcachedNodes returns the store's configured nodes (memcached's): none
// when the store finds its servers (Redis), which /status and /metrics
// list apart.
func (s *Sessions) memcachedNodes() []sessionstore.NodeState {
	return s.Store.ConfiguredNodes()
}

func (s *Sessions) redisStatus() []RedisStatus {
	if !s.Store.FindsServers() {
		return nil
	}
	out := []RedisStatus{}
	for _, n := range s.Store.Nodes() {
		out = append(out, RedisStatus{Addr: n.Addr, Up: n.Up})
	}
	return out
}

// redisGauges exports sessionproxy_redis_up{server} for each server known
// at start. A Cluster's list can grow (a replica promoted), so each gauge
// looks its server up by address rather than by position.
func (s *Sessions) redisGauges(gauges *metrics.Set) {
	for _, n := range s.Store.Nodes() {
		addr := n.Addr
		gauges.NewGauge(fmt.Sprintf(`sessionproxy_redis_up{server=%q}`, addr), func() float64 {
			for _, m := range s.Store.Nodes() {
				if m.Addr == addr && m.Up {
					return 1
				}
			}
			return 0
		})
	}
}
