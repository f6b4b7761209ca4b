package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// RequireToken wraps an admin handler so that every path but /healthz
// answers 401 unless the request carries "Authorization: Bearer <token>"
// or HTTP Basic credentials with the token as password (any user);
// /healthz stays open for load balancers and service managers. token is
// called per request, so that a config reload can change it; while it
// returns "" every request passes, as on an admin listener on loopback,
// the one place the config allows no token.
func RequireToken(token func() string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := token()
		if want == "" || r.URL.Path == "/healthz" {
			h.ServeHTTP(w, r)
			return
		}
		auth := r.Header.Get("Authorization")
		if bearerMatches(auth, want) || basicMatches(r, want) {
			h.ServeHTTP(w, r)
			return
		}
		challenge := `Bearer realm="sessionproxy admin"`
		if auth != "" {
			challenge += `, error="invalid_token"` // RFC 6750 section 3.1
		}
		w.Header().Set("WWW-Authenticate", challenge)
		// A browser asks for Basic credentials only when challenged so;
		// the token is the password, any user name.
		w.Header().Add("WWW-Authenticate", `Basic realm="sessionproxy admin", charset="UTF-8"`)
		writeText(w, http.StatusUnauthorized, "unauthorized")
	})
}

// basicMatches reports whether r carries HTTP Basic credentials whose
// password is the token want, whatever the user name: so that a browser
// can open the admin pages (CONTRACT.md section 16).
func basicMatches(r *http.Request, want string) bool {
	_, password, ok := r.BasicAuth()
	if !ok {
		return false
	}
	got, exp := sha256.Sum256([]byte(password)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(got[:], exp[:]) == 1
}

// bearerMatches reports whether an Authorization value is the Bearer
// scheme (any case, RFC 9110 section 11.1) with the token want.
func bearerMatches(auth, want string) bool {
	scheme, cred, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	// ConstantTimeCompare returns at once when the lengths differ, which
	// would tell the token's length: compare digests of equal length.
	got, exp := sha256.Sum256([]byte(strings.TrimSpace(cred))), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(got[:], exp[:]) == 1
}
