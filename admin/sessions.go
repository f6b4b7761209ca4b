package admin

import (
	"errors"
	"net/http"
	"time"

	"sessionproxy/sessionstore"
)

// SessionJSON is the document of GET /sessions/<id>.
type SessionJSON struct {
	ID      string `json:"id"`
	Created int64  `json:"created"` // unix ms
	// LastAccess is the session's last write (unix ms): a request that
	// changes nothing writes it only once its expiry is due a refresh,
	// so it lags the last request by at most a quarter of the ttl (half
	// of a session's own).
	LastAccess int64 `json:"last_access"`
	// TTL is the session's idle lifetime in seconds: its own
	// (X-Session-Max-Age) or the store's.
	TTL int64 `json:"ttl"`
	// Principal is the value of the attribute Target.Principal names
	// ("" when none is configured or the session has none).
	Principal  string            `json:"principal"`
	Version    uint64            `json:"version"`
	Attributes map[string]string `json:"attributes"`
}

// sessionOK answers 404 and returns false unless sessions are on and id
// is well formed: a malformed ID is never looked up.
func sessionOK(w http.ResponseWriter, store *sessionstore.Store, id string) bool {
	switch {
	case store == nil:
		writeText(w, http.StatusNotFound, "sessions are not enabled")
	case !sessionstore.ValidID([]byte(id)):
		writeText(w, http.StatusNotFound, "no such session")
	default:
		return true
	}
	return false
}

func serveSessionGet(w http.ResponseWriter, store *sessionstore.Store, principal, id string) {
	if !sessionOK(w, store, id) {
		return
	}
	var sess sessionstore.Session
	_, err := store.Load([]byte(id), &sess)
	switch {
	case errors.Is(err, sessionstore.ErrNotFound):
		writeText(w, http.StatusNotFound, "no such session")
		return
	case err != nil:
		writeText(w, http.StatusServiceUnavailable, "session store unavailable")
		return
	}
	doc := SessionJSON{ID: id, Created: sess.Created, LastAccess: sess.Touched * 1000,
		TTL: int64(store.TTLOf(&sess) / time.Second), Version: sess.Version, Attributes: map[string]string{}}
	if principal != "" {
		if v, ok := sess.Get(principal); ok {
			// As the index compares it: an adapter's JSON text decoded.
			doc.Principal = string(v)
			if p, err := sessionstore.DecodePrincipal(v); err == nil {
				doc.Principal = p
			}
		}
	}
	for i := 0; i < sess.Len(); i++ {
		n, v := sess.Attr(i)
		doc.Attributes[string(n)] = string(v)
	}
	writeJSON(w, http.StatusOK, doc)
}

func serveSessionDelete(w http.ResponseWriter, store *sessionstore.Store, id string) {
	if !sessionOK(w, store, id) {
		return
	}
	if err := store.DeleteAs([]byte(id), sessionstore.EndAdmin); err != nil {
		writeText(w, http.StatusServiceUnavailable, "session store unavailable")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
