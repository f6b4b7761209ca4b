package proxy

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// The forwarding headers' model, written apart from the code under test,
// in strings: what CONTRACT section 12 says the backend gets.

// fuzzTrusted is real_ip_from in FuzzForwarded; the fuzzer picks the peer,
// in or out of it.
var fuzzTrusted = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}

func inFuzzTrusted(a netip.Addr) bool {
	for _, p := range fuzzTrusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// modelEntry reads one X-Forwarded-For entry as netip does: an address or
// an address with a port, no zone.
func modelEntry(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), a.Zone() == ""
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), ap.Addr().Zone() == ""
	}
	return netip.Addr{}, false
}

// modelEntries splits a joined X-Forwarded-For as nginx does.
func modelEntries(xff string) []string {
	return strings.FieldsFunc(xff, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
}

// forwardingModel is what the backend must get, from the request as the
// client sent it.
type forwardingModel struct {
	xff, realIP, proto, host string
	client                   netip.Addr
	entries                  []string // of the client's X-Forwarded-For
}

func modelForwarding(before headerModel, host string, peer netip.Addr, realIPFrom bool) forwardingModel {
	var lines []string
	var proto, fhost string
	var sawProto, sawHost bool
	for _, p := range before.pairs {
		v := strings.Trim(p[1], " \t")
		switch p[0] {
		case "x-forwarded-for":
			if v != "" {
				lines = append(lines, v)
			}
		case "x-forwarded-proto":
			if !sawProto {
				proto, sawProto = v, true
			}
		case "x-forwarded-host":
			if !sawHost {
				fhost, sawHost = v, true
			}
		}
	}
	joined := strings.Join(lines, ", ")
	m := forwardingModel{client: peer, proto: "http", host: host, entries: modelEntries(joined)}
	trusted := realIPFrom && inFuzzTrusted(peer)
	switch {
	case realIPFrom && !trusted:
		m.xff = peer.String()
	case joined == "":
		m.xff = peer.String()
	default:
		m.xff = joined + ", " + peer.String()
	}
	if trusted {
		for i := len(m.entries) - 1; i >= 0; i-- {
			a, ok := modelEntry(m.entries[i])
			if !ok {
				break
			}
			m.client = a
			if !inFuzzTrusted(a) {
				break
			}
		}
		if proto != "" {
			m.proto = proto
		}
		if fhost != "" {
			m.host = fhost
		}
	}
	m.realIP = m.client.String()
	return m
}

var forwardedSeeds = []string{
	duplicateForwarding,
	"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nx-forwarded-for: 203.0.113.7\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6, 203.0.113.7\r\nX-Forwarded-For: 10.0.0.2,10.0.0.1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.3\r\nX-Forwarded-For: ,, 10.0.0.1 \r\nX-Forwarded-For:\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6, bogus, 10.0.0.1\r\nX-Real-Ip: 6.6.6.6\r\nX-Real-Ip: 6.6.6.7\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: [2001:db8::7]:443, 203.0.113.7:8080, [::ffff:10.0.0.1]:1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 2001:db8::7, 2001:db9::1, fe80::1%eth0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto:\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: h1\r\nX-Forwarded-Host: h2\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 6.6.6.6\r\nX-Forwarded-For: 1.2.3.4:99999, 1.2.3.4:080\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\n 6.6.6.6\r\n\r\n",
}

// FuzzForwarded sends arbitrary requests, forwarding lines of any number
// and content, through RealIP and setForwarded as the Router and Proxy do,
// from a peer the fuzzer picks, without real_ip_from or with it: exactly
// one line of each forwarding header comes out, in the header and on the
// wire, with the model's values; the client is the peer or an address the
// client's X-Forwarded-For held; and a second request on the same
// connection gets the same answer (the client's address is reused per
// connection).
func FuzzForwarded(f *testing.F) {
	for _, s := range forwardedSeeds {
		for _, peer := range []uint32{0x7f000001, 0x0a000005} {
			f.Add([]byte(s), peer, false)
			f.Add([]byte(s), peer, true)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte, peerBits uint32, realIPFrom bool) {
		var ri *RealIP
		if realIPFrom {
			ri = &RealIP{Trusted: fuzzTrusted}
		}
		peer := netip.AddrFrom4([4]byte{byte(peerBits >> 24), byte(peerBits >> 16), byte(peerBits >> 8), byte(peerBits)})
		var ctx fasthttp.RequestCtx
		ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: peer.AsSlice(), Port: 1234}, nil)
		var e headerEditor
		var first string
		for round := range 2 {
			ctx.Request.Reset()
			if err := ctx.Request.ReadLimitBody(bufio.NewReaderSize(bytes.NewReader(raw), 64<<10), 64<<10); err != nil {
				return
			}
			h := &ctx.Request.Header
			before := modelOf(h.All())
			want := modelForwarding(before, string(h.Host()), peer, realIPFrom)

			ri.apply(&ctx) // as Router.ServeHTTP, then Proxy.prepare
			e.readForwarded(h)
			e.cleanRequest(h, false, peerTrusted(&ctx))
			e.setForwarded(&ctx)

			after := modelOf(h.All())
			got := map[string][]string{}
			for _, p := range after.pairs {
				got[p[0]] = append(got[p[0]], p[1])
			}
			for name, w := range map[string]string{"x-forwarded-for": want.xff, "x-real-ip": want.realIP,
				"x-forwarded-proto": want.proto, "x-forwarded-host": want.host} {
				if g := got[name]; len(g) != 1 || g[0] != w {
					t.Fatalf("round %d: %s: got %q, want exactly %q", round, name, g, w)
				}
			}
			if c, ok := addrOf(ctx.RemoteAddr()); !ok || c != want.client {
				t.Fatalf("round %d: RemoteAddr %v, want %v", round, ctx.RemoteAddr(), want.client)
			}
			if want.client != peer && !modelListed(want.entries, want.client) {
				t.Fatalf("client %v is neither the peer %v nor in X-Forwarded-For %q", want.client, peer, want.entries)
			}
			if !forwardable(&ctx.Request) {
				continue
			}
			var wire bytes.Buffer
			bw := bufio.NewWriter(&wire)
			if err := ctx.Request.Write(bw); err != nil {
				t.Fatalf("writing the request: %v", err)
			}
			bw.Flush()
			r, err := http.ReadRequest(bufio.NewReader(&wire))
			if err != nil {
				continue // no header a backend sees
			}
			for _, name := range []string{"X-Forwarded-For", "X-Real-Ip", "X-Forwarded-Proto", "X-Forwarded-Host"} {
				if len(r.Header.Values(name)) != 1 {
					t.Fatalf("%s on the wire: %q", name, r.Header.Values(name))
				}
			}
			if round == 0 {
				first = wire.String()
			} else if wire.String() != first {
				t.Fatalf("the second request on the connection differs:\n%s\nfirst:\n%s", wire.String(), first)
			}
		}
	})
}

func modelListed(entries []string, a netip.Addr) bool {
	for _, s := range entries {
		if b, ok := modelEntry(s); ok && b == a {
			return true
		}
	}
	return false
}

// FuzzParseForwardedAddr holds the allocation-free entry parser to
// netip's: the same address, or both refuse.
func FuzzParseForwardedAddr(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "203.0.113.7:80", "[2001:db8::1]:443", "2001:db8::1", "::ffff:10.0.0.1",
		"[::ffff:1.2.3.4]:1", "[1.2.3.4]:80", "fe80::1%eth0", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:0080", "01.2.3.4", "", "[", "[]:1", "::"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := parseForwardedAddr(b)
		want, wantOK := modelEntry(string(b))
		if ok != wantOK || (ok && got != want) {
			t.Fatalf("%q: got %v %v, netip says %v %v", b, got, ok, want, wantOK)
		}
	})
}
