package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The big-body measurement: a 1 GiB download and a 1 GiB upload through a
// sessionproxy of its own, with the peak resident memory (VmHWM) of that
// process before and after. Bodies stream, so the peak must stay far
// below the bytes moved.

const bigBodySize = 1 << 30

// bigBodyResult is what the measurement found.
type bigBodyResult struct {
	DownloadSeconds, UploadSeconds float64
	HWMBeforeKiB, HWMAfterKiB      int64
	Intact                         bool
}

// zeros is an endless reader of a repeated block, cheap to produce.
type zeros struct{ block [64 << 10]byte }

func (z *zeros) Read(p []byte) (int, error) { return copy(p, z.block[:]), nil }

func (e *env) bigBody(sp string) bigBodyResult {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Length", strconv.Itoa(bigBodySize))
			io.Copy(w, io.LimitReader(&zeros{}, bigBodySize))
			return
		}
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	})}
	go srv.Serve(ln)
	defer srv.Close()

	addr := freeAddr()
	conf := filepath.Join(e.dir, "bigbody.yaml")
	// The access log stays on, as shipped: it once read every streamed
	// body whole (issue #22), which is what this run's RSS would show.
	os.WriteFile(conf, []byte(fmt.Sprintf("listen: %q\nmax_body: 2GiB\nbackends:\n  - url: \"http://%s\"\n", addr, ln.Addr())), 0o600)
	cmd, err := e.spawnLog("sessionproxy-bigbody", sp, "run", "-config", conf)
	if err != nil {
		log.Fatal(err)
	}
	waitListening(addr)
	var res bigBodyResult
	res.HWMBeforeKiB = procKiB(cmd.Process.Pid, "VmHWM:")

	start := time.Now()
	resp, err := http.Get("http://" + addr + "/download")
	if err != nil {
		log.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	res.DownloadSeconds = time.Since(start).Seconds()
	res.Intact = err == nil && n == bigBodySize

	h := sha256.New()
	src := io.TeeReader(io.LimitReader(&zeros{}, bigBodySize), h)
	start = time.Now()
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/upload", struct{ io.Reader }{src})
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	res.UploadSeconds = time.Since(start).Seconds()
	res.Intact = res.Intact && string(answer) == fmt.Sprintf("%d %x", bigBodySize, h.Sum(nil))
	res.HWMAfterKiB = procKiB(cmd.Process.Pid, "VmHWM:")
	return res
}

func (r bigBodyResult) markdown() string {
	return fmt.Sprintf("\n1 GiB download and 1 GiB upload (chunked) through sessionproxy: %.1f s and %.1f s, "+
		"bytes intact: %v, peak RSS (VmHWM) %d KiB before, %d KiB after (+%d KiB).\n",
		r.DownloadSeconds, r.UploadSeconds, r.Intact, r.HWMBeforeKiB, r.HWMAfterKiB, r.HWMAfterKiB-r.HWMBeforeKiB)
}

// procKiB reads a KiB field such as "VmHWM:" of /proc/PID/status.
func procKiB(pid int, field string) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}
