package examples_test

import (
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestGoExampleChat runs the Go example's WebSocket chat behind the proxy:
// the handshake carries the logged-in user, and the 101 counts the chats
// in the session.
func TestGoExampleChat(t *testing.T) {
	goBin := filepath.Join(t.TempDir(), "example")
	if out, err := exec.Command("go", "build", "-o", goBin, "./go").CombinedOutput(); err != nil {
		t.Fatalf("building the Go example: %v\n%s", err, out)
	}
	base := startProxy(t, start(t, "go-1", goBin), start(t, "go-2", goBin))
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.Get(base + "/login?user=ann")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	d := websocket.Dialer{Jar: jar, HandshakeTimeout: 10 * time.Second}
	ws := "ws" + strings.TrimPrefix(base, "http") + "/chat"
	for n, want := range []string{"hello ann, chat #1 on go-", "hello ann, chat #2 on go-"} {
		conn, _, err := d.Dial(ws, nil)
		if err != nil {
			t.Fatalf("chat %d: %v", n+1, err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, greeting, err := conn.ReadMessage()
		if err != nil || !strings.HasPrefix(string(greeting), want) {
			t.Fatalf("chat %d greeting %q (%v), want %q...", n+1, greeting, err, want)
		}
		conn.WriteMessage(websocket.TextMessage, []byte("hi all"))
		if _, echo, err := conn.ReadMessage(); err != nil || string(echo) != "ann: hi all" {
			t.Fatalf("chat %d echo %q (%v)", n+1, echo, err)
		}
		conn.Close()
	}

	resp, err = c.Get(base + "/attrs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r reply
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Attrs["chats"] != "2" || r.User != "ann" {
		t.Fatalf("session after two chats: %+v (%v), want chats=2 for ann", r, err)
	}
}
