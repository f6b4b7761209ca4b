package main

import (
	"log"
	"os/exec"
	"path/filepath"
)

// The two probes of the event-loop question (gnetbench.go): thinproxy,
// the thinnest fasthttp proxy (fasthttp.Server + HostClient.Do), and
// gnetproxy, gnet event loops in front with fasthttp's parser. Both proxy
// the bench backends round robin, plain path only.

type probe struct {
	name, addr string
	cmd        *exec.Cmd
}

// startProbes builds and starts thinproxy and gnetproxy in front of the
// bench backends.
func (e *env) startProbes() []probe {
	var out []probe
	for _, name := range []string{"thinproxy", "gnetproxy"} {
		bin := filepath.Join(e.dir, name)
		if b, err := goBuild(bin, "./bench/"+name); err != nil {
			log.Fatalf("go build %s: %v\n%s", name, err, b)
		}
		addr := freeAddr()
		cmd, err := e.spawnLog(name, bin, "-listen", addr, "-backend", e.backend[0], "-backend", e.backend[1])
		if err != nil {
			log.Fatal(err)
		}
		out = append(out, probe{name, addr, cmd})
	}
	for _, p := range out {
		waitListening(p.addr)
	}
	return out
}
