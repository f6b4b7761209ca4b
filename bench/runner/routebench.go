package main

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
)

// The route-matching scenario: sessionproxy's plain path with a table of
// six routes in front that the request walks to its end, against the
// same instance setup without routes (scenario 1), in the same rounds.

const routedName = "R1 plain proxy through 6 routes"

// routedTable is a site's table, none of which matches /plain.
const routedTable = `upstreams:
  api: {backends: [{url: "http://%[1]s"}]}
routes:
  - {match: {host: "api.example.com", path: "/v1/"}, upstream: api}
  - {match: {host: "*.cdn.example.com"}, upstream: api}
  - {match: {path: "/api/"}, upstream: api, rewrite_prefix: "/"}
  - {match: {path: "/static/"}, upstream: api}
  - {match: {host: "admin.example.com", path: "/"}, upstream: api}
  - {match: {path: "/nothing/"}, upstream: api}
`

func (e *env) startRouted(nodes []string) {
	addr := freeAddr()
	conf := spConfig(addr, "sync", hotTier, e.backend, nodes) + fmt.Sprintf(routedTable, e.backend[0])
	file := filepath.Join(e.dir, "routed.yaml")
	os.WriteFile(file, []byte(conf), 0o600)
	cmd, err := e.spawnLog("sessionproxy-routed", filepath.Join(e.dir, "sessionproxy"), "run", "-config", file)
	if err != nil {
		log.Fatal(err)
	}
	e.meter(addr, cmd.Process.Pid, e.sharedStack()...)
	waitListening(addr)
	e.anchors.routed = addr
}

func (e *env) routedRuns() [][3]string {
	if e.anchors.routed == "" {
		return nil
	}
	return [][3]string{{"sessionproxy|" + routedName, e.anchors.routed, "/plain"}}
}

func routedKeys(runs map[string][]result) []string {
	if _, ok := runs["sessionproxy|"+routedName]; ok {
		return []string{"sessionproxy|" + routedName}
	}
	return nil
}
