package balancer

import (
	"fmt"
	"net/url"
	"strconv"
)

// ParseBackendURL is the one rule for a backend URL, used by config's
// checks and by the proxy that dials it, so that check and run agree:
// http or https, a host and an optional port, and no path, query or user
// info (the client's path is forwarded unchanged).
func ParseBackendURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("invalid URL %q: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("URL %q must start with http:// or https://", s)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("URL %q has no host", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("URL %q has an invalid port", s)
		}
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("URL %q must be scheme://host:port only (no path, query or user)", s)
	}
	return u, nil
}
