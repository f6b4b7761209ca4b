package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The FastCGI comparison (issue #24): one PHP-FPM pool, reached by
// sessionproxy (fastcgi://) and by nginx (fastcgi_pass), both with their
// default of a connection per request (a kept connection pins a PHP-FPM
// worker: nginx's, idle after its run, would starve the next proxy), one
// wrk run each against a small PHP page; the figure is
// each proxy's CPU time per request (user + system of its processes over
// the run, from /proc), since PHP-FPM's own cost is the same for both.

var fastcgiMode = flag.Bool("fastcgi", false, "compare sessionproxy's FastCGI path with nginx's fastcgi_pass to the same PHP-FPM (fastcgibench.go)")

const fastcgiPage = `<?php header('Content-Type: text/plain'); echo 'hello ', $_SERVER['REQUEST_URI'], "\n";`

func runFastCGI() int {
	if _, err := exec.LookPath("wrk"); err != nil {
		log.Fatal("runner: wrk is needed")
	}
	fpmBin := ""
	for _, n := range []string{"php-fpm", "php-fpm8.4", "php-fpm8.3", "php-fpm8.2"} {
		if p, err := exec.LookPath(n); err == nil {
			fpmBin = p
			break
		}
		if _, err := os.Stat("/usr/sbin/" + n); err == nil {
			fpmBin = "/usr/sbin/" + n
			break
		}
	}
	if fpmBin == "" {
		log.Fatal("runner: php-fpm is needed (make deps)")
	}
	e := &env{sp: map[string]string{}}
	var err error
	if e.dir, err = os.MkdirTemp("", "sessionproxy-fcgi-bench"); err != nil {
		log.Fatal(err)
	}
	defer e.stop()
	os.Chmod(e.dir, 0o755) // nginx's workers (try_files) and PHP-FPM's read the page
	root := filepath.Join(e.dir, "www")
	os.MkdirAll(root, 0o755)
	os.WriteFile(filepath.Join(root, "hello.php"), []byte(fastcgiPage), 0o644)

	fpm := freeAddr()
	conf := fmt.Sprintf("[global]\npid = %[1]s/fpm.pid\nerror_log = %[1]s/fpm.log\ndaemonize = no\n[www]\nlisten = %[2]s\nlisten.backlog = 1024\npm = static\npm.max_children = 8\n", e.dir, fpm)
	os.WriteFile(filepath.Join(e.dir, "fpm.conf"), []byte(conf), 0o600)
	args := []string{"-F", "-y", filepath.Join(e.dir, "fpm.conf")}
	if os.Geteuid() == 0 {
		args = append(args, "-R")
	}
	e.spawn(fpmBin, args...)
	waitListening(fpm)

	sp := filepath.Join(e.dir, "sessionproxy")
	if out, err := goBuild(sp, "./cmd/sessionproxy"); err != nil {
		log.Fatalf("go build: %v\n%s", err, out)
	}
	spAddr := freeAddr()
	// The shipped defaults but the access log, which nginx's config
	// below has off too.
	spConf := fmt.Sprintf("listen: %q\naccess_log: off\nbackends: [{url: \"fastcgi://%s\"}]\nfastcgi: {root: %q}\n", spAddr, fpm, root)
	os.WriteFile(filepath.Join(e.dir, "sp.yaml"), []byte(spConf), 0o600)
	spCmd, err := e.spawnLog("sessionproxy", sp, "run", "-config", filepath.Join(e.dir, "sp.yaml"))
	if err != nil {
		log.Fatal(err)
	}
	waitListening(spAddr)

	ngAddr := freeAddr()
	for _, d := range []string{"body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		os.MkdirAll(filepath.Join(e.dir, d), 0o755)
	}
	ngConf := fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
daemon off;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    upstream php { server %[2]s; }
    server {
        listen %[3]s;
        root %[4]s;
        location ~ \.php$ {
            try_files $uri =404;
            fastcgi_pass php;
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        }
    }
}
`, e.dir, fpm, ngAddr, root)
	os.WriteFile(filepath.Join(e.dir, "nginx.conf"), []byte(ngConf), 0o600)
	ngCmd, err := e.spawnLog("nginx", "nginx", "-c", filepath.Join(e.dir, "nginx.conf"), "-e", filepath.Join(e.dir, "nginx-error.log"))
	if err != nil {
		log.Fatal(err)
	}
	waitListening(ngAddr)

	d := *duration
	fmt.Printf("| proxy | requests/s | CPU per request (µs, proxy only) |\n| --- | --- | --- |\n")
	for _, t := range []struct {
		name string
		addr string
		pgid int
	}{{"nginx fastcgi_pass", ngAddr, ngCmd.Process.Pid}, {"sessionproxy fastcgi://", spAddr, spCmd.Process.Pid}} {
		if _, _, err := plainWrk(t.addr, 2*time.Second); err != nil { // warm up
			e.stop() // log.Fatal skips the deferred stop
			log.Fatal(err)
		}
		before := groupCPUTicks(t.pgid)
		reqs, rps, err := plainWrk(t.addr, d)
		if err != nil {
			e.stop()
			log.Fatal(err)
		}
		ticks := groupCPUTicks(t.pgid) - before
		us := float64(ticks) * 1e6 / 100 / float64(max(reqs, 1)) // USER_HZ is 100 on Linux
		fmt.Printf("| %s | %.0f | %.1f |\n", t.name, rps, us)
	}
	return 0
}

var wrkTotals = regexp.MustCompile(`(\d+) requests in`)
var wrkRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// plainWrk runs wrk without a script against /hello.php.
func plainWrk(addr string, d time.Duration) (requests int64, rps float64, err error) {
	out, err := exec.Command("wrk", fmt.Sprintf("-t%d", *threads), fmt.Sprintf("-c%d", *connections),
		fmt.Sprintf("-d%ds", int(d.Seconds())), "http://"+addr+"/hello.php").CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "Non-2xx") {
		return 0, 0, fmt.Errorf("wrk got errors:\n%s", out)
	}
	m, r := wrkTotals.FindStringSubmatch(string(out)), wrkRPS.FindStringSubmatch(string(out))
	if m == nil || r == nil {
		return 0, 0, fmt.Errorf("wrk printed no totals:\n%s", out)
	}
	requests, _ = strconv.ParseInt(m[1], 10, 64)
	if requests == 0 {
		return 0, 0, fmt.Errorf("wrk: no request answered:\n%s", out)
	}
	rps, _ = strconv.ParseFloat(r[1], 64)
	return requests, rps, nil
}

// groupCPUTicks sums utime and stime (clock ticks) of every process of
// process group pgid: nginx's master and workers, or sessionproxy.
func groupCPUTicks(pgid int) int64 {
	entries, _ := os.ReadDir("/proc")
	var total int64
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from the 3rd on
		if len(f) < 13 {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g != pgid { // field 5: pgrp
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)  // field 14: utime
		st, _ := strconv.ParseInt(f[12], 10, 64) // field 15: stime
		total += u + st
	}
	return total
}
