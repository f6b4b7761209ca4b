package sessionstore

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// A Kind is one kind of shared store as the configuration file has it: a
// section under session: named after the kind, whose settings the kind's
// package declares, checks and turns into Options. config asks the kinds
// registered here (RegisterKind) what a session: section may hold, so it
// names none of them; a program knows the kinds whose packages it imports.
type Kind struct {
	// Name is the section's key under session: ("memcached"), and what
	// the store's Kind() says.
	Name string
	// Key is the setting that puts the store in use ("nodes"): without
	// it the section holds only defaults. Messages name it: "session.
	// redis.addrs and session.memcached.nodes exclude each other".
	Key string
	// Default marks the kind a configuration that uses no shared store is
	// said to lack: "there are no memcached nodes".
	Default bool
	// Settings returns new settings that hold the kind's defaults.
	Settings func() Settings
	// Open, if not nil, builds the store when Options name it: RegisterKind
	// registers it as Register does, so that a store's package registers
	// once.
	Open Opener
}

// Settings are one kind's section of the configuration file. They are a
// pointer to a struct whose exported fields carry yaml tags: config decodes
// the section into it, strictly (an unknown key is an error at its line),
// over the defaults it holds. A field may be a bool, an integer, a string,
// a slice of those or a time.Duration, which is written as config's
// durations are (Go syntax, a bare 0 allowed, never negative); the package
// that declares it needs no YAML of its own.
type Settings interface {
	// InUse reports whether the settings put the store in use: whether
	// the Kind's Key is set.
	InUse() bool
	// Check reports what is wrong with the settings, in the order a
	// reader meets it. o holds the whole store's options, every kind's
	// part set by Apply, so that a rule of o.Check that involves these
	// settings (write: async with Redis's client_cache) is worded here,
	// by the kind whose keys it names.
	Check(o *Options) []Problem
	// Apply sets the kind's part of o (o.Memcached, o.Redis) from the
	// settings. It fails where the settings cannot be options (a node
	// that does not parse, which Check reports too); o must then not
	// build a store, though it still tells Options.Check whether the
	// store is in use.
	Apply(o *Options) error
}

// A Problem is one thing wrong with a kind's settings, as config reports
// it: Msg at the line of Path, a field path of the configuration file such
// as "session.redis.addrs[1]", or "session.write" for a setting outside
// the section that does not go with the kind's.
type Problem struct {
	Path string
	Msg  string
}

// Problemf returns the Problem at path whose message is format's.
func Problemf(path, format string, args ...any) Problem {
	return Problem{Path: path, Msg: fmt.Sprintf(format, args...)}
}

var (
	kindsMu sync.Mutex // protects kinds
	kinds   = map[string]Kind{}
)

// RegisterKind makes a kind of shared store known to the configuration
// and, with Open, to New. A store's package registers its kind when
// imported. It panics on a kind without a name, key or settings, or
// registered twice: a program that links two is built wrong.
func RegisterKind(k Kind) {
	if k.Name == "" || k.Key == "" || k.Settings == nil {
		panic("sessionstore: RegisterKind needs a name, a key and settings")
	}
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if _, dup := kinds[k.Name]; dup {
		panic("sessionstore: kind " + k.Name + " registered twice")
	}
	kinds[k.Name] = k
	if k.Open != nil {
		Register(k.Name, k.Open)
	}
}

// Kinds returns the registered kinds, by name.
func Kinds() []Kind {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	ks := make([]Kind, 0, len(kinds))
	for _, k := range kinds {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b Kind) int { return strings.Compare(a.Name, b.Name) })
	return ks
}

// DefaultKind returns the kind registered as Default, if any.
func DefaultKind() (Kind, bool) {
	for _, k := range Kinds() {
		if k.Default {
			return k, true
		}
	}
	return Kind{}, false
}

// SizeLimit is the largest encoded session the configuration accepts
// (session.max_size), whichever store keeps it: under memcached's default
// 1 MiB item limit, with room for the key and the item header, so that a
// configuration does not depend on its store. SizeLimitReason says so in
// messages.
const (
	SizeLimit       = 1<<20 - 4<<10
	SizeLimitReason = "memcached's item limit"
)

// ValidKeyPrefix reports whether p can start the keys a store writes: at
// most 64 printable characters without spaces (memcached's keys take no
// more, and Redis's are kept the same).
func ValidKeyPrefix(p string) bool {
	return len(p) <= 64 && strings.IndexFunc(p, func(r rune) bool { return r <= ' ' || r >= 0x7f }) < 0
}
