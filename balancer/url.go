package balancer

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// ParseBackendURL is the one rule for a backend URL, used by config's
// checks and by the proxy that dials it, so that check and run agree:
// http or https, a host and an optional port, and no path, query or user
// info (the client's path is forwarded unchanged); or unix:/abs/path.sock,
// HTTP over a Unix socket (puma, gunicorn, uvicorn); or FastCGI (PHP-FPM)
// at fastcgi://host:port or fastcgi+unix:/abs/path.sock. The URL's Scheme
// is then "unix", "fastcgi" or "fastcgi+unix", and a socket's path is its
// Path.
func ParseBackendURL(s string) (*url.URL, error) {
	for _, scheme := range [...]string{"unix", "fastcgi+unix"} {
		if rest, ok := strings.CutPrefix(s, scheme+":"); ok {
			if err := socketPath(s, rest); err != nil {
				return nil, err
			}
			return &url.URL{Scheme: scheme, Path: rest}, nil
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("invalid URL %q: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "fastcgi" {
		return nil, fmt.Errorf("URL %q must start with http://, https://, unix:/, fastcgi:// or fastcgi+unix:/", s)
	}
	if u.Scheme == "fastcgi" && u.Port() == "" {
		return nil, fmt.Errorf("URL %q needs a port (PHP-FPM listens on 9000 by default)", s)
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

// socketPath checks the path of a unix: URL: absolute and clean, so that
// the URL names one socket however it is written, and short enough for
// sockaddr_un (108 bytes on Linux, 104 on the BSDs).
func socketPath(s, p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("URL %q must name an absolute socket path (unix:/run/app.sock)", s)
	case filepath.Clean(p) != p:
		return fmt.Errorf("URL %q: socket path is not clean (want %q)", s, "unix:"+filepath.Clean(p))
	case len(p) > 103:
		return fmt.Errorf("URL %q: socket path is longer than 103 bytes", s)
	case strings.ContainsAny(p, "\x00?#"):
		return fmt.Errorf("URL %q: socket path holds a NUL, ? or #", s)
	}
	return nil
}
