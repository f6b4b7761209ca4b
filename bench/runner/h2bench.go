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

// The HTTP/2 comparison (issue #25): nginx (`listen ssl http2`) and
// sessionproxy (listen_tls, http2: true by default) in front of the same two
// backends with the same certificate, each asked for /plain by h2load over
// HTTP/1.1 (--h1) and over h2, and sessionproxy (http3: true) over HTTP/3 by
// h3load (h3load.go: Debian's h2load has no HTTP/3, nor has nginx 1.22), in
// turn, in interleaved rounds. The figures
// are req/s and each proxy's CPU time per request (user + system of its
// processes over the run, from /proc): on a machine shared with the
// client, CPU per request is the figure that compares.

var h2Mode = flag.Bool("h2", false, "compare HTTP/2 (and HTTP/1.1 over TLS) of sessionproxy and nginx with h2load (h2bench.go)")

var (
	h2loadReqs = regexp.MustCompile(`requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded`)
	h2loadRPS  = regexp.MustCompile(`finished in [0-9.]+m?s, ([0-9.]+) req/s`)
)

func runH2() int {
	if _, err := exec.LookPath("h2load"); err != nil {
		log.Printf("installing nghttp2-client (h2load) from Debian's packages")
		run("apt-get", "install", "-y", "-qq", "nghttp2-client")
	}
	e := &env{sp: map[string]string{}}
	var err error
	if e.dir, err = os.MkdirTemp("", "sessionproxy-h2-bench"); err != nil {
		log.Fatal(err)
	}
	defer e.stop()
	sp, be := filepath.Join(e.dir, "sessionproxy"), filepath.Join(e.dir, "backend")
	for bin, pkg := range map[string]string{sp: "./cmd/sessionproxy", be: "./bench/backend"} {
		if out, err := goBuild(bin, pkg); err != nil {
			log.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	for range 2 {
		addr := freeAddr()
		e.spawn(be, "-listen", addr)
		e.backend = append(e.backend, addr)
	}
	for _, a := range e.backend {
		waitListening(a)
	}
	cert, key := writeBenchCert(e.dir)
	for _, d := range []string{"body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		os.MkdirAll(filepath.Join(e.dir, d), 0o755)
	}
	ngx := freeAddr()
	// Debian 12's nginx (1.22) predates `http2 on` (1.25.1): the listen
	// parameter is the same switch.
	conf := strings.Replace(nginxConfig(e.dir, ngx, e.backend), "listen "+ngx+";", fmt.Sprintf(`listen %s ssl http2;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_protocols TLSv1.2 TLSv1.3;
        # nginx ends a connection after 1000 requests (keepalive_requests,
        # which h2 follows too); h2load does not reconnect, so its rows would
        # measure that. sessionproxy sets no such limit.
        keepalive_requests 100000000;`, ngx, cert, key), 1)
	os.WriteFile(filepath.Join(e.dir, "nginx.conf"), []byte(conf), 0o600)
	ngCmd, err := e.spawnLog("nginx", "nginx", "-c", filepath.Join(e.dir, "nginx.conf"), "-p", e.dir, "-g", "daemon off;")
	if err != nil {
		log.Fatal(err)
	}
	spTLS := freeAddr()
	spConf := proxyConfig(freeAddr(), "sync", hotTier, e.backend, "") +
		fmt.Sprintf("listen_tls: %q\nhttp3: true\ntls:\n  certificates: [{cert: %q, key: %q}]\n", spTLS, cert, key)
	os.WriteFile(filepath.Join(e.dir, "sp.yaml"), []byte(spConf), 0o600)
	spCmd, err := e.spawnLog("sessionproxy", sp, "run", "-config", filepath.Join(e.dir, "sp.yaml"))
	if err != nil {
		log.Fatal(err)
	}
	waitListening(ngx)
	waitListening(spTLS)

	type target struct {
		name, url string
		pgid      int
		h1, h3    bool
	}
	targets := []target{
		{"nginx HTTP/1.1 (TLS)", "https://" + ngx + "/plain", ngCmd.Process.Pid, true, false},
		{"sessionproxy HTTP/1.1 (TLS)", "https://" + spTLS + "/plain", spCmd.Process.Pid, true, false},
		{"nginx h2 (listen ssl http2)", "https://" + ngx + "/plain", ngCmd.Process.Pid, false, false},
		{"sessionproxy h2", "https://" + spTLS + "/plain", spCmd.Process.Pid, false, false},
		{"sessionproxy h3 (http3: true)", "https://" + spTLS + "/plain", spCmd.Process.Pid, false, true},
	}
	load := func(t target, d time.Duration) (int64, float64, error) {
		if t.h3 {
			return h3load(t.url, cert, *connections, 10, d)
		}
		return h2load(t.url, t.h1, d)
	}
	for _, t := range targets { // warm up, and fail early
		if _, _, err := load(t, 2*time.Second); err != nil {
			e.stop()
			log.Fatalf("%s: %v", t.name, err)
		}
	}
	rps := map[string][]float64{}
	cpu := map[string][]float64{}
	for r := 1; r <= *rounds; r++ {
		log.Printf("round %d of %d", r, *rounds)
		for _, t := range targets {
			before := groupCPUTicks(t.pgid)
			reqs, x, err := load(t, *duration)
			if err != nil {
				e.stop()
				log.Fatalf("%s: %v", t.name, err)
			}
			ticks := groupCPUTicks(t.pgid) - before
			rps[t.name] = append(rps[t.name], x)
			cpu[t.name] = append(cpu[t.name], float64(ticks)*1e6/100/float64(max(reqs, 1))) // USER_HZ is 100
		}
	}
	fmt.Printf("h2load -c %d (-m 10 streams per connection over h2); h3load (h3load.go, quic-go's client) with as many QUIC connections and streams; %d rounds of %v, medians\n\n", *connections, *rounds, *duration)
	fmt.Printf("| front end | requests/s | CPU per request (µs, proxy only) |\n| --- | --- | --- |\n")
	for _, t := range targets {
		fmt.Printf("| %s | %.0f | %.1f |\n", t.name, median(rps[t.name]), median(cpu[t.name]))
	}
	return 0
}

// h2load runs h2load against url for d: over HTTP/1.1 when h1, else h2
// with 10 concurrent streams per connection.
func h2load(url string, h1 bool, d time.Duration) (requests int64, rps float64, err error) {
	args := []string{"-c", strconv.Itoa(*connections), "-t", strconv.Itoa(*threads), "-D", strconv.Itoa(int(d.Seconds()))}
	if h1 {
		args = append(args, "--h1")
	} else {
		args = append(args, "-m", "10")
	}
	out, err := exec.Command("h2load", append(args, url)...).CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("h2load: %v\n%s", err, out)
	}
	m, r := h2loadReqs.FindStringSubmatch(string(out)), h2loadRPS.FindStringSubmatch(string(out))
	if m == nil || r == nil {
		return 0, 0, fmt.Errorf("h2load printed no totals:\n%s", out)
	}
	total, _ := strconv.ParseInt(m[1], 10, 64)
	requests, _ = strconv.ParseInt(m[2], 10, 64)
	if requests == 0 || requests < total*99/100 {
		return 0, 0, fmt.Errorf("h2load: %d of %d requests succeeded:\n%s", requests, total, out)
	}
	if !h1 && !strings.Contains(string(out), "Application protocol: h2") {
		return 0, 0, fmt.Errorf("h2load did not negotiate h2:\n%s", out)
	}
	rps, _ = strconv.ParseFloat(r[1], 64)
	return requests, rps, nil
}
