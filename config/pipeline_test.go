package config

import (
	"strings"
	"testing"
)

func TestPipeline(t *testing.T) {
	c, err := Load([]byte("backends: [{url: 'http://127.0.0.1:1'}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Pipeline != 0 || c.UpstreamConfig(DefaultUpstream).Pipeline != 0 {
		t.Fatalf("pipeline default %d, want 0 (off)", c.Pipeline)
	}
	c, err = Load([]byte(`pipeline: 8
backends: [{url: 'http://127.0.0.1:1'}]
upstreams:
  api:
    pipeline: 4
    backends: [{url: 'http://127.0.0.1:2'}]
  other:
    backends: [{url: 'http://127.0.0.1:3'}]
`))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{DefaultUpstream: 8, "api": 4, "other": 0} {
		if got := c.UpstreamConfig(name).Pipeline; got != want {
			t.Errorf("upstream %s: pipeline %d, want %d (a named upstream does not inherit it)", name, got, want)
		}
	}
}

func TestPipelineErrors(t *testing.T) {
	for _, tt := range []struct{ name, text, want string }{
		{"negative", "backends: [{url: 'http://a:1'}]\npipeline: -1\n", "line 2: pipeline must be between 0 (off) and 64, got -1"},
		{"too deep", "backends: [{url: 'http://a:1'}]\npipeline: 65\n", "line 2: pipeline must be between 0 (off) and 64, got 65"},
		{"not a number", "backends: [{url: 'http://a:1'}]\npipeline: eight\n", "line 2"},
		{"https backend", "backends: [{url: 'http://a:1'}, {url: 'https://b:2'}]\npipeline: 8\n",
			`line 2: pipeline: backend "https://b:2" is https`},
		{"named upstream", "backends: [{url: 'http://a:1'}]\nupstreams:\n  api:\n    backends: [{url: 'http://b:1'}]\n    pipeline: 100\n",
			"line 5: upstreams.api.pipeline must be between 0 (off) and 64, got 100"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lines := errorLines(t, tt.text)
			if len(lines) != 1 || !strings.HasPrefix(lines[0], tt.want) {
				t.Fatalf("errors %q, want one starting %q", lines, tt.want)
			}
		})
	}
}
