package main

import (
	"io"
	"testing"

	"sessionproxy/config"
)

// TestResponseHeaderRoomFollowsMaxSize: the proxy accepts a backend's
// response header of max_size plus 16 KiB (CONTRACT.md section 8), so a
// larger max_size also raises it.
func TestResponseHeaderRoomFollowsMaxSize(t *testing.T) {
	for _, maxSize := range []config.Size{64 << 10, 256 << 10} {
		c := config.Default()
		c.Backends = []config.Backend{{URL: "http://127.0.0.1:9001", Weight: 1}}
		c.Session.MaxSize = maxSize
		c.Session.LocalCache.Size = 1 << 20
		g, err := build(c, newLogger(io.Discard), nil)
		if err != nil {
			t.Fatal(err)
		}
		g.stop()
		g.store.Close()
		if got, want := g.proxy.MaxResponseHeader, int(maxSize)+16<<10; got != want {
			t.Errorf("max_size %d: MaxResponseHeader = %d, want %d", maxSize, got, want)
		}
	}
}
