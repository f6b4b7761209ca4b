package proxy

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAdminEndpoints(t *testing.T) {
	a := newTestBackend(t, "A")
	p := &Proxy{Pool: newPool(t, "round_robin", nil, a.url(), "http://"+freePort(t)), Settings: Settings{Retries: 1}}
	base := startProxy(t, p, ServerOptions{})
	get(t, base+"/")
	get(t, base+"/")
	admin := httptest.NewServer(AdminHandler(func() *Proxy { return p }))
	defer admin.Close()

	if r := get(t, admin.URL+"/healthz"); r.status != 200 || r.body != "ok\n" {
		t.Fatalf("/healthz = %d %q", r.status, r.body)
	}
	r := get(t, admin.URL+"/status")
	var st Status
	if err := json.Unmarshal([]byte(r.body), &st); err != nil || len(st.Backends) != 2 {
		t.Fatalf("/status = %q (%v)", r.body, err)
	}
	if !st.Backends[0].Up || st.Backends[0].URL != a.url() {
		t.Errorf("backend A status = %+v", st.Backends[0])
	}
	if st.Backends[1].Fails == 0 {
		t.Errorf("dead backend status = %+v, want fails > 0", st.Backends[1])
	}
	m := get(t, admin.URL+"/metrics").body
	for _, want := range []string{
		`sessionproxy_requests_total{code="200"} 2`,
		`sessionproxy_backend_up{upstream="default",backend="` + a.url() + `"} 1`,
		`sessionproxy_request_duration_seconds_bucket{le="`,
		`sessionproxy_request_duration_seconds_count 2`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
