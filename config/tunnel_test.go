package config

import (
	"strings"
	"testing"
	"time"
)

func TestTunnelIdle(t *testing.T) {
	c, err := Load([]byte("backends: [{url: 'http://127.0.0.1:1'}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Timeouts.TunnelIdle.Std(); got != time.Hour {
		t.Fatalf("tunnel_idle default %v, want 1h", got)
	}
	c, err = Load([]byte("backends: [{url: 'http://127.0.0.1:1'}]\ntimeouts:\n  tunnel_idle: 90s\n"))
	if err != nil || c.Timeouts.TunnelIdle.Std() != 90*time.Second {
		t.Fatalf("tunnel_idle: 90s gave %v, %v", c.Timeouts.TunnelIdle, err)
	}
	for _, bad := range []string{"0s", "-1m"} {
		lines := errorLines(t, "backends: [{url: 'http://127.0.0.1:1'}]\ntimeouts:\n  tunnel_idle: "+bad+"\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "line 3: ") {
			t.Fatalf("tunnel_idle: %s gave %q, want one error on line 3", bad, lines)
		}
	}
}

func TestReadIdleAndRequestBuffering(t *testing.T) {
	c, err := Load([]byte("backends: [{url: 'http://127.0.0.1:1'}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Timeouts.ReadIdle.Std(); got != time.Minute || c.RequestBuffering {
		t.Fatalf("defaults: read_idle %v, request_buffering %v; want 60s, false", got, c.RequestBuffering)
	}
	c, err = Load([]byte("backends: [{url: 'http://127.0.0.1:1'}]\nrequest_buffering: true\ntimeouts:\n  read_idle: 5m\n"))
	if err != nil || c.Timeouts.ReadIdle.Std() != 5*time.Minute || !c.RequestBuffering {
		t.Fatalf("read_idle: 5m, request_buffering: true gave %v %v, %v", c.Timeouts.ReadIdle, c.RequestBuffering, err)
	}
	lines := errorLines(t, "backends: [{url: 'http://127.0.0.1:1'}]\ntimeouts:\n  read_idle: 0s\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "line 3: ") {
		t.Fatalf("read_idle: 0s gave %q, want one error on line 3", lines)
	}
}
