package config

import (
	"strings"

	"sessionproxy/sessionstore"
)

// PrincipalAttr is session.principal as the store takes it: attribute
// names are case-insensitive and stored in lower case.
func (s Session) PrincipalAttr() string { return strings.ToLower(s.Principal) }

// principal checks session.principal and session.max_per_principal
// (CONTRACT section 16).
func (v *validator) principal() {
	s := v.c.Session
	if s.Principal != "" && !sessionstore.ValidName([]byte(s.PrincipalAttr())) {
		v.errf("session.principal", "session.principal %q is not an attribute name (1 to %d of a-z, 0-9, _ and -)", s.Principal, sessionstore.MaxNameLen)
	}
	switch {
	case s.MaxPerPrincipal < 0:
		v.errf("session.max_per_principal", "session.max_per_principal must be 0 (no limit) or above, got %d", s.MaxPerPrincipal)
	case s.MaxPerPrincipal > sessionstore.DefaultIndexBound:
		v.errf("session.max_per_principal", "session.max_per_principal must be at most %d (the principal index's bound), got %d", sessionstore.DefaultIndexBound, s.MaxPerPrincipal)
	case s.MaxPerPrincipal > 0 && s.Principal == "":
		v.errf("session.max_per_principal", "session.max_per_principal needs session.principal: the attribute that names the user")
	}
}
