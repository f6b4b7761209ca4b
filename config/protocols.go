package config

// protocols checks http2 and http3. http2 is on by default and takes
// effect only with listen_tls (plain-text h2c is not offered), so it needs
// no check of its own. HTTP/3 is not served yet: a file that asks for it is
// refused rather than silently served without it.
func (v *validator) protocols() {
	if v.c.HTTP3 {
		v.errf("http3", "http3: HTTP/3 is not available in this version (HTTP/2 is, with http2: true on listen_tls)")
	}
}
