package rules

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"

	"golang.org/x/crypto/bcrypt"
)

// Htpasswd is the content of an htpasswd file of bcrypt entries
// (htpasswd -B), as nginx's auth_basic_user_file reads it. Safe for
// concurrent use by multiple goroutines.
type Htpasswd struct {
	entries []entry
	// dummy is compared against when no user matches, so that a wrong
	// user costs what a wrong password does.
	dummy []byte
}

type entry struct {
	user [sha256.Size]byte // compared as a digest: equal time for every length
	hash []byte
}

// maxCost bounds the bcrypt cost of an entry: every request to the route
// pays it (nginx's auth_basic does too), about 1s at 14.
const maxCost = 14

// LoadHtpasswd reads the file name. Errors name the line.
func LoadHtpasswd(name string) (*Htpasswd, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	h, err := ParseHtpasswd(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return h, nil
}

// ParseHtpasswd reads lines of "user:hash", the hash bcrypt's ($2y$,
// $2b$ or $2a$). Empty lines and lines starting with "#" are skipped. A
// file without entries lets no one in, and is an error for that reason.
func ParseHtpasswd(data []byte) (*Htpasswd, error) {
	h := &Htpasswd{}
	cost := bcrypt.MinCost
	for n, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 || line[0] == '#' {
			continue
		}
		user, hash, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(user) == 0 {
			return nil, fmt.Errorf("line %d: not user:hash", n+1)
		}
		// htpasswd may add ":comment" fields after the hash.
		hash, _, _ = bytes.Cut(hash, []byte(":"))
		c, err := bcrypt.Cost(hash)
		if err != nil {
			return nil, fmt.Errorf("line %d: user %q: not a bcrypt hash (make entries with htpasswd -B)", n+1, user)
		}
		if c > maxCost {
			return nil, fmt.Errorf("line %d: user %q: bcrypt cost %d is above %d: each request would take seconds", n+1, user, c, maxCost)
		}
		cost = max(cost, c)
		h.entries = append(h.entries, entry{user: sha256.Sum256(user), hash: bytes.Clone(hash)})
	}
	if len(h.entries) == 0 {
		return nil, fmt.Errorf("no user:hash entries")
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("sessionproxy-no-such-user"), cost)
	if err != nil {
		return nil, err
	}
	h.dummy = dummy
	return h, nil
}

// Verify reports whether user and password match an entry. It looks at
// every entry, comparing users as SHA-256 digests in constant time, and
// runs bcrypt once whether or not the user exists.
func (h *Htpasswd) Verify(user, password []byte) bool {
	digest := sha256.Sum256(user)
	hash, found := h.dummy, 0
	for i := range h.entries {
		e := &h.entries[i]
		eq := subtle.ConstantTimeCompare(digest[:], e.user[:])
		if eq == 1 && found == 0 {
			hash = e.hash
		}
		found |= eq
	}
	ok := compareHash(hash, password) == nil
	return ok && found == 1
}

// compareHash is bcrypt's comparison; a test counts its calls.
var compareHash = bcrypt.CompareHashAndPassword
