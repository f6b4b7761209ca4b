package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// StateDirPath returns the state directory: state_dir when set, else
// StateDirDefault.
func (c *Config) StateDirPath() (string, error) {
	if c.StateDir != "" {
		return c.StateDir, nil
	}
	return StateDirDefault()
}

// StateDirDefault is where state_dir points when it is not set: the first
// path of $STATE_DIRECTORY (colon-separated, as systemd's StateDirectory=
// sets it), else $XDG_STATE_HOME/sessionproxy, else
// $HOME/.local/state/sessionproxy (the XDG base directory default).
func StateDirDefault() (string, error) {
	if v := os.Getenv("STATE_DIRECTORY"); v != "" {
		first, _, _ := strings.Cut(v, ":")
		if first != "" {
			return first, nil
		}
	}
	if v := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(v) {
		// The XDG spec ignores a relative path.
		return filepath.Join(v, "sessionproxy"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", errors.New("state_dir is not set and there is no default for it ($STATE_DIRECTORY, $XDG_STATE_HOME and $HOME are unset): set state_dir")
	}
	return filepath.Join(home, ".local", "state", "sessionproxy"), nil
}
