package proxy

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"sessionproxy/sessionstore"
)

// FuzzSessionInstruction gives parseInstruction any X-Session-<rest>
// response header. Rotate takes a flag or an ID in the section 4 shape,
// nothing else. (A refused instruction refuses the whole update, so
// what it recorded before it failed does not matter.)
func FuzzSessionInstruction(f *testing.F) {
	for _, seed := range [][2]string{
		{"Rotate", "1"}, {"rotate", " true "}, {"ROTATE", "0"}, {"Rotate", ""},
		{"Rotate", string(sessionstore.AppendNewID(nil))},
		{"Rotate", " " + string(sessionstore.AppendNewID(nil)) + "\t"},
		{"Rotate", "AAAAAAAAAAAAAAAAAAAAAB"}, // the last character's low bits set
		{"Rotate", "AAAAAAAAAAAAAAAAAAAA A"},
		{"Rotate", "2"}, {"Rotate", "yes"},
		{"Invalidate", "1"}, {"Invalidate", "maybe"},
		{"Set-pojun-2etech", `"x"`},
		{"Set-" + strings.Repeat("n", 200), "max"}, {"Set-" + strings.Repeat("n", 201), "over"},
		{"Set-user_49D", "%22Jos%C3%A9%20%F0%9F%99%82%22"},
		{"Unset", "a, b-2e, " + strings.Repeat("c", 201)},
		{"Id", "echoed"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, rest, v string) {
		var u sessionstore.Update
		err := parseInstruction(&u, []byte(rest), []byte(v))
		isRotate := strings.EqualFold(rest, "rotate")
		trimmed := bytes.Trim([]byte(v), " \t") // header whitespace, as the proxy trims it
		if isRotate {
			flag := map[string]bool{"": true, "0": true, "1": true, "true": true, "false": true}[strings.ToLower(string(trimmed))]
			id := sessionstore.ValidID(trimmed)
			if (err == nil) != (flag || id) {
				t.Fatalf("X-Session-Rotate: %q: error %v, flag %v, well-formed ID %v", v, err, flag, id)
			}
			if err != nil && !errors.Is(err, sessionstore.ErrBadID) {
				t.Fatalf("X-Session-Rotate: %q: error %v is not ErrBadID", v, err)
			}
			on := id || strings.EqualFold(string(trimmed), "1") || strings.EqualFold(string(trimmed), "true")
			if err == nil && u.Rotate != on {
				t.Fatalf("X-Session-Rotate: %q: Rotate = %v", v, u.Rotate)
			}
		}
	})
}
