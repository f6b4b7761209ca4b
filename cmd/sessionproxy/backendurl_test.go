package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A backend URL that check accepts is one that run can use: the two used
// to parse it apart, and run refused what check had passed.
func TestBackendURLCheckAndRunAgree(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	t.Cleanup(be.Close)
	host := strings.TrimPrefix(be.URL, "http://")
	for _, url := range []string{"HTTP://" + host, "http://" + host + "/", "http://" + host + "?", "http://" + host + "#"} {
		conf := "backends:\n  - url: '" + url + "'\n"
		if code, _, errOut := run("check", "-config", writeFile(t, conf)); code != 0 {
			t.Fatalf("check %s: %d %q", url, code, errOut)
		}
		p := startProcess(t, "listen: '{{listen}}'\n"+conf)
		resp, err := http.Get("http://" + p.addr + "/")
		if err != nil {
			t.Fatalf("run with backend %s: %v\n%s", url, err, p.stderr())
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("run with backend %s: %d\n%s", url, resp.StatusCode, p.stderr())
		}
	}
}
