package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written in Go syntax ("100ms", "30m") in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string. A bare 0 is accepted as zero.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "expected a duration such as 100ms or 30s")
	}
	if n.Value == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return typeError(n, fmt.Sprintf("invalid duration %q (use Go syntax such as 100ms, 2s, 30m)", n.Value))
	}
	if v < 0 {
		return typeError(n, fmt.Sprintf("negative duration %q", n.Value))
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration in Go syntax.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// AutoDuration is a Duration that may also be "auto": the program picks
// the value itself (local_cache.ttl).
type AutoDuration Duration

// Auto is the AutoDuration written "auto". Std gives it as -1, which is
// sessionstore.AutoTTL.
const Auto AutoDuration = -1

// ParseAutoDuration parses "auto" or a duration such as 5s ("0" alone is
// accepted as zero).
func ParseAutoDuration(s string) (AutoDuration, error) {
	if s == "auto" {
		return Auto, nil
	}
	if s == "0" {
		return 0, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use auto, or Go syntax such as 0, 1s, 30s)", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return AutoDuration(v), nil
}

// UnmarshalYAML parses "auto" or a Go duration string.
func (d *AutoDuration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "expected auto or a duration such as 0, 1s or 30s")
	}
	v, err := ParseAutoDuration(n.Value)
	if err != nil {
		return typeError(n, err.Error())
	}
	*d = v
	return nil
}

// MarshalYAML writes "auto" or the duration in Go syntax.
func (d AutoDuration) MarshalYAML() (any, error) { return d.String(), nil }

// String returns "auto" or the duration in Go syntax.
func (d AutoDuration) String() string {
	if d == Auto {
		return "auto"
	}
	return time.Duration(d).String()
}

// Std returns d as a time.Duration: -1 (sessionstore.AutoTTL) for auto.
func (d AutoDuration) Std() time.Duration { return time.Duration(d) }

// Size is a byte count written as a plain number or with a KiB, MiB or GiB
// suffix (also KB/MB/GB, read as the binary units, as nginx does).
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30},
	{"B", 1},
}

// ParseSize parses "65536", "64KiB", "10MiB" or "1GiB".
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q (use bytes or KiB, MiB, GiB)", s)
	}
	return Size(n * mult), nil
}

// UnmarshalYAML parses a size such as 64KiB.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "expected a size such as 65536 or 64KiB")
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return typeError(n, err.Error())
	}
	*s = v
	return nil
}

// MarshalYAML writes the size in bytes.
func (s Size) MarshalYAML() (any, error) { return int64(s), nil }

func typeError(n *yaml.Node, msg string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, msg)}}
}
