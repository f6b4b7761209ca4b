package memcache

import (
	"bufio"
	"bytes"
	"fmt"
)

// Quiet sets. A store small enough to fit any memcached (quietMax) is sent
// in quiet mode with an opaque token ("ms <key> <size> ... q O<token>"):
// memcached answers nothing when it is stored, and a refusal (NS, EX, NF)
// with the token, which names the call it belongs to. The writer closes
// each batch that holds quiet sets with a no-op ("mn"), answered "MN":
// memcached answers in command order, so the quiet sets before an answer
// that is not theirs, or before MN, that drew no refusal were stored. A
// batch of sets is then answered with one line instead of one per set.
//
// memcached's SERVER_ERROR and CLIENT_ERROR lines carry no token. A store
// too large for the server's item limit draws one, which is why a store
// larger than quietMax is never quiet, and the writer ends the quiet sets
// before it with a no-op: the error then belongs to the store itself, as
// without quiet mode. A quiet set can still draw a SERVER_ERROR when the
// server is out of memory; with one quiet set waiting, the error is its
// own; with several, each of them is told the error, since memcached does
// not say which failed. That tells a stored set it failed (its caller
// writes again), never a failed set that it was stored.

// quietMax bounds the key and value of a quiet store: with memcached's
// item header (about 56 bytes with the CAS id and flags), well within
// 1 KiB, the smallest item size limit memcached can be given (-I).
const quietMax = 896

// opNoop is the no-op ("mn") the writer ends quiet sets with: a pooled
// call of the reader's own, not handed to a caller.
const opNoop Op = 255

// stores reports whether o is a store (ms), which may be sent quiet.
func (o Op) stores() bool { return o == OpSet || o == OpCAS || o == OpAdd }

// endQuiet queues a no-op after the quiet sets queued since the last one,
// if any. mc.mu is held.
func (mc *conn) endQuiet() {
	if !mc.quiet {
		return
	}
	mc.quiet = false
	c := calls.Get().(*Call)
	c.op, c.val, c.err, c.seen, c.lead, c.quiet = opNoop, nil, nil, false, nil, false
	mc.buf = append(mc.buf, "mn\r\n"...)
	c.end = len(mc.buf)
	mc.queue = append(mc.queue, c)
}

// answers reads a link's answers: the answer of each call it is asked
// for, and on the way the refusals of the quiet sets written before it.
type answers struct {
	br    *bufio.Reader
	quiet []*Call // quiet sets not yet answered, in write order, from head
	head  int
}

// answer reads the answer to c, or, for a quiet set, takes it to be
// answered later. It returns an error only when the stream is out of step
// or broken; an answer about a key is in c.err. The quiet sets that an
// answer shows answered are answered (c itself is the caller's to).
func (r *answers) answer(c *Call) error {
	if c.quiet {
		r.quiet = append(r.quiet, c)
		return nil
	}
	for {
		line, err := readLine(r.br)
		if err != nil {
			return err
		}
		if r.head < len(r.quiet) {
			if tok, ok := opaque(line); ok {
				if err := r.refused(tok, line); err != nil {
					return err
				}
				continue
			}
			if c.op == opNoop || c.op == OpGet || c.op == OpFlags {
				if e, ok := serverError(line); ok {
					// A quiet set's (a get draws none): see above.
					r.settle(e, len(r.quiet)-r.head > 1)
					continue
				}
			}
		}
		// c's answer: the quiet sets before it that drew no refusal
		// were stored.
		r.settle(nil, false)
		if c.op == opNoop {
			if string(line) != "MN" {
				return fmt.Errorf("memcache: unexpected answer %q", answerForLog(line))
			}
			return nil
		}
		if err := parseAnswer(r.br, line, c); err != nil && !IsAnswer(err) {
			return err
		}
		return nil
	}
}

// refused answers the quiet set whose token tok is with its refusal line,
// and the ones before it as stored.
func (r *answers) refused(tok uint32, line []byte) error {
	i := r.head
	for i < len(r.quiet) && r.quiet[i].token != tok {
		i++
	}
	if i == len(r.quiet) {
		return fmt.Errorf("memcache: answer for no command waiting %q", answerForLog(line))
	}
	q := r.quiet[i]
	switch string(line[:min(len(line), 3)]) {
	case "NS ":
		q.err = ErrNotStored
	case "EX ":
		q.err = ErrCASConflict
	case "NF ":
		q.err = ErrCacheMiss
	default:
		return fmt.Errorf("memcache: unexpected answer %q", answerForLog(line))
	}
	for _, s := range r.quiet[r.head:i] {
		s.err = nil
		s.answered()
	}
	r.quiet[i] = nil
	r.head = i + 1
	q.answered()
	r.compact()
	return nil
}

// settle answers every quiet set waiting with err (nil: stored). all says
// that err may be only one's, not known which.
func (r *answers) settle(err error, all bool) {
	for i := r.head; i < len(r.quiet); i++ {
		r.quiet[i].err = err
		r.quiet[i].answered()
		r.quiet[i] = nil
		if err != nil && !all {
			r.head = i + 1
			r.compact()
			return
		}
	}
	r.head = 0
	r.quiet = r.quiet[:0]
}

// fail answers every quiet set waiting with err, the link's failure.
func (r *answers) fail(err error) {
	for i := r.head; i < len(r.quiet); i++ {
		r.quiet[i].err = err
		r.quiet[i].answered()
		r.quiet[i] = nil
	}
	r.head = 0
	r.quiet = r.quiet[:0]
}

// compact reuses the slice once nothing waits in it.
func (r *answers) compact() {
	if r.head == len(r.quiet) {
		r.head = 0
		r.quiet = r.quiet[:0]
	}
}

// opaque returns the token of an answer's O flag: the flags follow the
// two-letter code, separated by spaces.
func opaque(line []byte) (uint32, bool) {
	if len(line) < 3 || line[2] != ' ' {
		return 0, false
	}
	for rest := line[3:]; len(rest) > 0; {
		f := rest
		if i := bytes.IndexByte(rest, ' '); i >= 0 {
			f, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if len(f) > 1 && f[0] == 'O' {
			var n uint64
			for _, d := range f[1:] {
				if d < '0' || d > '9' || n > 1<<32-1 {
					return 0, false
				}
				n = n*10 + uint64(d-'0')
			}
			return uint32(n), n <= 1<<32-1
		}
	}
	return 0, false
}

// serverError returns the error of a SERVER_ERROR line.
func serverError(line []byte) (error, bool) {
	if !bytes.HasPrefix(line, []byte("SERVER_ERROR")) {
		return nil, false
	}
	return fmt.Errorf("memcache: %s: %w", line, ErrServer), true
}
