package sessionstore

import (
	"crypto/rand"
	"encoding/base64"
	"hash/maphash"
)

// IDLen is the length of a session ID: 16 bytes (128 bits) from
// crypto/rand in unpadded URL-safe base64.
const IDLen = 22

// AppendNewID appends a fresh random session ID to dst.
func AppendNewID(dst []byte) []byte {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		panic("sessionstore: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.AppendEncode(dst, raw[:])
}

// LogIDLen is how much of a session ID a log line may hold: enough to
// tell sessions apart when reading logs, far too little to use one
// (CONTRACT section 12).
const LogIDLen = 6

// LogID returns what a log line may show of the session ID id: its
// first LogIDLen characters.
func LogID(id []byte) string {
	return string(id[:min(len(id), LogIDLen)])
}

// ValidID reports whether id has the form AppendNewID makes. Anything
// else, in particular anything with spaces or control characters that
// could reach memcached's text protocol, is rejected before any lookup.
func ValidID(id []byte) bool {
	if len(id) != IDLen {
		return false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	// The last character carries 2 bits of the ID and 4 zero bits.
	return base64URLValue(id[IDLen-1])&0x0f == 0
}

func base64URLValue(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c - 'A'
	case 'a' <= c && c <= 'z':
		return c - 'a' + 26
	case '0' <= c && c <= '9':
		return c - '0' + 52
	case c == '-':
		return 62
	}
	return 63
}

// idSeed seeds hashID for the life of the process.
var idSeed = maphash.MakeSeed()

// hashID spreads session IDs over the Store's stripes, flights and
// invalidation counters: within this process only, so any good hash will
// do (the memcached store's placement hash, which every proxy must agree
// on, is its own).
func hashID(id []byte) uint64 { return maphash.Bytes(idSeed, id) }
