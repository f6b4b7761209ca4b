package config

import (
	"path/filepath"
	"testing"
)

func TestStateDirDefault(t *testing.T) {
	for _, tc := range []struct {
		name, stateDirectory, xdg, home, want string
	}{
		{"systemd", "/var/lib/sessionproxy:/var/lib/other", "/x", "/home/u", "/var/lib/sessionproxy"},
		{"xdg", "", "/x/state", "/home/u", "/x/state/sessionproxy"},
		{"relative xdg ignored", "", "state", "/home/u", "/home/u/.local/state/sessionproxy"},
		{"home", "", "", "/home/u", "/home/u/.local/state/sessionproxy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STATE_DIRECTORY", tc.stateDirectory)
			t.Setenv("XDG_STATE_HOME", tc.xdg)
			t.Setenv("HOME", tc.home)
			got, err := Default().StateDirPath()
			if err != nil || got != filepath.Clean(tc.want) {
				t.Fatalf("state dir %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	c, err := Load([]byte("state_dir: /srv/sp\nbackends: [{url: \"http://127.0.0.1:9\"}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := c.StateDirPath(); got != "/srv/sp" {
		t.Fatalf("state_dir set: %q", got)
	}
	if _, err := Load([]byte("state_dir: [1]\n")); err == nil {
		t.Fatal("a list for state_dir was accepted")
	}
}
