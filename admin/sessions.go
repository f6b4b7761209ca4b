package admin

import (
	"errors"
	"net/http"

	"sessionproxy/sessionstore"
)

// SessionJSON is the document of GET /sessions/<id>.
type SessionJSON struct {
	ID         string            `json:"id"`
	Created    int64             `json:"created"`
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

func serveSessionGet(w http.ResponseWriter, store *sessionstore.Store, id string) {
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
	doc := SessionJSON{ID: id, Created: sess.Created, Version: sess.Version, Attributes: map[string]string{}}
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
