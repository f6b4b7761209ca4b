package config

import (
	"regexp"
	"time"
)

// cookieDomainRE is a host name as a cookie's Domain takes it: letters,
// digits, dots and hyphens (a leading dot is allowed and ignored by
// browsers). Anything else could end the attribute and start another.
var cookieDomainRE = regexp.MustCompile(`^\.?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)

// sessionLifetime checks session.max_age, cookie_domain and cookie_path
// (CONTRACT.md section 16).
func (v *validator) sessionLifetime() {
	s := v.c.Session
	if s.MaxAge < 0 {
		v.errf("session.max_age", "session.max_age must be 0 (none) or positive")
	} else if s.MaxAge > 0 && s.MaxAge < Duration(time.Second) {
		v.errf("session.max_age", "session.max_age must be 0 (none) or at least 1s")
	}
	if s.CookieDomain != "" && (len(s.CookieDomain) > 253 || !cookieDomainRE.MatchString(s.CookieDomain)) {
		v.errf("session.cookie_domain", "session.cookie_domain %q is not a host name", s.CookieDomain)
	}
	if !validCookiePath(s.CookiePath) {
		v.errf("session.cookie_path", "session.cookie_path %q must start with / and hold no ';', space or control character", s.CookiePath)
	}
}

func validCookiePath(p string) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c == ';' || c >= 0x7f {
			return false
		}
	}
	return true
}
