package memcached

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"sessionproxy/sessionstore"
)

// Hint files: a node's missed writes kept on disk (MemcachedOptions.StateDir),
// so that a proxy restarted while the only up-to-date replica is away still
// brings the returning node what it missed before it serves reads.
//
// A file is one instance's hints for one node (a session ID is IDLen
// bytes). It starts with a header
//
//	"SPHINTS1" | flags uint32 | CRC32-C of the 12 bytes before it
//
// whose flags hold the full-copy mark (the node missed more than the file
// could say, or the file could not be written), then records appended one
// after the other:
//
//	length uint32 | CRC32-C of the payload uint32 | payload
//	payload: kind byte (1: a missed write) | len(id) byte | id | value
//
// The value is the encoded session or tombstone the node missed, whole: the
// hint is the write itself, as Cassandra's hinted handoff keeps it. A later
// record for an ID supersedes earlier ones (the newest version wins on
// replay, and replay goes through writeIfNewer, so a stale record is
// harmless). Integers are big-endian.

const (
	hintMagic      = "SPHINTS1"
	hintHeaderSize = 16
	hintRecordHead = 8 // length, CRC
	// maxHintRecord bounds the length a record may declare, so that a
	// corrupt length is never taken for an allocation of gigabytes.
	maxHintRecord = 8 << 20
	hintKindWrite = 1

	hintFlagFullCopy = 1
)

var hintCRC = crc32.MakeTable(crc32.Castagnoli)

var (
	errHintShort   = errors.New("truncated record")
	errHintCorrupt = errors.New("corrupt record")
	errHintFull    = errors.New("hint file over its size bound")
)

// appendHintHeader appends a file header with flags to b.
func appendHintHeader(b []byte, flags uint32) []byte {
	b = append(b, hintMagic...)
	b = binary.BigEndian.AppendUint32(b, flags)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[len(b)-12:], hintCRC))
}

// decodeHintHeader reads a file header. ok is false when it is missing,
// short or corrupt.
func decodeHintHeader(b []byte) (flags uint32, ok bool) {
	if len(b) < hintHeaderSize || string(b[:8]) != hintMagic {
		return 0, false
	}
	if crc32.Checksum(b[:12], hintCRC) != binary.BigEndian.Uint32(b[12:16]) {
		return 0, false
	}
	return binary.BigEndian.Uint32(b[8:12]), true
}

// appendHintRecord appends the record of a missed write of val to id.
func appendHintRecord(b, id, val []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(2+len(id)+len(val)))
	b = binary.BigEndian.AppendUint32(b, 0) // the CRC, once the payload is in
	start := len(b)
	b = append(b, hintKindWrite, byte(len(id)))
	b = append(b, id...)
	b = append(b, val...)
	binary.BigEndian.PutUint32(b[start-4:], crc32.Checksum(b[start:], hintCRC))
	return b
}

// decodeHintRecord reads the record at the start of b and returns its ID,
// its value (both within b) and its size. Errors: errHintShort when b ends
// before the record does, errHintCorrupt when its length, checksum or
// contents are wrong.
func decodeHintRecord(b []byte) (id, val []byte, size int, err error) {
	if len(b) < hintRecordHead {
		return nil, nil, 0, errHintShort
	}
	n := binary.BigEndian.Uint32(b)
	if n < 2+sessionstore.IDLen+1 || n > maxHintRecord {
		return nil, nil, 0, errHintCorrupt
	}
	// The cheap checks first, on what is there of the record: the
	// scanner tries them at every offset of a damaged stretch, and a
	// checksum over megabytes at each would take hours.
	p := b[hintRecordHead:]
	if len(p) >= 1 && p[0] != hintKindWrite || len(p) >= 2 && p[1] != sessionstore.IDLen ||
		len(p) >= 2+sessionstore.IDLen && !sessionstore.ValidID(p[2:2+sessionstore.IDLen]) {
		return nil, nil, 0, errHintCorrupt
	}
	if uint64(len(p)) < uint64(n) {
		return nil, nil, 0, errHintShort
	}
	p = p[:n]
	if crc32.Checksum(p, hintCRC) != binary.BigEndian.Uint32(b[4:]) {
		return nil, nil, 0, errHintCorrupt
	}
	return p[2 : 2+sessionstore.IDLen], p[2+sessionstore.IDLen:], hintRecordHead + int(n), nil
}

// hintProblem is a stretch of a hint file that could not be read.
type hintProblem struct {
	off, len int64
	err      error
}

func (p hintProblem) String() string {
	return fmt.Sprintf("%v at offset %d (%d bytes skipped)", p.err, p.off, p.len)
}

// scanHints calls fn for each record of data, a hint file's contents after
// its header (off counts from the file's start), that can be read, and
// returns the stretches that could not: after a corrupt record it looks for
// the next one that reads whole, so a damaged stretch costs only itself.
func scanHints(data []byte, fn func(off int64, id, val []byte)) []hintProblem {
	var problems []hintProblem
	for i := 0; i < len(data); {
		id, val, size, err := decodeHintRecord(data[i:])
		if err == nil {
			if _, perr := peek(val); perr != nil {
				err = errHintCorrupt
			}
		}
		if err == nil {
			fn(int64(hintHeaderSize+i), id, val)
			i += size
			continue
		}
		// A record cut short ends the file, unless whole records follow
		// it: then its length was damaged.
		j := resync(data, i+1)
		if j < len(data) {
			err = errHintCorrupt
		}
		problems = append(problems, hintProblem{int64(hintHeaderSize + i), int64(j - i), err})
		i = j
	}
	return problems
}

// resync returns the first offset at or after i where a whole record
// reads, or len(data).
func resync(data []byte, i int) int {
	for ; i < len(data); i++ {
		if _, val, _, err := decodeHintRecord(data[i:]); err == nil {
			if _, perr := peek(val); perr == nil {
				return i
			}
		}
	}
	return len(data)
}

// hintRef is where a node's newest hint for one ID is: at off in its hint
// file, or, with no file, nowhere (off < 0: replay copies the session from
// the other replicas instead).
type hintRef struct {
	off     int64
	version uint64
	gen     uint32 // the file's generation when it was written (compact)
}

// hintLog is one node's hint file, open, locked and written by this
// process only. Its methods are called with the handoff's mutex held.
type hintLog struct {
	f     *os.File
	path  string
	size  int64 // where the next record goes
	max   int64 // the bound on size
	flags uint32
	gen   uint32 // counts compactions: offsets of an older one are void
	dirty bool   // written since the last fsync
	buf   []byte
}

// createHintLog creates and locks a new hint file at path.
func createHintLog(path string, max int64) (*hintLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	l := &hintLog{f: f, path: path, size: hintHeaderSize, max: max}
	if err := l.writeHeader(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return l, nil
}

// writeHeader writes the header in place and syncs it: the full-copy mark
// is written over bytes the file already has, so that it can be set even
// when the file system has no room left for another record.
func (l *hintLog) writeHeader() error {
	var b [hintHeaderSize]byte
	if _, err := l.f.WriteAt(appendHintHeader(b[:0], l.flags), 0); err != nil {
		return err
	}
	return l.f.Sync()
}

// append writes the record of a missed write and returns its offset.
// Past the bound it writes nothing and returns errHintFull.
func (l *hintLog) append(id, val []byte) (int64, error) {
	if 2+len(id)+len(val) > maxHintRecord {
		return 0, fmt.Errorf("a session of %d bytes is over the largest hint record", len(val))
	}
	l.buf = appendHintRecord(l.buf[:0], id, val)
	if l.size+int64(len(l.buf)) > l.max {
		return 0, errHintFull
	}
	off := l.size
	if _, err := l.f.WriteAt(l.buf, off); err != nil {
		return 0, err
	}
	l.size += int64(len(l.buf))
	l.dirty = true
	return off, nil
}

// read returns the value of the record at off, which must be id's.
func (l *hintLog) read(off int64, id string) ([]byte, error) {
	var head [hintRecordHead]byte
	if _, err := l.f.ReadAt(head[:], off); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(head[:])
	if n > maxHintRecord {
		return nil, errHintCorrupt
	}
	b := make([]byte, hintRecordHead+int(n))
	copy(b, head[:])
	if _, err := l.f.ReadAt(b[hintRecordHead:], off+hintRecordHead); err != nil && err != io.EOF {
		return nil, err
	}
	rid, val, _, err := decodeHintRecord(b)
	if err == nil && string(rid) != id {
		err = errHintCorrupt
	}
	return val, err
}

// compact rewrites the file with the records of refs only (the newest hint
// of each ID), and returns their new places: a session written many times
// while its node was away leaves one record, not one per write. The new
// file is written beside the old one, locked, synced and renamed over it,
// so that a crash at any point leaves one whole file.
func (l *hintLog) compact(refs map[string]hintRef) (map[string]hintRef, error) {
	tmp := l.path + ".compact"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	nl := &hintLog{f: f, path: l.path, size: hintHeaderSize, max: l.max, flags: l.flags, gen: l.gen + 1}
	fail := func(err error) (map[string]hintRef, error) {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	if err := lockFile(f); err != nil {
		return fail(err)
	}
	if err := nl.writeHeader(); err != nil {
		return fail(err)
	}
	out := make(map[string]hintRef, len(refs))
	for id, ref := range refs {
		if ref.off < 0 {
			out[id] = ref // a hint without a record here (putBack)
			continue
		}
		val, err := l.read(ref.off, id)
		if err != nil {
			return fail(err)
		}
		off, err := nl.append([]byte(id), val)
		if err != nil {
			return fail(err)
		}
		out[id] = hintRef{off: off, version: ref.version, gen: nl.gen}
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, l.path); err != nil {
		return fail(err)
	}
	l.f.Close()
	*l = *nl
	l.dirty = false
	return out, nil
}

// setFull sets or clears the full-copy mark.
func (l *hintLog) setFull(on bool) error {
	flags := l.flags &^ hintFlagFullCopy
	if on {
		flags |= hintFlagFullCopy
	}
	if flags == l.flags {
		return nil
	}
	l.flags = flags
	return l.writeHeader()
}

// reset drops every record: they have been replayed.
func (l *hintLog) reset() error {
	if err := l.f.Truncate(hintHeaderSize); err != nil {
		return err
	}
	l.size = hintHeaderSize
	l.dirty = true
	return l.sync()
}

func (l *hintLog) sync() error {
	if !l.dirty {
		return nil
	}
	l.dirty = false
	return l.f.Sync()
}

// close syncs and closes the file, and removes it if it holds nothing to
// replay; a file left holds hints for the next instance to adopt.
func (l *hintLog) close(empty bool) error {
	err := l.sync()
	if empty && l.flags == 0 {
		os.Remove(l.path) // while still locked: no one adopts it meanwhile
	}
	return errors.Join(err, l.f.Close())
}
