// Package docs_test checks the documentation's relative links: a section that
// moves between README.md and docs/ must not leave a link behind that points
// nowhere.
package docs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// linkRE finds inline Markdown links and images: [text](target) and
// ![alt](target). The target ends at the first space (a title follows) or ')'.
var linkRE = regexp.MustCompile(`!?\[[^\]]*\]\(([^)\s]+)[^)]*\)`)

// headingRE finds ATX headings, whose text gives the anchors GitHub makes.
var headingRE = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)

// mdFiles are the files checked: the README a newcomer reads first, every page
// of docs/, and the READMEs it links to beside the code.
func mdFiles(t *testing.T) []string {
	files := []string{"../README.md", "../adapters/README.md", "../bench/README.md"}
	more, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append(files, more...)
}

// TestRelativeLinksResolve reads every relative link and image in the files
// above and fails for a target file that does not exist or an #anchor that
// names no heading of its Markdown file.
func TestRelativeLinksResolve(t *testing.T) {
	anchors := map[string]map[string]bool{} // cleaned path -> anchors of its headings
	anchorsOf := func(path string) map[string]bool {
		if a, ok := anchors[path]; ok {
			return a
		}
		body, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		a := headingAnchors(string(body))
		anchors[path] = a
		return a
	}
	for _, file := range mdFiles(t) {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range outsideCode(string(body)) {
			for _, m := range linkRE.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				where := file + ":" + strconv.Itoa(i+1)
				path, anchor, _ := strings.Cut(target, "#")
				resolved := filepath.Clean(file)
				if path != "" {
					resolved = filepath.Join(filepath.Dir(file), path)
					if _, err := os.Stat(resolved); err != nil {
						t.Errorf("%s: link %q: %v", where, target, err)
						continue
					}
				}
				if anchor == "" {
					continue
				}
				if !strings.HasSuffix(resolved, ".md") {
					t.Errorf("%s: link %q: an anchor into a file that is not Markdown", where, target)
					continue
				}
				if !anchorsOf(resolved)[anchor] {
					t.Errorf("%s: link %q: %s has no heading with anchor #%s", where, target, resolved, anchor)
				}
			}
		}
	}
}

// TestHeadingAnchors pins the slug rule the link check relies on, so that a
// wrong rule cannot pass every link by accident.
func TestHeadingAnchors(t *testing.T) {
	a := headingAnchors("# Title\n\n### tls.acme\n## Unix sockets and FastCGI (PHP-FPM)\n" +
		"## What survives a proxy restart during an outage\n## Title\n```\n# not a heading\n```\n")
	for _, want := range []string{"title", "tlsacme", "unix-sockets-and-fastcgi-php-fpm",
		"what-survives-a-proxy-restart-during-an-outage", "title-1"} {
		if !a[want] {
			t.Errorf("no anchor %q in %v", want, a)
		}
	}
	if a["not-a-heading"] {
		t.Errorf("a comment in a code block made an anchor: %v", a)
	}
}

// headingAnchors returns the anchors GitHub gives the headings of a Markdown
// text: lower case, punctuation other than '-' and '_' dropped, spaces made
// '-', and a repeated anchor suffixed -1, -2, ...
func headingAnchors(md string) map[string]bool {
	seen := map[string]int{}
	out := map[string]bool{}
	for _, line := range outsideCode(md) {
		m := headingRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case r == ' ':
				b.WriteByte('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
				b.WriteRune(r)
			}
		}
		slug := b.String()
		if n := seen[slug]; n > 0 {
			out[slug+"-"+strconv.Itoa(n)] = true
		} else {
			out[slug] = true
		}
		seen[slug]++
	}
	return out
}

// outsideCode returns the lines of md with those inside fenced code blocks
// blanked, keeping line numbers: a '# comment' in a shell block is no heading
// and a '[x](y)' in a code sample is no link.
func outsideCode(md string) []string {
	lines := strings.Split(md, "\n")
	in := false
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			in = !in
			lines[i] = ""
			continue
		}
		if in {
			lines[i] = ""
		}
	}
	return lines
}

// TestReadmeIsShort keeps README.md a page a newcomer can scan (issue 29):
// what it is, set-up, a tour, links. Details belong in docs/.
func TestReadmeIsShort(t *testing.T) {
	body, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(body), "\n"); n >= 200 {
		t.Errorf("README.md has %d lines; keep it under 200 and move details to docs/", n)
	}
}
