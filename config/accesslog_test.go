package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestAccessLogForms(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		yaml string
		want AccessLog
	}{
		{"access_log: json\n", AccessLog{Format: "json"}},
		{"access_log: off\n", AccessLog{Format: "off"}},
		{"access_log: {path: " + filepath.Join(dir, "a.log") + "}\n", AccessLog{Format: "text", Path: filepath.Join(dir, "a.log")}},
		{"access_log:\n  format: '$status $session'\n", AccessLog{Format: "$status $session"}},
	} {
		c, err := Load([]byte(tc.yaml + "backends: [{url: 'http://127.0.0.1:9001'}]\n"))
		if err != nil {
			t.Errorf("%q: %v", tc.yaml, err)
			continue
		}
		if c.AccessLog != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.yaml, c.AccessLog, tc.want)
		}
	}
	for yaml, want := range map[string]string{
		"access_log:\n  format: json\n  paht: /x\n": "line 3: unknown key \"paht\"",
		"access_log: [json]\n":                      "line 1: access_log: expected",
		"access_log: {format: [json]}\n":            "line 1: access_log.format: expected a string",
		"access_log: jsno\n":                        "line 1: access_log.format: unknown value \"jsno\"",
		"\n\naccess_log:\n  format: '$nope'\n":      "line 4: access_log.format: unknown variable $nope",
	} {
		_, err := Load([]byte(yaml + "backends: [{url: 'http://127.0.0.1:9001'}]\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", yaml, err, want)
		}
	}
}

// FuzzAccessLogYAML: no access_log value panics the parser, and one
// that loads has a format the proxy accepts.
func FuzzAccessLogYAML(f *testing.F) {
	for _, s := range []string{"json", "{format: combined}", "{format: '$status', path: ''}", "'$'", "{a: b}", "[1]", "{format: {x: 1}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if strings.Contains(v, "path") || strings.Contains(v, "\\") {
			return // a fuzzed path would create files
		}
		c, err := Load([]byte("access_log: " + v + "\nbackends: [{url: 'http://127.0.0.1:9001'}]\n"))
		if err != nil {
			return
		}
		if c.AccessLog.Path != "" {
			t.Fatalf("a path from %q", v)
		}
	})
}
