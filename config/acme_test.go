package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestACMECheck: check validates tls.acme and names each bad key's line;
// a valid block needs no tls.certificates for listen_tls.
func TestACMECheck(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "root.txt")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	head := "state_dir: '" + dir + "'\nbackends: [{url: 'http://127.0.0.1:1'}]\nlisten_tls: '127.0.0.1:8443'\n"
	tests := []struct{ text, want string }{
		{"tls:\n  acme:\n    domains: [a.example]\n", "line 5: tls.acme.email is required"},
		{"tls:\n  acme:\n    email: ops@example.com\n", "line 5: tls.acme.domains is required"},
		{"tls:\n  acme:\n    email: 'ops'\n    domains: [a.example]\n", `line 6: tls.acme.email: "ops" is not an e-mail address`},
		{"tls:\n  acme:\n    email: ops@example.com\n    domains:\n      - a.example\n      - '*.example.com'\n", `line 9: tls.acme.domains[1]: "*.example.com" is a wildcard`},
		{"tls:\n  acme:\n    email: ops@example.com\n    domains: [127.0.0.1]\n", `line 7: tls.acme.domains[0]: "127.0.0.1" is an IP address`},
		{"tls:\n  acme:\n    email: ops@example.com\n    domains: [a.example]\n    directory: 'ftp://ca.example/dir'\n", `line 8: tls.acme.directory: "ftp://ca.example/dir" is not an http(s) URL`},
		{"tls:\n  acme:\n    email: ops@example.com\n    domains: [a.example]\n    ca_root: '" + filepath.Join(dir, "missing.pem") + "'\n", "line 8: tls.acme.ca_root: open "},
		{"tls:\n  acme:\n    email: ops@example.com\n    domains: [a.example]\n    ca_root: '" + notPEM + "'\n", "line 8: tls.acme.ca_root: " + notPEM + " holds no PEM certificate"},
		{"tls:\n  acme:\n    email: ops@example.com\n    domains: [a.example]\n    ca_url: x\n", "line 8: "},
	}
	for _, tc := range tests {
		lines := errorLines(t, head+tc.text)
		if len(lines) != 1 || !strings.HasPrefix(lines[0], tc.want) {
			t.Errorf("%q gave %q, want one error starting %q", tc.text, lines, tc.want)
		}
	}

	lines := errorLines(t, "state_dir: '"+dir+"'\nbackends: [{url: 'http://127.0.0.1:1'}]\ntls:\n  acme: {email: ops@example.com, domains: [a.example]}\n")
	if !slices.Equal(lines, []string{"line 4: tls.acme needs listen_tls: the certificates are served there"}) {
		t.Errorf("without listen_tls: %q", lines)
	}

	c, err := Load([]byte(head + "tls:\n  acme:\n    email: ops@example.com\n    domains: [a.example, www.a.example]\n"))
	if err != nil {
		t.Fatalf("a valid block: %v", err)
	}
	if got := c.TLS.ACME.DirectoryURL(); got != ACMEDirectoryDefault {
		t.Fatalf("default directory %q", got)
	}
}
