package sessionstore

import (
	"testing"
	"unicode/utf8"
)

// FuzzDecodePrincipal: any attribute value decodes to a principal or to
// ErrBadPrincipal, never a panic; a principal is non-empty UTF-8 text within
// MaxPrincipalLen.
func FuzzDecodePrincipal(f *testing.F) {
	for _, s := range []string{`"ann"`, "ann", `%22ann%22`, `"Jos%C3%A9"`, "3", `{"a":1}`, "%", "%zz", "%0a", `""`, "\x00", `"\u0000"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		p, err := DecodePrincipal(v)
		if err != nil {
			return
		}
		if p == "" || len(p) > MaxPrincipalLen || !utf8.ValidString(p) {
			t.Fatalf("DecodePrincipal(%q) = %q", v, p)
		}
	})
}

// FuzzDecodeIndex: any stored value decodes to an index whose entries are
// well-formed session IDs, or fails; what decodes encodes again to a
// value that decodes to the same entries.
func FuzzDecodeIndex(f *testing.F) {
	ix := index{entries: []indexEntry{{id: string(AppendNewID(nil)), created: 1, access: 2}, {id: string(AppendNewID(nil)), created: 3, access: 4}}}
	f.Add(ix.encode(7, 100))
	f.Add([]byte{formatV1, flagDeleted, 1, 0, 0, 0})
	f.Add(encodedSession(AppendNewID(nil), 3))
	f.Fuzz(func(t *testing.T, val []byte) {
		ix, err := decodeIndex(val)
		if err != nil {
			return
		}
		for _, e := range ix.entries {
			if !ValidID([]byte(e.id)) {
				t.Fatalf("entry %q is no session ID", e.id)
			}
		}
		again, err := decodeIndex(ix.encode(ix.version+1, ix.expires))
		if err != nil || len(again.entries) != len(ix.entries) {
			t.Fatalf("re-encoded index: %v, %d entries, want %d", err, len(again.entries), len(ix.entries))
		}
	})
}
