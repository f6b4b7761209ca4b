package main

import (
	"strings"
	"testing"
)

// TestABConns: -a-conns/-b-conns put max_idle_conns into the memcached
// block of every configuration the A/B starts, and 0 leaves the shipped
// default. withConns finds the block by spConfig's text: a change there
// that it no longer matches would make an A/B of two equal sides.
func TestABConns(t *testing.T) {
	backends, nodes := []string{"b1", "b2"}, []string{"n1", "n2"}
	for _, sc := range abAll {
		plain := abConfig(sc.Config, "127.0.0.1:1", 0, backends, nodes)
		if strings.Contains(plain, "max_idle_conns") {
			t.Errorf("%s: default config sets max_idle_conns:\n%s", sc.Config, plain)
		}
		got := abConfig(sc.Config, "127.0.0.1:1", 256, backends, nodes)
		if n := strings.Count(got, "max_idle_conns"); n != 1 {
			t.Fatalf("%s: max_idle_conns %d times:\n%s", sc.Config, n, got)
		}
		block := got[strings.Index(got, "  memcached:\n"):]
		if !strings.Contains(block, "\n    max_idle_conns: 256\n") {
			t.Errorf("%s: max_idle_conns not in the memcached block:\n%s", sc.Config, got)
		}
		if strings.Replace(got, "    max_idle_conns: 256\n", "", 1) != plain {
			t.Errorf("%s: more changed than max_idle_conns:\n%s", sc.Config, got)
		}
	}
}
