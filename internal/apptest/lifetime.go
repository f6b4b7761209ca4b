package apptest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// StoredTTL returns the idle ttl in seconds that the proxy's store holds
// for session id (GET /sessions/<id>'s ttl: the session's own, set by
// X-Session-Max-Age, or the configured one), or -1 if there is no such
// session.
func StoredTTL(t testing.TB, admin, id string) int64 {
	t.Helper()
	resp, err := http.Get(admin + "/sessions/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return -1
	}
	var doc struct {
		TTL int64 `json:"ttl"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&doc) != nil {
		t.Fatalf("GET /sessions/%s: %d", id, resp.StatusCode)
	}
	return doc.TTL
}

// SessionSetCookie does a GET of url with the session cookie (name=value,
// or "" for none) and returns the answer's status and its Set-Cookie of
// the session cookie name ("" if none), without a cookie jar, so that
// the test reads the attributes the proxy sent.
func SessionSetCookie(t testing.TB, url, cookie, name string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	for _, c := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, name+"=") {
			return resp.StatusCode, c
		}
	}
	return resp.StatusCode, ""
}
