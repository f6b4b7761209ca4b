package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// cpuTicks reads a process's user+system CPU time in clock ticks (1/100 s).
func cpuTicks(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which ends with ")": state is the
	// first, utime the 12th, stime the 13th.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	var u, s int
	fmt.Sscan(f[11], &u)
	fmt.Sscan(f[12], &s)
	return u + s
}

// bystander asks the proxy for /fast over its own h2 connection until
// stop is closed, and reports its failures and slowest answer.
type bystander struct {
	fails   atomic.Int64
	answers atomic.Int64
	slowest atomic.Int64 // nanoseconds
	done    chan struct{}
}

func (h *h2Proxy) bystander(stop <-chan struct{}) *bystander {
	b := &bystander{done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			start := time.Now()
			resp, err := h.client.Get(h.url("/fast"))
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = errors.New(resp.Status)
				}
			}
			if err != nil {
				b.fails.Add(1)
				continue
			}
			b.answers.Add(1)
			if d := int64(time.Since(start)); d > b.slowest.Load() {
				b.slowest.Store(d)
			}
		}
	}()
	return b
}

// floodBackend answers /fast at once and /slow after 50ms.
func floodBackend(t *testing.T, slow *atomic.Int64) *httptest.Server {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			slow.Add(1)
			select {
			case <-time.After(50 * time.Millisecond):
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(be.Close)
	return be
}

// TestH2RapidReset: a client that opens and at once resets 20000 streams
// (CVE-2023-44487) costs the proxy bounded CPU and memory, and another
// client's requests keep being answered meanwhile.
func TestH2RapidReset(t *testing.T) {
	var slow atomic.Int64
	be := floodBackend(t, &slow)
	h := startH2(t, plainBinary(t), be.URL, "")
	pid := h.p.cmd.Process.Pid
	h.get(t, "/fast")
	rssBefore, cpuBefore := vmRSS(t, pid), cpuTicks(t, pid)
	stop := make(chan struct{})
	by := h.bystander(stop)

	c, fr := h2Dial(t, h.tls, h.ca)
	defer c.Close()
	go io.Copy(io.Discard, c) // the server's answers, unread
	block := h2Block(":method", "GET", ":scheme", "https", ":authority", "h2.test", ":path", "/slow")
	const streams = 20000
	sent := 0
	start := time.Now()
	for id := uint32(1); sent < streams; id += 2 {
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}) != nil ||
			fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break // the proxy closed the connection: a defence too
		}
		sent++
	}
	elapsed := time.Since(start)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	<-by.done
	rssAfter, cpuAfter := vmRSS(t, pid), cpuTicks(t, pid)
	t.Logf("%d streams opened and reset in %v; the backend got %d of them; proxy CPU %d ms, VmRSS %d -> %d KiB; bystander: %d answers, %d failures, slowest %v",
		sent, elapsed, slow.Load(), (cpuAfter-cpuBefore)*10, rssBefore, rssAfter, by.answers.Load(), by.fails.Load(), time.Duration(by.slowest.Load()))
	if by.fails.Load() > 0 || by.answers.Load() == 0 {
		t.Errorf("the other client got %d failures and %d answers during the flood", by.fails.Load(), by.answers.Load())
	}
	if d := time.Duration(by.slowest.Load()); d > 2*time.Second {
		t.Errorf("the other client's slowest answer took %v during the flood", d)
	}
	if cpu := (cpuAfter - cpuBefore) * 10; cpu > 10000 {
		t.Errorf("the flood cost the proxy %d ms of CPU", cpu)
	}
	if grew := rssAfter - rssBefore; grew > 64<<10 {
		t.Errorf("the flood grew the proxy's RSS by %d KiB", grew)
	}
	h.get(t, "/fast") // still serving
}

// TestH2ContinuationFlood: a header block that never ends, sent as
// endless CONTINUATION frames (CVE-2024-27316 and kin), is cut off at the
// header list limit: the proxy closes that connection after a bounded
// amount, keeps its memory, and answers another client meanwhile.
func TestH2ContinuationFlood(t *testing.T) {
	var slow atomic.Int64
	be := floodBackend(t, &slow)
	h := startH2(t, plainBinary(t), be.URL, "")
	pid := h.p.cmd.Process.Pid
	h.get(t, "/fast")
	rssBefore, cpuBefore := vmRSS(t, pid), cpuTicks(t, pid)
	stop := make(chan struct{})
	by := h.bystander(stop)

	c, fr := h2Dial(t, h.tls, h.ca)
	defer c.Close()
	closed := make(chan string, 1)
	var once sync.Once
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				once.Do(func() { closed <- "closed: " + err.Error() })
				return
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				once.Do(func() { closed <- "GOAWAY " + g.ErrCode.String() })
			}
		}
	}()
	// A fresh Framer for writing: the reading one is busy in its goroutine.
	wf := http2.NewFramer(c, nil)
	var junk strings.Builder
	enc := hpack.NewEncoder(&junk)
	for i := 0; junk.Len() < 16000; i++ {
		enc.WriteField(hpack.HeaderField{Name: fmt.Sprintf("x-junk-%d", i), Value: strings.Repeat("a", 100)})
	}
	wf.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2Block(":method", "GET", ":scheme", "https", ":authority", "h2.test", ":path", "/slow")})
	// Write until the proxy refuses the block (GOAWAY or a closed
	// connection), 64 MiB at most. What was written by then bounds what
	// the proxy read (the rest is in socket buffers).
	written := 0
	var how string
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
write:
	for written < 64<<20 {
		select {
		case how = <-closed:
			break write
		default:
		}
		if wf.WriteContinuation(1, false, []byte(junk.String())) != nil {
			break
		}
		written += junk.Len()
	}
	if how == "" {
		select {
		case how = <-closed:
		case <-time.After(5 * time.Second):
		}
	}
	time.Sleep(300 * time.Millisecond) // the bystander's turn, while the proxy drains the flood
	close(stop)
	<-by.done
	rssAfter, cpuAfter := vmRSS(t, pid), cpuTicks(t, pid)
	t.Logf("wrote %d KiB of CONTINUATION before the refusal; connection: %q; backend got %d; proxy CPU %d ms, VmRSS %d -> %d KiB; bystander: %d answers, %d failures",
		written>>10, how, slow.Load(), (cpuAfter-cpuBefore)*10, rssBefore, rssAfter, by.answers.Load(), by.fails.Load())
	if how == "" {
		t.Errorf("the proxy kept a connection open that sent %d KiB of one header block", written>>10)
	}
	if written >= 16<<20 { // socket buffers and a busy machine let a few MiB through before the GOAWAY is read
		t.Errorf("the proxy took %d KiB of one header block before refusing it", written>>10)
	}
	if slow.Load() != 0 {
		t.Errorf("the endless header block reached the backend")
	}
	if by.fails.Load() > 0 || by.answers.Load() == 0 {
		t.Errorf("the other client got %d failures and %d answers during the flood", by.fails.Load(), by.answers.Load())
	}
	if grew := rssAfter - rssBefore; grew > 32<<10 {
		t.Errorf("the flood grew the proxy's RSS by %d KiB", grew)
	}
	if cpu := (cpuAfter - cpuBefore) * 10; cpu > 5000 {
		t.Errorf("the flood cost the proxy %d ms of CPU", cpu)
	}
}
