package proxy

import (
	"log/slog"
	"testing"
	"time"
)

// TestZeroSettingsTakeDefaults: a zero Settings (a Proxy built by hand,
// without a config) runs on the defaults its comments name, and a set
// field wins over them.
func TestZeroSettingsTakeDefaults(t *testing.T) {
	var zero Settings
	set := Settings{ConnectTimeout: time.Millisecond, ResponseTimeout: 2 * time.Millisecond, ReadIdle: 3 * time.Millisecond,
		TunnelIdle: 4 * time.Millisecond, MaxTunnels: 5, MaxResponseHeader: 6, Logger: slog.New(slog.DiscardHandler)}
	for _, tt := range []struct {
		name      string
		zero, set any
		def, want any
	}{
		{"ConnectTimeout", zero.connectTimeout(), set.connectTimeout(), 2 * time.Second, time.Millisecond},
		{"ResponseTimeout", zero.responseTimeout(), set.responseTimeout(), 30 * time.Second, 2 * time.Millisecond},
		{"ReadIdle", zero.readIdle(), set.readIdle(), 60 * time.Second, 3 * time.Millisecond},
		{"TunnelIdle", zero.tunnelIdle(), set.tunnelIdle(), time.Hour, 4 * time.Millisecond},
		{"MaxTunnels", zero.maxTunnels(), set.maxTunnels(), 10000, 5},
		{"MaxResponseHeader", zero.maxResponseHeader(), set.maxResponseHeader(), 80 << 10, 6},
		{"Logger", zero.logger(), set.logger(), slog.Default(), set.Logger},
	} {
		if tt.zero != tt.def || tt.set != tt.want {
			t.Errorf("%s: zero gives %v (want %v), set gives %v (want %v)", tt.name, tt.zero, tt.def, tt.set, tt.want)
		}
	}
	if got := MaxResponseHeaderFor(256 << 10); got != 272<<10 {
		t.Errorf("MaxResponseHeaderFor(256 KiB) = %d, want 272 KiB", got)
	}
}
