package proxy

import (
	"fmt"

	"sessionproxy/sessionstore"
)

// parseMaxAge records X-Session-Max-Age: <seconds>, the session's own idle
// ttl and its cookie's Max-Age ("remember me"; 0 goes back to the
// default). Anything but 1 to 10 digits is refused like any other bad
// update, and so is a number over sessionstore.MaxTTL (SetTTL).
func parseMaxAge(u *sessionstore.Update, v []byte) error {
	v = trimSpace(v)
	if len(v) == 0 || len(v) > 10 {
		return fmt.Errorf("%w: got %q", sessionstore.ErrBadTTL, v)
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return fmt.Errorf("%w: got %q", sessionstore.ErrBadTTL, v)
		}
		n = n*10 + int64(c-'0')
	}
	return u.SetTTL(n)
}

// cookieAttrs is what follows the session cookie's value on every
// Set-Cookie: "; Domain=…; Path=…; HttpOnly; SameSite=…".
func cookieAttrs(domain, path, sameSite string) []byte {
	if path == "" {
		path = "/"
	}
	b := []byte{}
	if domain != "" {
		b = append(b, "; Domain="+domain...)
	}
	return append(b, "; Path="+path+"; HttpOnly; SameSite="+sameSite...)
}
