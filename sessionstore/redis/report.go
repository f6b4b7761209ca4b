package redis

import (
	"fmt"

	"sessionproxy/sessionstore"
)

var _ sessionstore.Reporter = (*Store)(nil)

// ReportStatus lists every server seen in st.Redis, sorted by address.
func (r *Store) ReportStatus(st *sessionstore.StoreStatus) {
	st.Redis = []sessionstore.RedisStatus{}
	for _, n := range r.Status() {
		st.Redis = append(st.Redis, sessionstore.RedisStatus{Addr: n.Addr, Up: n.Up})
	}
}

// RegisterMetrics declares sessionproxy_redis_up{server} for each server
// known now. A Cluster's list can grow (a replica promoted), so each
// metric looks its server up by address rather than by position.
func (r *Store) RegisterMetrics(add func(sessionstore.Metric)) {
	for _, n := range r.Status() {
		addr := n.Addr
		add(sessionstore.Metric{Name: fmt.Sprintf(`sessionproxy_redis_up{server=%q}`, addr),
			Help: "Whether the Redis server answers (1) or not (0).",
			Value: func() float64 {
				for _, m := range r.Status() {
					if m.Addr == addr && m.Up {
						return 1
					}
				}
				return 0
			}})
	}
}
