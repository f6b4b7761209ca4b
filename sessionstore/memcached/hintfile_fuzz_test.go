package memcached

import (
	"bytes"
	"testing"
)

// FuzzHintRecord feeds arbitrary bytes to the hint-file record decoder and
// to the scanner that resyncs past damage: neither may panic, every
// record either reads whole (and encodes back to the same bytes) or is
// refused, and the scanner accounts for every byte it is given.
func FuzzHintRecord(f *testing.F) {
	id := []byte("AAAAAAAAAAAAAAAAAAAAAA")
	val := encodedSession(id, 7)
	rec := appendHintRecord(nil, id, val)
	f.Add(rec)
	f.Add(rec[:len(rec)-1])                                   // truncated
	f.Add(append(append([]byte(nil), rec...), rec...))        // two
	f.Add(append(append([]byte("garbage"), rec...), 0, 0, 0)) // damage before, short tail after
	bad := append([]byte(nil), rec...)
	bad[len(bad)-1] ^= 0xff // checksum mismatch
	f.Add(bad)
	f.Add([]byte{0, 0, 0, 3, 0, 0, 0, 0, 1, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Add(appendHintHeader(nil, hintFlagFullCopy))
	f.Fuzz(func(t *testing.T, data []byte) {
		rid, rval, size, err := decodeHintRecord(data)
		if err == nil {
			if size < hintRecordHead || size > len(data) {
				t.Fatalf("size %d of %d bytes", size, len(data))
			}
			if again := appendHintRecord(nil, rid, rval); !bytes.Equal(again, data[:size]) {
				t.Fatalf("record does not encode back to its bytes")
			}
		}
		decodeHintHeader(data)
		var seen int64
		last := int64(-1)
		problems := scanHints(data, func(off int64, id, val []byte) {
			if off <= last {
				t.Fatalf("offsets not increasing: %d after %d", off, last)
			}
			last = off
			seen += int64(len(appendHintRecord(nil, id, val)))
		})
		for _, p := range problems {
			seen += p.len
		}
		if seen != int64(len(data)) {
			t.Fatalf("scanner accounted for %d of %d bytes", seen, len(data))
		}
	})
}
