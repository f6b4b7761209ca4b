package main

import (
	"runtime/debug"
	"strings"
)

// version, if set at build time (-ldflags "-X main.version=v1.2.3"), is
// what `sessionproxy version` prints; otherwise the build says it.
var version = ""

// buildVersion is the version of this binary: the one stamped at build
// time, else the module version it was installed as (go install
// sessionproxy/cmd/sessionproxy@v1.2.3), else the VCS revision it was
// built from, with "+dirty" when the tree had uncommitted changes.
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty, when string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		case "vcs.time":
			when = s.Value
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	v := "devel-" + rev + dirty
	if when != "" {
		v += " (" + strings.TrimSuffix(when, "Z") + " UTC)"
	}
	return v
}
