// Command sessionproxy is a load-balancing reverse proxy with a built-in
// session store. See README.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"sessionproxy/config"
)

const usage = `usage:
  sessionproxy run   [-config FILE] [-listen ADDR] [-backend URL]... [-memcached ADDR[,ADDR...] | -redis ADDR[,ADDR...]] [-admin ADDR]
  sessionproxy check -config FILE
  sessionproxy demo  [-listen ADDR] [-memcached ADDR[,ADDR...]] [-admin ADDR]
  sessionproxy import-nginx FILE    # print a config translated from an nginx.conf
  sessionproxy version
`

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(args[1:], stdout, stderr)
	case "import-nginx":
		return cmdImportNginx(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "sessionproxy %s\n", buildVersion())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "sessionproxy: unknown command %q\n%s", args[0], usage)
	return 2
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// runFlags are the flags of run; each one given overrides the file.
type runFlags struct {
	config    string
	listen    string
	admin     string
	backends  listFlag
	memcached string
	redis     string
}

func (f *runFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "YAML config `file`")
	fs.StringVar(&f.listen, "listen", "", "listen `address` (overrides listen:)")
	fs.StringVar(&f.admin, "admin", "", "admin listener `address` (overrides admin:)")
	fs.Var(&f.backends, "backend", "backend `URL`; repeat for more (replaces backends:)")
	fs.StringVar(&f.memcached, "memcached", "", "memcached `nodes`, comma separated host:port or id:host:port (replaces session.memcached.nodes)")
	fs.StringVar(&f.redis, "redis", "", "Redis `addresses`, comma separated host:port: one server, or several Cluster seed nodes (replaces session.redis.addrs)")
}

// load reads the config file, if any, and applies the flags over it.
func (f *runFlags) load() (*config.Config, error) {
	c := config.Default()
	if f.config != "" {
		var err error
		if c, err = config.ParseFile(f.config); err != nil {
			return nil, err
		}
	}
	if f.listen != "" {
		c.Listen = f.listen
		c.Forget("listen")
	}
	if f.admin != "" {
		c.Admin = f.admin
		c.Forget("admin")
	}
	if len(f.backends) > 0 {
		c.Backends = c.Backends[:0]
		for _, u := range f.backends {
			c.Backends = append(c.Backends, config.Backend{URL: u, Weight: 1})
		}
		c.Forget("backends")
	}
	if f.memcached != "" {
		memcachedSettings(c).Nodes = strings.Split(f.memcached, ",")
		c.Forget("session.memcached.nodes")
	}
	if f.redis != "" {
		redisSettings(c).Addrs = strings.Split(f.redis, ",")
		c.Forget("session.redis.addrs")
	}
	return c, c.Validate()
}

// reportConfigError prints config errors as FILE:LINE: message. Under run,
// errors in values that came from flags (or from no file at all) name no
// file line.
func reportConfigError(stderr io.Writer, filename string, err error, fromFlags bool) {
	var es config.Errors
	if !errors.As(err, &es) {
		fmt.Fprintf(stderr, "sessionproxy: %v\n", err)
		return
	}
	for _, e := range es {
		if filename == "" || (fromFlags && e.Line == 0) {
			fmt.Fprintf(stderr, "sessionproxy: %s\n", e.Msg)
			continue
		}
		fmt.Fprint(stderr, config.Errors{e}.Format(filename))
	}
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "YAML config `file` to check")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *file == "" {
		fmt.Fprintln(stderr, "sessionproxy check: -config FILE is required")
		return 2
	}
	if _, err := config.LoadFile(*file); err != nil {
		reportConfigError(stderr, *file, err, false)
		return 1
	}
	fmt.Fprintf(stdout, "%s: configuration is valid\n", *file)
	return 0
}

func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f runFlags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sessionproxy run: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	c, err := f.load()
	if err != nil {
		reportConfigError(stderr, f.config, err, true)
		return 1
	}
	logger := newLogger(stderr)
	a, err := newApp(c, f, logger)
	if err != nil {
		fmt.Fprintf(stderr, "sessionproxy: %v\n", err)
		return 1
	}
	return a.serve()
}
