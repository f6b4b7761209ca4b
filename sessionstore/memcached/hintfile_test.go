package memcached

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sessionproxy/internal/testutil"
	"sessionproxy/sessionstore"
)

func TestHintRecordRoundTrip(t *testing.T) {
	id := sessionstore.AppendNewID(nil)
	val := encodedSession(id, 3)
	rec := appendHintRecord(nil, id, val)
	gid, gval, size, err := decodeHintRecord(rec)
	if err != nil || string(gid) != string(id) || string(gval) != string(val) || size != len(rec) {
		t.Fatalf("decode: %q %d %v", gid, size, err)
	}
	if _, _, _, err := decodeHintRecord(rec[:len(rec)-1]); err != errHintShort {
		t.Fatalf("truncated record: %v, want errHintShort", err)
	}
	rec[len(rec)-1] ^= 1
	if _, _, _, err := decodeHintRecord(rec); err != errHintCorrupt {
		t.Fatalf("flipped bit: %v, want errHintCorrupt", err)
	}
}

// A damaged stretch in the middle costs only itself; a record cut short
// at the end is reported; everything else is read.
func TestScanHintsSkipsDamage(t *testing.T) {
	var data []byte
	var ids [][]byte
	for i := range 5 {
		id := sessionstore.AppendNewID(nil)
		ids = append(ids, id)
		data = appendHintRecord(data, id, encodedSession(id, uint64(i+1)))
	}
	second := len(appendHintRecord(nil, ids[0], encodedSession(ids[0], 1)))
	data[second+20] ^= 0xff   // inside the second record
	data = data[:len(data)-3] // the last one cut short
	var got []string
	problems := scanHints(data, func(_ int64, id, _ []byte) { got = append(got, string(id)) })
	want := []string{string(ids[0]), string(ids[2]), string(ids[3])}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("read %q, want %q", got, want)
	}
	if len(problems) != 2 || problems[0].err != errHintCorrupt || problems[0].off != int64(hintHeaderSize+second) ||
		problems[1].err != errHintShort {
		t.Fatalf("problems %v", problems)
	}
}

func TestHintLogBoundAndMark(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n1.x.hints")
	l, err := createHintLog(path, 300)
	if err != nil {
		t.Fatal(err)
	}
	id := sessionstore.AppendNewID(nil)
	val := encodedSession(id, 1)
	off, err := l.append(id, val)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := l.read(off, string(id)); err != nil || string(got) != string(val) {
		t.Fatalf("read back %q, %v", got, err)
	}
	for err == nil {
		_, err = l.append(id, val)
	}
	if got, err := l.read(off, string(sessionstore.AppendNewID(nil))); err == nil {
		t.Fatalf("read as another ID's record: %q", got)
	}
	if err != errHintFull {
		t.Fatalf("past the bound: %v", err)
	}
	if err := l.setFull(true); err != nil {
		t.Fatal(err)
	}
	l.close(false)
	b, _ := os.ReadFile(path)
	if flags, ok := decodeHintHeader(b); !ok || flags != hintFlagFullCopy {
		t.Fatalf("header flags %d ok %v", flags, ok)
	}
	if st, err := os.Stat(path); err != nil || st.Size() > 300 {
		t.Fatalf("file %v, %v: over its bound", st, err)
	}
}

// A file of garbage (a disk that returned the wrong blocks) is scanned in
// about the time it takes to read it: the resync never checksums
// megabytes at every offset.
func TestScanHintsGarbageIsFast(t *testing.T) {
	// 16 MiB, twice the longest record, so that a scan that checksums
	// what a garbage length claims costs far more than one that reads the
	// file once.
	const size = 16 << 20
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{1, 2}).Read(data)
	id := sessionstore.AppendNewID(nil)
	data = appendHintRecord(data, id, encodedSession(id, 1))
	var got int
	var problems []hintProblem
	// CPU time of the scanning thread, not wall time: on a loaded machine
	// the scan waits for a core ten times longer than it runs. It takes
	// about 0.7s of CPU under -race; one without the cheap checks of
	// decodeHintRecord, which checksums what each garbage length claims,
	// runs for minutes (measured), so 5s still tells the two apart.
	took := testutil.OnThreadCPU(func() {
		problems = scanHints(data, func(int64, []byte, []byte) { got++ })
	})
	if took > 5*time.Second {
		t.Fatalf("scanning %d MiB of garbage took %v of CPU", size>>20, took)
	}
	if got != 1 || len(problems) != 1 || problems[0].err != errHintCorrupt {
		t.Fatalf("read %d records, problems %v", got, problems)
	}
}
