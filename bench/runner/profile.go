package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// CPU profiles of sessionproxy under load (issue #30: where a target is
// missed, what stands in the way). With -profile the hot instance gets an
// admin listener, and after the rounds it is profiled (pprof, from the
// admin listener) for -profile-seconds during one more wrk run of the plain and of the sync
// write scenario, outside the measured rounds. Each profile is kept in
// -out as profile-<name>.prof with `go tool pprof -top` beside it
// (profile-<name>.txt).

var (
	profileRun  = flag.Bool("profile", false, "after the rounds, CPU-profile the hot instance during a plain and a write run (profile.go)")
	profileSecs = flag.Int("profile-seconds", 10, "with -profile: length of each profile (wrk runs a second longer)")
)

// profileScenarios are the paths profiled, by the name their files get.
var profileScenarios = [][2]string{{"plain", "/plain"}, {"write", "/write"}}

// adminFor is the admin listener line of the hot instance's configuration
// when profiling, and where it listens.
func (e *env) adminFor(target string) string {
	if !*profileRun || target != "hot" {
		return ""
	}
	e.profileAdmin = freeAddr()
	return fmt.Sprintf("admin: %q\n", e.profileAdmin)
}

// profileHot takes the profiles.
func (e *env) profileHot() {
	if e.profileAdmin == "" {
		return
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		log.Print(err)
		return
	}
	secs := max(*profileSecs, 1)
	for _, s := range profileScenarios {
		log.Printf("profiling sessionproxy hot on %s for %ds", s[1], secs)
		done := make(chan error, 1)
		prof := filepath.Join(*outDir, "profile-"+s[0]+".prof")
		go func() {
			done <- fetch(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", e.profileAdmin, secs), prof)
		}()
		// wrk starts at once; the profile's window sits inside its run.
		e.wrk(e.sp["hot"], s[1], time.Duration(secs+1)*time.Second)
		if err := <-done; err != nil {
			log.Printf("profile %s: %v", s[0], err)
			continue
		}
		out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=45", filepath.Join(e.dir, "sessionproxy"), prof).CombinedOutput()
		if err != nil {
			log.Printf("go tool pprof: %v\n%s", err, out)
			continue
		}
		os.WriteFile(filepath.Join(*outDir, "profile-"+s[0]+".txt"), out, 0o644)
	}
}

func fetch(url, file string) error {
	c := &http.Client{Timeout: time.Minute}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
