package compress

import (
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	brrr "github.com/molecule-man/go-brrr"

	"sessionproxy/compress/policy"
)

// encoder is what the three codecs have in common: a stream that can be
// flushed mid-way and pointed at a new writer for the next response.
type encoder interface {
	io.WriteCloser
	Flush() error
	Reset(w io.Writer)
}

// The codecs' settings, chosen for a proxy that compresses per request:
// fast levels with small windows, each stream's state about 1-2 MiB
// (BenchmarkStreamMemory measures it; bench/README.md lists it).
const (
	// gzipLevel 5: klauspost's level 5 keeps nearly all of level 6's
	// ratio at a little more speed (nginx uses 1, Caddy 5).
	gzipLevel = 5
	// zstdWindow bounds the zstd window the client's decoder must keep
	// (browsers accept up to 8 MiB) and the encoder's own history.
	zstdWindow = 256 << 10
	// brotliQuality 4 and a 256 KiB window (lgwin 18): quality 5 and up
	// cost twice the CPU for a few percent; the default window of 4 MiB
	// would cost each stream megabytes.
	brotliQuality = 4
	brotliLGWin   = 18
)

// newEncoder makes a fresh encoder of e writing to io.Discard.
func newEncoder(e policy.Encoding) encoder {
	switch e {
	case policy.Gzip:
		w, err := gzip.NewWriterLevel(io.Discard, gzipLevel)
		if err != nil {
			panic(err) // a constant level
		}
		return w
	case policy.Zstd:
		w, err := zstd.NewWriter(io.Discard,
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderConcurrency(1), // no goroutines per stream
			zstd.WithWindowSize(zstdWindow),
			zstd.WithLowerEncoderMem(true))
		if err != nil {
			panic(err)
		}
		return w
	case policy.Brotli:
		w, err := brrr.NewWriterOptions(io.Discard, brotliQuality, brrr.WriterOptions{LGWin: brotliLGWin})
		if err != nil {
			panic(err)
		}
		return w
	}
	panic("compress: no encoder for " + e.String())
}

// encoderPools hold idle encoders by Encoding: each is megabytes of
// tables and history, worth keeping between responses. An encoder is
// taken for one response and put back when its stream ends.
var encoderPools [4]sync.Pool

func getEncoder(e policy.Encoding, w io.Writer) encoder {
	enc, _ := encoderPools[e].Get().(encoder)
	if enc == nil {
		enc = newEncoder(e)
	}
	enc.Reset(w)
	return enc
}

func putEncoder(e policy.Encoding, enc encoder) {
	enc.Reset(io.Discard) // drop the writer; the state is cleared for the next user
	encoderPools[e].Put(enc)
}
