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
