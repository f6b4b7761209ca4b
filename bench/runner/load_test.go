package main

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestHistogram(t *testing.T) {
	prev := -1
	for us := uint64(0); us <= histMaxUs; us += 1 + us/97 {
		i := histIndex(us)
		if i < prev || i >= histSize {
			t.Fatalf("histIndex(%d) = %d after %d (size %d)", us, i, prev, histSize)
		}
		if histUpper(i) < us || (i > 0 && histUpper(i-1) >= us) {
			t.Fatalf("%d µs in bucket %d, whose range ends at %d (previous at %d)", us, i, histUpper(i), histUpper(i-1))
		}
		if up := histUpper(i); float64(up-us) > 0.035*float64(us)+1 {
			t.Fatalf("bucket of %d µs reaches %d: over 3.5%%", us, up)
		}
		prev = i
	}
	if got := histIndex(1 << 40); got != histSize-1 {
		t.Errorf("a latency past the range goes to bucket %d, want the last (%d)", got, histSize-1)
	}
	var s second
	for us := uint64(1); us <= 100; us++ {
		s.hist[histIndex(us*1000)].Add(1)
	}
	if p := s.percentile(0.99); p < 99 || p > 99*1.035 {
		t.Errorf("p99 of 1..100 ms = %.2f ms", p)
	}
	if m := s.max(); m < 100 || m > 100*1.035 {
		t.Errorf("max of 1..100 ms = %.2f ms", m)
	}
}

var checkTests = []struct {
	name      string
	cookie    string // the client's before the answer
	confirmed uint64
	status    int
	setCookie string
	body      string
	want      string
}{
	{"first answer", "", 0, 200, "SPSESSIONID=abc; Path=/; HttpOnly", "", ""},
	{"kept", "SPSESSIONID=abc", 4, 200, "", "c7.4", ""},
	{"a later write that timed out", "SPSESSIONID=abc", 4, 200, "", "c7.5", ""},
	{"older value", "SPSESSIONID=abc", 4, 200, "", "c7.3", staleOlder},
	{"session gone", "SPSESSIONID=abc", 4, 200, "", "", staleNew},
	{"session replaced", "SPSESSIONID=abc", 4, 200, "SPSESSIONID=xyz; Path=/", "", staleNew},
	{"another client's", "SPSESSIONID=abc", 4, 200, "", "c8.4", staleForeign},
	{"error status", "SPSESSIONID=abc", 4, 503, "", "session store unavailable", "status 503"},
}

func TestClientCheck(t *testing.T) {
	for _, tt := range checkTests {
		t.Run(tt.name, func(t *testing.T) {
			c := &client{id: 7, sent: 6, confirmed: tt.confirmed}
			if tt.cookie != "" {
				c.cookie = []byte(tt.cookie)
			}
			var resp fasthttp.Response
			resp.SetStatusCode(tt.status)
			if tt.setCookie != "" {
				resp.Header.Set("Set-Cookie", tt.setCookie)
			}
			resp.SetBodyString(tt.body)
			if got := c.check(nil, &resp, "SPSESSIONID"); got != tt.want {
				t.Errorf("check = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCharted(t *testing.T) {
	events := []event{
		{T: 5, Name: "kill n1", Source: "action"},
		{T: 5.01, Name: "n1 down", Source: "observed"},
		{T: 7.3, Name: "n2 down (no fault)", Source: "observed"},
		{T: 8.0, Name: "n2 catching_up", Source: "observed"},
		{T: 8.1, Name: "n2 up", Source: "observed"},
		{T: 10, Name: "n1 restarted", Source: "action"},
		{T: 10.9, Name: "n1 catching_up", Source: "inferred"},
		{T: 11, Name: "n1 up", Source: "observed"},
		{T: 30.01, Name: "backend 1 out", Source: "observed"},
		{T: 40, Name: "kill n1 (final check)", Source: "action"},
	}
	var got []string
	for _, e := range charted(events, 40) {
		got = append(got, e.Name)
	}
	want := []string{"kill n1", "n2 down (no fault)", "n1 restarted", "n1 catching_up", "n1 up"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("charted = %q, want %q", got, want)
	}
}
