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

// RegisterGauges declares sessionproxy_redis_up{server} for each server
// known now. A Cluster's list can grow (a replica promoted), so each gauge
// looks its server up by address rather than by position.
func (r *Store) RegisterGauges(gauge func(name string, value func() float64)) {
	for _, n := range r.Status() {
		addr := n.Addr
		gauge(fmt.Sprintf(`sessionproxy_redis_up{server=%q}`, addr), func() float64 {
			for _, m := range r.Status() {
				if m.Addr == addr && m.Up {
					return 1
				}
			}
			return 0
		})
	}
}
