package config

import (
	"slices"
	"testing"
)

// TestLimitsDefaultsAndInheritance: max_tunnels and max_conns have their
// defaults; an upstream without max_conns takes the top-level one, as it
// takes health.
func TestLimitsDefaultsAndInheritance(t *testing.T) {
	c, err := Load([]byte(`backends: [{url: 'http://127.0.0.1:1'}]
upstreams:
  ws: {backends: [{url: 'http://127.0.0.1:2'}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxTunnels != 10000 || c.MaxConns != 2048 {
		t.Fatalf("defaults: max_tunnels %d, max_conns %d; want 10000, 2048", c.MaxTunnels, c.MaxConns)
	}
	if got := c.UpstreamConfig("ws").MaxConns; got != 2048 {
		t.Fatalf("upstream ws max_conns %d, want the default 2048", got)
	}

	c, err = Load([]byte(`backends: [{url: 'http://127.0.0.1:1'}]
max_conns: 100
max_tunnels: 7
upstreams:
  ws: {backends: [{url: 'http://127.0.0.1:2'}]}
  own: {max_conns: 3, backends: [{url: 'http://127.0.0.1:3'}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxTunnels != 7 {
		t.Fatalf("max_tunnels %d, want 7", c.MaxTunnels)
	}
	for name, want := range map[string]int{DefaultUpstream: 100, "ws": 100, "own": 3} {
		if got := c.UpstreamConfig(name).MaxConns; got != want {
			t.Fatalf("upstream %s max_conns %d, want %d", name, got, want)
		}
	}
}

// TestLimitsChecked: each limit must be a positive whole number, and
// check names its line; an upstream that inherits a bad top-level value
// is not reported a second time.
func TestLimitsChecked(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"max_tunnels: 0\n", "line 2: max_tunnels must be 1 or more, got 0"},
		{"max_tunnels: -5\n", "line 2: max_tunnels must be 1 or more, got -5"},
		{"max_conns: 0\nupstreams:\n  ws: {backends: [{url: 'http://127.0.0.1:2'}]}\n", "line 2: max_conns must be 1 or more, got 0"},
		{"upstreams:\n  ws:\n    max_conns: -1\n    backends: [{url: 'http://127.0.0.1:2'}]\n", "line 4: upstreams.ws.max_conns must be 1 or more, got -1"},
		{"max_conns: lots\n", "line 2: wrong type: cannot read !!str `lots` into int"},
	} {
		lines := errorLines(t, "backends: [{url: 'http://127.0.0.1:1'}]\n"+tc.text)
		if !slices.Equal(lines, []string{tc.want}) {
			t.Errorf("%q gave %q, want %q", tc.text, lines, tc.want)
		}
	}
}
