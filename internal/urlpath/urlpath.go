// Package urlpath escapes a normalised request path for a URL: one owner
// for the proxy's rewritten paths and the static files' redirects.
package urlpath

// AppendEscaped appends p, a normalised path (proxy's normalizePath), with
// every byte that may not appear in a path segment (RFC 3986 pchar, plus
// "/") %-escaped. The "%" of p are kept: they only start the %2F and %25
// that normalizePath left escaped, so "%2F" stays "%2F".
func AppendEscaped(dst, p []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range p {
		if pathByteOK(c) {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hex[c>>4], hex[c&15])
	}
	return dst
}

func pathByteOK(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@', '/', '%':
		return true
	}
	return false
}
