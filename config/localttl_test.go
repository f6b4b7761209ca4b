package config

import (
	"strings"
	"testing"
	"time"

	"sessionproxy/sessionstore"
)

// TestLocalCacheTTL: local_cache.ttl is auto by default, "auto" parses to
// it, and a value that is set (0 or a duration) is kept as given.
func TestLocalCacheTTL(t *testing.T) {
	if Auto.Std() != sessionstore.AutoTTL {
		t.Fatalf("Auto.Std() = %v, want sessionstore.AutoTTL", Auto.Std())
	}
	tests := []struct {
		yaml string // the local_cache.ttl line; empty leaves it out
		want AutoDuration
	}{
		{"", Auto},
		{"ttl: auto", Auto},
		{"ttl: 'auto'", Auto},
		{"ttl: 0", 0},
		{"ttl: 0s", 0},
		{"ttl: 5s", AutoDuration(5 * time.Second)},
		{"ttl: 1500ms", AutoDuration(1500 * time.Millisecond)},
	}
	for _, tc := range tests {
		text := "backends: [{url: 'http://a:1'}]\nsession:\n  local_cache:\n    size: 1MiB\n"
		if tc.yaml != "" {
			text += "    " + tc.yaml + "\n"
		}
		c, err := Load([]byte(text))
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if got := c.Session.LocalCache.TTL; got != tc.want {
			t.Errorf("%q: ttl = %v, want %v", tc.yaml, got, tc.want)
		}
	}
}

var localTTLErrors = []struct {
	name, text string
	want       string
}{
	{"not a duration", "backends: [{url: 'http://a:1'}]\nsession:\n  local_cache:\n    ttl: soon\n",
		`line 4: invalid duration "soon" (use auto`},
	{"negative", "backends: [{url: 'http://a:1'}]\nsession:\n  local_cache:\n    ttl: -1s\n",
		`line 4: negative duration "-1s"`},
	{"Auto is not auto", "backends: [{url: 'http://a:1'}]\nsession:\n  local_cache:\n    ttl: Auto\n",
		`line 4: invalid duration "Auto"`},
	{"a list", "backends: [{url: 'http://a:1'}]\nsession:\n  local_cache:\n    ttl: [auto]\n",
		`line 4: expected auto or a duration`},
	{"async with a ttl", "backends: [{url: 'http://a:1'}]\nsession:\n  write: async\n  local_cache:\n    ttl: 5s\n",
		`line 3: session.write: async writes need the hot tier`},
	{"async with wait_replicas", "backends: [{url: 'http://a:1'}]\nsession:\n  write: async\n  redis:\n    addrs: ['127.0.0.1:6379']\n    client_cache: false\n    wait_replicas: 1\n",
		`line 3: session.write: async answers a write before it reaches redis, which session.redis.wait_replicas rules out`},
	{"async with client_cache", "backends: [{url: 'http://a:1'}]\nsession:\n  write: async\n  redis:\n    addrs: ['127.0.0.1:6379']\n",
		`line 3: session.write: async needs the hot tier as the one authoritative copy, which session.redis.client_cache`},
}

func TestLocalTTLErrors(t *testing.T) {
	for _, tc := range localTTLErrors {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(errorLines(t, tc.text), "\n")
			if !strings.Contains(got, tc.want) {
				t.Fatalf("errors:\n%s\nwant one containing %q", got, tc.want)
			}
		})
	}
}

// TestAsyncAuto: with write: async, the default ttl (auto) is accepted:
// it means 0 there.
func TestAsyncAuto(t *testing.T) {
	for _, text := range []string{
		"backends: [{url: 'http://a:1'}]\nsession:\n  write: async\n",
		"backends: [{url: 'http://a:1'}]\nsession:\n  write: async\n  local_cache: {ttl: 0}\n",
		"backends: [{url: 'http://a:1'}]\nsession:\n  write: async\n  redis:\n    addrs: ['127.0.0.1:6379']\n    client_cache: false\n",
	} {
		if _, err := Load([]byte(text)); err != nil {
			t.Errorf("%q: %v", text, err)
		}
	}
}

// FuzzParseAutoDuration: any input parses to auto, a duration of 0 or
// more, or an error; what parses writes back to text that parses to the
// same value.
func FuzzParseAutoDuration(f *testing.F) {
	for _, s := range []string{"auto", "0", "0s", "5s", "1500ms", "1h2m3s", "-1s", "Auto", "", " auto", "1e3s", "9999999999h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseAutoDuration(s)
		if err != nil {
			return
		}
		if d < 0 && d != Auto {
			t.Fatalf("%q parsed to %v", s, time.Duration(d))
		}
		back, err := ParseAutoDuration(d.String())
		if err != nil || back != d {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, time.Duration(d), d.String(), time.Duration(back), err)
		}
	})
}
