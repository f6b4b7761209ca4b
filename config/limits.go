package config

// limits checks max_tunnels and every upstream's max_conns: positive
// whole numbers. 0 is refused rather than read as "no limit": a limit
// that is off by mistake is how 3,000 tunnels from one client became
// 3,000 backend connections.
func (v *validator) limits() {
	if v.c.MaxTunnels < 1 {
		v.errf("max_tunnels", "max_tunnels must be 1 or more, got %d", v.c.MaxTunnels)
	}
	for _, name := range v.c.UpstreamNames() {
		path := "max_conns"
		if name != DefaultUpstream {
			path = "upstreams." + name + ".max_conns"
			if _, set := v.c.lines[path]; !set {
				continue // inherited: reported once, at the top level
			}
		}
		if n := v.c.UpstreamConfig(name).MaxConns; n < 1 {
			v.errf(path, "%s must be 1 or more, got %d", path, n)
		}
	}
}
