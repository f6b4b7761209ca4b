package main

import (
	"crypto/rand"
	"crypto/sha256"
	binenc "encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// blocks is an endless reader of 64 KiB blocks, each stamped with its
// number, so that a lost, repeated or reordered block changes the
// checksum.
type blocks struct {
	block []byte
	n     uint64
	off   int
}

func newBlocks(t *testing.T) *blocks {
	b := &blocks{block: make([]byte, 64<<10)}
	if _, err := rand.Read(b.block); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *blocks) Read(p []byte) (int, error) {
	if b.off == 0 {
		binenc.BigEndian.PutUint64(b.block, b.n)
		b.n++
	}
	n := copy(p, b.block[b.off:])
	b.off = (b.off + n) % len(b.block)
	return n, nil
}

// TestStreamingMemory: a 256 MiB download and a 256 MiB upload through
// the proxy, run as its own process without the race detector, arrive
// intact and grow its peak RSS (VmHWM) by less than 64 MiB.
func TestStreamingMemory(t *testing.T) {
	const size, limitKiB = 256 << 20, 64 << 10
	sent := make(chan string, 1)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		switch {
		case r.URL.Path == "/warm":
			io.WriteString(w, "ok")
		case r.Method == http.MethodGet:
			w.Header().Set("Content-Length", fmt.Sprint(size))
			io.Copy(io.MultiWriter(w, h), io.LimitReader(newBlocks(t), size))
			sent <- fmt.Sprintf("%x", h.Sum(nil))
		default:
			n, err := io.Copy(h, r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
		}
	}))
	t.Cleanup(app.Close)
	p := startBinary(t, plainBinary(t), fmt.Sprintf(`listen: "{{listen}}"
admin: "{{admin}}"
max_body: 1GiB
backends:
  - url: %q
`, app.URL))
	pid := p.cmd.Process.Pid
	if r, err := http.Get("http://" + p.addr + "/warm"); err == nil {
		io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		r.Body.Close()
	}
	before := procStatusKiB(t, pid, "VmHWM:")

	resp, err := http.Get("http://" + p.addr + "/download")
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Fatalf("download: %d of %d bytes, %v", n, size, err)
	}
	if sum := fmt.Sprintf("%x", got.Sum(nil)); sum != <-sent {
		t.Fatal("download arrived with another checksum than the backend sent")
	}

	// Upload, chunked (no length): the proxy streams it as it comes.
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(newBlocks(t), size), h)
	req, _ := http.NewRequest(http.MethodPut, "http://"+p.addr+"/upload", struct{ io.Reader }{src})
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("%d %x", size, h.Sum(nil)); resp.StatusCode != 200 || string(answer) != want {
		t.Fatalf("upload: %d %q, want 200 %q", resp.StatusCode, answer, want)
	}
	after := procStatusKiB(t, pid, "VmHWM:")
	t.Logf("proxy VmHWM %d KiB before, %d KiB after 2 x 256 MiB: +%d KiB", before, after, after-before)
	if after-before >= limitKiB {
		t.Fatalf("peak RSS grew by %d KiB streaming 256 MiB each way, want under %d", after-before, limitKiB)
	}
}
