package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"sessionproxy/proxy/logformat"
)

// AccessLog is access_log: a format alone ("combined"), or
// {format, path}.
type AccessLog struct {
	// Format is text | json | combined | off, or a template of nginx
	// log_format variables (proxy/logformat) (default text).
	Format string `yaml:"format"`
	// Path is the file the lines are appended to, reopened on SIGUSR1
	// (default: standard error).
	Path string `yaml:"path"`
}

// UnmarshalYAML reads the plain string form as the format, or the
// mapping form with its keys checked, as the strict decoder checks the
// others'.
func (a *AccessLog) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		a.Format = n.Value
		return nil
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				return typeError(v, fmt.Sprintf("access_log.%s: expected a string", k.Value))
			}
			switch k.Value {
			case "format":
				a.Format = v.Value
			case "path":
				a.Path = v.Value
			default:
				return typeError(k, fmt.Sprintf("unknown key %q", k.Value))
			}
		}
		return nil
	}
	return typeError(n, "access_log: expected text | json | combined | off | a template, or {format, path}")
}

// accessLog checks the format (a template is parsed as the proxy will)
// and that the file can be appended to, as nginx -t opens its logs.
func (v *validator) accessLog() {
	a := v.c.AccessLog
	path := "access_log"
	if _, set := v.c.lines["access_log.format"]; set {
		path = "access_log.format"
	}
	switch {
	case a.Format == "text" || a.Format == "json" || a.Format == "combined" || a.Format == "off":
	case logformat.IsTemplate(a.Format):
		if _, err := logformat.Parse(a.Format); err != nil {
			v.errf(path, "access_log.format: %v", err)
		}
	default:
		v.errf(path, "access_log.format: unknown value %q (want text | json | combined | off | a template of $variables)", a.Format)
	}
	if a.Path != "" && a.Format != "off" {
		if err := appendable(a.Path); err != nil {
			v.errf("access_log.path", "access_log.path: %v", err)
		}
	}
}

// appendable reports why the proxy could not append to the file at
// path: an existing file is opened for appending; for a missing one the
// directory must exist and take a new file (one is made and removed).
func appendable(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	probe, err := os.CreateTemp(filepath.Dir(path), ".sessionproxy-check-*")
	if err != nil {
		return fmt.Errorf("cannot create %s: %w", path, errors.Unwrap(err))
	}
	probe.Close()
	return os.Remove(probe.Name())
}
