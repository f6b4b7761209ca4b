package admin

import (
	"net"
	"net/http"
	"strings"
)

// RequireLocalHost wraps an admin handler so that a request whose Host is
// not the admin listener's own address gets 403 (CONTRACT.md section 16):
// a web page whose name an attacker points at 127.0.0.1 (DNS rebinding)
// makes the browser send its own name as Host, which never passes, so the
// page cannot read or change sessions through a browser on the admin's
// machine. Allowed are the address the connection arrived at, the
// configured address, and localhost, 127.0.0.1 and [::1], each with the
// listener's port (no port: the listener is on 80).
func RequireLocalHost(configured string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		if !ownHost(r.Host, configured, local) {
			writeText(w, http.StatusForbidden, "forbidden: Host is not this admin listener's address")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ownHost reports whether host (a request's Host) names the listener
// whose configured address is configured and whose connection arrived at
// local.
func ownHost(host, configured string, local net.Addr) bool {
	if local == nil {
		return false
	}
	_, port, err := net.SplitHostPort(local.String())
	if err != nil {
		return false
	}
	host = strings.ToLower(host)
	name, hport, err := net.SplitHostPort(host)
	if err != nil {
		// No port: HTTP's default, which only a listener on 80 has.
		name, hport = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), "80"
	}
	if hport != port || name == "" {
		return false
	}
	switch name {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	if cname, cport, err := net.SplitHostPort(strings.ToLower(configured)); err == nil && cname != "" && cport == port && cname == name {
		return true
	}
	lip, _, _ := net.SplitHostPort(local.String())
	ip := net.ParseIP(name)
	return ip != nil && ip.Equal(net.ParseIP(lip))
}
