package admin

import "sessionproxy/sessionstore"

// Status is the JSON document of GET /status.
type Status struct {
	// Backends lists every upstream's backends, "default" first.
	Backends []BackendStatus `json:"backends"`
	// StoreStatus lists the session store's nodes. Embedded, so that its
	// fields sit beside "backends" in the document, as they always have;
	// the store fills them itself (sessionstore.Reporter).
	sessionstore.StoreStatus
}

// BackendStatus describes one backend in /status.
type BackendStatus struct {
	Upstream string `json:"upstream"`
	URL      string `json:"url"`
	Up       bool   `json:"up"`
	Active   int64  `json:"active"`
	Fails    int    `json:"fails"`
	Backup   bool   `json:"backup"`
	Served   uint64 `json:"served"`
}

// status reports the live state of every upstream's backends, each with
// its upstream's name, and of the session store's nodes.
func (t Target) status() Status {
	s := Status{Backends: []BackendStatus{}, StoreStatus: t.Store.Status()}
	for _, p := range t.Upstreams {
		for _, b := range p.Pool.Backends {
			s.Backends = append(s.Backends, BackendStatus{
				Upstream: p.UpstreamName(), URL: b.URL, Up: b.Available(), Active: b.Inflight(), Fails: b.Fails(),
				Backup: b.Backup, Served: b.Served(),
			})
		}
	}
	return s
}
