package h2front

import (
	"net/http"
	"strings"
)

// validRequest reports whether r can be written as an HTTP/1.1 request
// without changing what it says. net/http's h2 server already refuses
// upper-case and connection-specific fields (Connection, Keep-Alive,
// Proxy-Connection, Transfer-Encoding, Upgrade; TE other than "trailers")
// and field values with CR, LF or NUL (RFC 9113 §8.2); this checks them
// again, with the pseudo-header fields that become the request line, so that
// no h2 request can become two HTTP/1.1 ones or a different one.
func validRequest(r *http.Request) bool {
	if !token(r.Method) || !target(r.RequestURI) || !hostChars(r.Host) {
		return false
	}
	for k, vv := range r.Header {
		if !token(k) {
			return false
		}
		switch k {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade":
			return false
		case "Te":
			for _, v := range vv {
				if !strings.EqualFold(v, "trailers") {
					return false
				}
			}
		}
		for _, v := range vv {
			if !fieldValue(v) {
				return false
			}
		}
	}
	return true
}

// token: RFC 9110 tchar.
func token(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// target: an origin-form path (or "*"), no space nor control byte.
func target(s string) bool {
	if s == "" || s[0] != '/' && s != "*" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// hostChars: an authority without userinfo, space, control bytes or
// delimiters that would end it.
func hostChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == 0x7f || c == '/' || c == '?' || c == '#' || c == '@' || c == '\\' {
			return false
		}
	}
	return true
}

// fieldValue: RFC 9113 §8.2.1, no NUL, CR or LF, and no whitespace at
// either end (HTTP/1.1 would drop it, and the value would change).
func fieldValue(s string) bool {
	if s != "" && (s[0] == ' ' || s[0] == '\t' || s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		return false
	}
	return !strings.ContainsAny(s, "\x00\r\n")
}
