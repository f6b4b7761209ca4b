package config

import (
	"strings"
	"testing"
)

func TestProtocols(t *testing.T) {
	c, err := Load([]byte("backends: [{url: 'http://127.0.0.1:1'}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.HTTP2 || c.HTTP3 {
		t.Fatalf("defaults: http2 %v http3 %v, want true and false", c.HTTP2, c.HTTP3)
	}
	c, err = Load([]byte("backends: [{url: 'http://127.0.0.1:1'}]\nhttp2: false\n"))
	if err != nil || c.HTTP2 {
		t.Fatalf("http2: false: %v, %v", c.HTTP2, err)
	}
	for _, tt := range []struct{ name, text, want string }{
		{"http3 without listen_tls", "backends: [{url: 'http://a:1'}]\nhttp3: true\n", "line 2: http3 needs listen_tls"},
		{"http2 not a bool", "backends: [{url: 'http://a:1'}]\nhttp2: sometimes\n", "line 2"},
		{"http3 misspelt", "backends: [{url: 'http://a:1'}]\nhttp_3: true\n", "line 2"},
	} {
		_, err := Load([]byte(tt.text))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}
