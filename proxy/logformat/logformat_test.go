package logformat

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	got, err := Parse(`$remote_addr - [$time_local] "$request" ${status}x $session`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Part{{Var: RemoteAddr}, {Text: " - ["}, {Var: TimeLocal}, {Text: `] "`}, {Var: Request}, {Text: `" `},
		{Var: Status}, {Text: "x "}, {Var: Session}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	for tmpl, want := range map[string]string{
		"$remote_addr $nope":  "unknown variable $nope",
		"$status $":           `"$" without a variable name`,
		"$status $-":          `"$" without a variable name`,
		"$status ${status":    `unclosed "${"`,
		"no variables at all": "no variable",
		"${}":                 `"$" without a variable name`,
	} {
		if _, err := Parse(tmpl); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", tmpl, err, want)
		}
	}
}

// FuzzParse: no template panics, and a parsed one's parts put back
// together name only known variables and keep every literal byte.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`$remote_addr - [$time_local] "$request" $status`, "${session}x", "$", "${", "$$status", "a$_b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tmpl string) {
		parts, err := Parse(tmpl)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, p := range parts {
			if p.Var == None {
				if strings.Contains(p.Text, "$") {
					t.Fatalf("literal %q holds a $", p.Text)
				}
				b.WriteString(p.Text)
				continue
			}
			if lookup(p.Var.String()[1:]) != p.Var {
				t.Fatalf("part %v is not a known variable", p.Var)
			}
		}
		if len(b.String()) > len(tmpl) {
			t.Fatal("literals longer than the template")
		}
	})
}
