package fastcgi

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

// readAnswer reads a whole answer from in as the proxy does: the CGI head
// through a 4 KiB buffer, then the body, counting it without keeping it.
func readAnswer(in []byte) (status int, body int64, stderr int, err error) {
	r := new(Reader)
	r.Reset(bufio.NewReaderSize(bytes.NewReader(in), 512), func(b []byte) { stderr += len(b) })
	hr := bufio.NewReaderSize(r, 4096)
	if status, err = ReadHeader(hr, func(_, _ []byte) {}); err != nil {
		return 0, 0, stderr, err
	}
	body, err = io.Copy(io.Discard, hr)
	return status, body, stderr, err
}

// FuzzReader feeds arbitrary bytes to the reader as an application's
// answer: bogus lengths, paddings, types, request IDs, records cut short.
// It must never panic, never loop, and read at most what was sent.
func FuzzReader(f *testing.F) {
	ok := record(typeStdout, 1, []byte("Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhello"), 3)
	ok = append(ok, record(typeStderr, 1, []byte("warn"), 4)...)
	ok = append(ok, record(typeStdout, 1, nil, 0)...)
	ok = append(ok, endRequest(0, 0)...)
	f.Add(ok)
	f.Add(ok[:len(ok)-5])                                                   // dies mid-record
	f.Add(record(typeStdout, 1, []byte("X: y\n\n"), 255)[:20])              // dies in the padding
	f.Add([]byte{1, typeStdout, 0, 1, 0xff, 0xff, 0xff, 0, 'a'})            // a 65535-byte record that is not there
	f.Add([]byte{1, typeEndRequest, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0}) // no head at all
	f.Add(append(record(typeStderr, 1, bytes.Repeat([]byte("e"), 2000), 0), ok...))
	f.Add(record(typeStdout, 0, []byte("X: y\n\n"), 0))
	f.Fuzz(func(t *testing.T, in []byte) {
		_, body, stderr, _ := readAnswer(in)
		if body > int64(len(in)) || stderr > len(in) {
			t.Fatalf("read %d body and %d stderr bytes from %d", body, stderr, len(in))
		}
	})
}

// FuzzRecords frames a script's output and error text the way an
// application may (any split, any padding, stderr in between) and checks
// that the reader gives back exactly the output and the error text.
func FuzzRecords(f *testing.F) {
	f.Add([]byte("Content-Type: text/html\r\n\r\n<p>hi</p>"), []byte("PHP Notice"), uint16(7), uint8(3))
	f.Add([]byte("Status: 404 Not Found\n\n"), []byte{}, uint16(1), uint8(0))
	f.Add([]byte("Location: /x\r\n\r\n"+string(bytes.Repeat([]byte{0}, 1000))), []byte("e"), uint16(65535), uint8(255))
	f.Fuzz(func(t *testing.T, out, errText []byte, split uint16, pad uint8) {
		if split == 0 {
			split = 1
		}
		var in []byte
		rest, errRest := out, errText
		for len(rest) > 0 || len(errRest) > 0 {
			if len(errRest) > 0 {
				n := min(len(errRest), int(split))
				in = append(in, record(typeStderr, 1, errRest[:n], int(pad))...)
				errRest = errRest[n:]
			}
			if len(rest) > 0 {
				n := min(len(rest), int(split))
				in = append(in, record(typeStdout, 1, rest[:n], int(pad))...)
				rest = rest[n:]
			}
		}
		in = append(in, record(typeStdout, 1, nil, int(pad))...)
		in = append(in, endRequest(0, 0)...)

		var gotErr []byte
		r := new(Reader)
		r.Reset(bufio.NewReaderSize(bytes.NewReader(in), 64), func(b []byte) { gotErr = append(gotErr, b...) })
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, out) || !bytes.Equal(gotErr, errText) || !r.Ended() {
			t.Fatalf("err %v, stdout %q want %q, stderr %q want %q", err, got, out, gotErr, errText)
		}
	})
}

// FuzzParams: AppendParam's encoding reads back as the pairs written, in
// both length forms.
func FuzzParams(f *testing.F) {
	f.Add("SCRIPT_FILENAME", "/var/www/index.php")
	f.Add("HTTP_X_LONG", string(bytes.Repeat([]byte("v"), 300)))
	f.Add("", "")
	f.Fuzz(func(t *testing.T, name, value string) {
		b := AppendParam(nil, name, value)
		n, b := readLen(t, b)
		v, b := readLen(t, b)
		if n != len(name) || v != len(value) || string(b) != name+value {
			t.Fatalf("%q %q encoded as lengths %d %d", name, value, n, v)
		}
	})
}

func readLen(t *testing.T, b []byte) (int, []byte) {
	if b[0] < 128 {
		return int(b[0]), b[1:]
	}
	if len(b) < 4 {
		t.Fatal("short 4-byte length")
	}
	return int(b[0]&0x7f)<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3]), b[4:]
}
