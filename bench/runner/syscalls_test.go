package main

import (
	"strings"
	"testing"
)

// straceSummary is strace 6.1's -c output as it comes.
const straceSummary = `% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 48.61    0.412263          10     40211           write
 30.02    0.254601           6     40987      6122 read
 12.00    0.101774          33      3021       412 futex
  0.01    0.000012          12         1           getsockopt
------ ----------- ----------- --------- --------- ----------------
100.00    0.768650           9     84220      6534 total
`

func TestParseStraceSummary(t *testing.T) {
	got, err := parseStraceSummary(strings.NewReader(straceSummary))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]straceCount{"write": {40211, 0}, "read": {40987, 6122}, "futex": {3021, 412}, "getsockopt": {1, 0}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %+v, want %+v", k, got[k], v)
		}
	}
}

func TestParseStraceSummaryEmpty(t *testing.T) {
	if _, err := parseStraceSummary(strings.NewReader("strace: Process 12 detached\n")); err == nil {
		t.Fatal("no error for a summary without system calls")
	}
}

func TestSyscallMarkdownPerRequest(t *testing.T) {
	md := syscallMarkdown([]traced{
		{Target: "a", Path: "/plain", Requests: 1000, Counts: map[string]straceCount{"write": {2000, 0}, "read": {2500, 500}}},
		{Target: "b", Path: "/plain", Requests: 500, Counts: map[string]straceCount{"writev": {1000, 0}}},
	})
	for _, line := range []string{"| read | 2.500 (0.500) | |", "| write | 2.000 | |", "| writev | | 2.000 |", "| **total** | **4.50** | **2.00** |"} {
		if !strings.Contains(md, line) {
			t.Errorf("no line %q in\n%s", line, md)
		}
	}
}
