package config

import "sessionproxy/compress/policy"

// Compression is the compression block (CONTRACT.md section 14): on for
// static files by default, for backends' responses with proxied: true.
// Package compress/policy owns the encodings known and the checks.
type Compression struct {
	// Encodings are offered in this order of preference, which breaks
	// ties between the client's q-values; [] turns compression off
	// (default [zstd, br, gzip]).
	Encodings []string `yaml:"encodings"`
	MinLength Size     `yaml:"min_length"` // shortest body of known length compressed (default 1KiB)
	// Types are the media types compressed, "type/subtype" or "type/*"
	// (default text/*, application/json, application/javascript,
	// application/xml, image/svg+xml).
	Types []string `yaml:"types"`
	// Proxied compresses backends' responses too (default false). Mind
	// BREACH: a page that reflects request input beside a secret (a CSRF
	// token) leaks the secret through its compressed length.
	Proxied bool `yaml:"proxied"`
}

// defaultCompression is the compression block's defaults, the policy's own.
func defaultCompression() Compression {
	d := policy.Defaults()
	return Compression{Encodings: d.Encodings, MinLength: Size(d.MinLength), Types: d.Types, Proxied: d.Proxied}
}

// Options returns the block as compress/policy takes it.
func (c Compression) Options() policy.Options {
	return policy.Options{Encodings: c.Encodings, MinLength: int64(c.MinLength), Types: c.Types, Proxied: c.Proxied}
}

// compression reports the policy's problems at their lines.
func (v *validator) compression() {
	for _, p := range v.c.Compression.Options().Check() {
		path := "compression." + p.Field
		v.errf(path, "%s: %s", path, p.Msg)
	}
}
