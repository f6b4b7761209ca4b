package sessionstore

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// A session ID comes from a client's cookie and goes into memcached keys
// and the X-Session-Id header: ValidID is the gate in between.

// idAlphabet reports whether c is in unpadded URL-safe base64's alphabet.
func idAlphabet(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// checkAcceptedID fails unless id is what AppendNewID makes: IDLen bytes
// of the URL-safe alphabet that decode (strictly, so with zero padding
// bits) to 128 bits and encode back to themselves.
func checkAcceptedID(t *testing.T, id []byte) {
	t.Helper()
	if len(id) != IDLen {
		t.Fatalf("accepted ID %q has length %d, want %d", id, len(id), IDLen)
	}
	for _, c := range id {
		if !idAlphabet(c) {
			t.Fatalf("accepted ID %q holds %q, outside the URL-safe alphabet", id, c)
		}
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(string(id))
	if err != nil || len(raw) != 16 || base64.RawURLEncoding.EncodeToString(raw) != string(id) {
		t.Fatalf("accepted ID %q is not 128 bits in canonical URL-safe base64 (%d bytes, %v)", id, len(raw), err)
	}
}

func FuzzValidID(f *testing.F) {
	for _, seed := range []string{
		string(AppendNewID(nil)),
		"AAAAAAAAAAAAAAAAAAAAAA",
		"__________________-_-w", // last character with zero padding bits
		"aaaaaaaaaaaaaaaaaaaaab", // non-zero padding bits
		"aaaaaaaaaaaaaaaaaaaaa",
		"aaaaaaaaaaaaaaaaaaaaaaa",
		"aaaaaaaaaaaaaaaaaaaa==", // padded
		"aaaaaaaaaaaaaaaaaaaa+/", // standard alphabet
		"aaaaaaaaaaaaaaaaaaaaa\n",
		"set x 0 0 1\r\nA\r\naaaa", // memcached text protocol injection
		"aaaaaaaaaaaaaaaaaa%41A",
		"aaaaaaaaaaaaaaaaaaaé", // 22 bytes, not 22 characters
		"aaaaaaaaaaaaaaaaaaaaa\x00",
		"",
	} {
		f.Add([]byte(seed), []byte("prefix-"))
	}
	f.Fuzz(func(t *testing.T, id, prefix []byte) {
		ok := ValidID(id)
		if ok {
			checkAcceptedID(t, id)
		}
		// And the converse: every canonical encoding of 128 bits passes.
		if raw, err := base64.RawURLEncoding.Strict().DecodeString(string(id)); err == nil && len(raw) == 16 &&
			base64.RawURLEncoding.EncodeToString(raw) == string(id) && !ok {
			t.Fatalf("ValidID rejects %q, a well-formed ID", id)
		}

		out := AppendNewID(bytes.Clone(prefix))
		if !bytes.Equal(out[:len(prefix)], prefix) || len(out) != len(prefix)+IDLen {
			t.Fatalf("AppendNewID(%q) = %q: the prefix must stay and %d bytes follow", prefix, out, IDLen)
		}
		if !ValidID(out[len(prefix):]) {
			t.Fatalf("AppendNewID made %q, which ValidID rejects", out[len(prefix):])
		}
		checkAcceptedID(t, out[len(prefix):])
	})
}

// FuzzCookieID follows the proxy's path from a client's Cookie header to
// the session lookup: fasthttp parses the request header, Cookie extracts
// the session cookie, and only a ValidID value reaches the store.
func FuzzCookieID(f *testing.F) {
	id := string(AppendNewID(nil))
	for _, seed := range []string{
		"SPSESSIONID=" + id,
		"theme=dark; SPSESSIONID=" + id + "; lang=en",
		"SPSESSIONID=" + id + "; SPSESSIONID=AAAAAAAAAAAAAAAAAAAAAA", // duplicates: the first wins
		`SPSESSIONID="` + id + `"`,                                   // quoted
		"SPSESSIONID = " + id,
		"spsessionid=" + id, // names are case-sensitive
		"SPSESSIONID=" + id[:21] + "%41",
		"SPSESSIONID=" + id + "\x00",
		"SPSESSIONID=" + id + "\r\nX-Session-Attr-Admin: 1",
		"SPSESSIONID=set x 0 0 1\r\nA\r\n",
		"SPSESSIONID=;SPSESSIONID=" + id,
		"=;;;SPSESSIONID",
		"SPSESSIONID=" + strings.Repeat("A", 4096),
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, cookie string) {
		// As the server reads it off the wire; bytes the parser refuses
		// (a bare CR, a line break) never get this far.
		var wire fasthttp.RequestHeader
		raw := "GET / HTTP/1.1\r\nHost: proxy\r\nCookie: " + cookie + "\r\n\r\n"
		if err := wire.Read(bufio.NewReader(strings.NewReader(raw))); err == nil {
			checkCookie(t, wire.Cookie("SPSESSIONID"), cookie)
		}
		// As a header set in code, which the parser never saw.
		var set fasthttp.RequestHeader
		set.Set("Cookie", cookie)
		checkCookie(t, set.Cookie("SPSESSIONID"), cookie)
	})
}

func checkCookie(t *testing.T, value []byte, header string) {
	t.Helper()
	if !ValidID(value) {
		return
	}
	checkAcceptedID(t, value)
	// fasthttp does not unescape cookie values: an accepted ID was sent
	// as it is, never assembled from %xx escapes or quotes.
	if !strings.Contains(header, string(value)) {
		t.Fatalf("accepted ID %q does not appear in the Cookie header %q", value, header)
	}
}
