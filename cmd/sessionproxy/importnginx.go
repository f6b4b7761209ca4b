package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"sessionproxy/config"
	"sessionproxy/nginximport"
)

// cmdImportNginx prints the sessionproxy configuration translated from an
// nginx.conf (and the files it includes), with section 15's exit status:
// 0 when everything was translated or is harmless (docs/migrating.md), 2
// when anything else was left out, with nothing printed on stdout and
// each omission named as FILE:LINE on stderr, 1 for a usage error or a
// file it cannot read. A translation that does not pass `check` on this
// machine (a static root or certificate missing here) is printed for
// editing, with exit status 1.
func cmdImportNginx(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import-nginx", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: sessionproxy import-nginx FILE")
		return 1
	}
	file := fs.Arg(0)
	ds, err := nginximport.ParseFile(file)
	if err != nil {
		fmt.Fprintf(stderr, "sessionproxy import-nginx: %v\n", err)
		return 1
	}
	res, err := nginximport.Translate(file, ds)
	for _, n := range res.Notes {
		fmt.Fprintf(stderr, "%s\n", n)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sessionproxy import-nginx: %s: %v\n", file, err)
		return 2
	}
	if !res.Complete() {
		fmt.Fprintf(stderr, "sessionproxy import-nginx: %s: not translated, since what is named above as \"not translated\" could change who sees what; nothing printed\n", file)
		return 2
	}
	fmt.Fprint(stdout, res.YAML)
	if _, err := config.Load([]byte(res.YAML)); err != nil {
		var es config.Errors
		if errors.As(err, &es) {
			err = errors.New(es.Format("output"))
		}
		fmt.Fprintf(stderr, "sessionproxy import-nginx: the translation does not pass check on this machine:\n%v", err)
		return 1
	}
	return 0
}
