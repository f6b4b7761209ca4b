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
// nginx.conf (and the files it includes). Whatever is not translated is
// named on stderr as FILE:LINE: message. The output is checked as
// `sessionproxy check` would: a file it names that is missing on this
// machine (a static root, a certificate) makes the exit status 1, with
// the output still printed for editing.
func cmdImportNginx(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import-nginx", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: sessionproxy import-nginx FILE")
		return 2
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
		return 1
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
