package admin

import (
	"errors"
	"net/http"

	"sessionproxy/sessionstore"
)

// PrincipalSessionJSON is one entry of GET /sessions?principal=<p>: the ID
// cut to what a log may show (CONTRACT section 12), never a usable one.
type PrincipalSessionJSON struct {
	ID         string `json:"id"`
	Created    int64  `json:"created"`     // unix ms
	LastAccess int64  `json:"last_access"` // unix ms of the session's last write
}

// principalOK answers and returns false unless sessions and their
// principal index are on and p names someone.
func principalOK(w http.ResponseWriter, store *sessionstore.Store, p string) bool {
	switch {
	case store == nil:
		writeText(w, http.StatusNotFound, "sessions are not enabled")
	case p == "":
		writeText(w, http.StatusBadRequest, "want /sessions?principal=<principal>")
	default:
		return true
	}
	return false
}

func principalErr(w http.ResponseWriter, err error) {
	if errors.Is(err, sessionstore.ErrNoPrincipals) {
		writeText(w, http.StatusNotFound, "sessions are not indexed by principal (session.principal is not set)")
		return
	}
	writeText(w, http.StatusServiceUnavailable, "session store unavailable")
}

func servePrincipalGet(w http.ResponseWriter, store *sessionstore.Store, p string) {
	if !principalOK(w, store, p) {
		return
	}
	list, err := store.PrincipalSessions(p)
	if err != nil {
		principalErr(w, err)
		return
	}
	doc := make([]PrincipalSessionJSON, 0, len(list))
	for _, s := range list {
		doc = append(doc, PrincipalSessionJSON{ID: sessionstore.LogID([]byte(s.ID)), Created: s.Created, LastAccess: s.LastAccess})
	}
	writeJSON(w, http.StatusOK, doc)
}

func servePrincipalDelete(w http.ResponseWriter, store *sessionstore.Store, p string) {
	if !principalOK(w, store, p) {
		return
	}
	if _, err := store.EndPrincipal(p); err != nil {
		principalErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
