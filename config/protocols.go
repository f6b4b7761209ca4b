package config

// protocols checks http2 and http3. http2 is on by default and takes
// effect only with listen_tls (plain-text h2c is not offered), so it needs
// no check of its own; HTTP/3 runs on listen_tls's UDP port.
func (v *validator) protocols() {
	if v.c.HTTP3 && v.c.ListenTLS == "" {
		v.errf("http3", "http3 needs listen_tls: HTTP/3 is served on its UDP port")
	}
}
