package config

import (
	"strings"
	"testing"
)

// TestPrincipalConfig: session.principal and max_per_principal are read,
// the attribute name lower-cased as the store keeps names, and each bad
// value is an error on its own line (check prints "FILE:LINE: message").
func TestPrincipalConfig(t *testing.T) {
	c, err := Parse([]byte("backends: [{url: 'http://a:1'}]\nsession:\n  principal: User\n  max_per_principal: 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Session.PrincipalAttr() != "user" || c.Session.MaxPerPrincipal != 3 {
		t.Fatalf("principal %q max %d", c.Session.PrincipalAttr(), c.Session.MaxPerPrincipal)
	}
	d, _ := Parse([]byte("backends: [{url: 'http://a:1'}]\n"))
	if d.Session.Principal != "" || d.Session.MaxPerPrincipal != 0 {
		t.Fatalf("defaults: principal %q max %d, want off", d.Session.Principal, d.Session.MaxPerPrincipal)
	}
	for _, tc := range []struct{ text, want string }{
		{"backends: [{url: 'http://a:1'}]\nsession:\n  principal: 'user name'\n", "line 3: session.principal \"user name\" is not an attribute name"},
		{"backends: [{url: 'http://a:1'}]\nsession:\n  principal: user\n  max_per_principal: -1\n", "line 4: session.max_per_principal must be 0"},
		{"backends: [{url: 'http://a:1'}]\nsession:\n  max_per_principal: 2\n", "line 3: session.max_per_principal needs session.principal"},
		{"backends: [{url: 'http://a:1'}]\nsession:\n  principal: user\n  max_per_principal: 5000\n", "line 4: session.max_per_principal must be at most 1000"},
		{"backends: [{url: 'http://a:1'}]\nsession:\n  principal: [a]\n", "line 3:"},
	} {
		got := strings.Join(errorLines(t, tc.text), "\n")
		if !strings.Contains(got, tc.want) {
			t.Errorf("%q: errors:\n%s\nwant one containing %q", tc.text, got, tc.want)
		}
	}
}
