package main

import (
	"strings"
	"testing"
)

func TestNginxBacklog(t *testing.T) {
	conf := nginxBacklog(nginxConfig("/tmp/x", "127.0.0.1:8080", []string{"127.0.0.1:1", "127.0.0.1:2"}), "127.0.0.1:8080")
	if !strings.Contains(conf, "listen 127.0.0.1:8080 backlog=65535;") {
		t.Fatalf("no backlog on the listen line:\n%s", conf)
	}
	if strings.Contains(conf, "server 127.0.0.1:1 backlog") {
		t.Fatal("backlog added to an upstream server line")
	}
}

// TestScalePoints checks that each point changes one factor of the base
// point (64 connections, 4 KiB, 1,000 sessions) and nothing else.
func TestScalePoints(t *testing.T) {
	seen := map[string]int{}
	for _, p := range scalePoints() {
		seen[p.Factor]++
		changed := 0
		if p.Conns != 64 {
			changed++
		}
		if p.Size != 4096 {
			changed++
		}
		if p.Sessions != 1000 {
			changed++
		}
		switch {
		case p.Factor == "live sessions" && p.Size != 100:
			t.Errorf("%s %s: live sessions are measured at 100 B, not %d", p.Factor, p.Value, p.Size)
		case p.Factor == "live sessions" && changed > 2, p.Factor != "live sessions" && changed > 1:
			t.Errorf("%s %s changes more than one factor: %+v", p.Factor, p.Value, p)
		}
		if p.Many != (p.Sessions > 1000) {
			t.Errorf("%s %s: Many = %v with %d sessions", p.Factor, p.Value, p.Many, p.Sessions)
		}
	}
	if seen["connections"] != 3 || seen["session size"] != 4 || seen["live sessions"] != 2 {
		t.Errorf("points per factor: %v", seen)
	}
}
