// Command example is a minimal stateless backend for sessionproxy: its
// session arrives in X-Session-* request headers and changes go back in
// X-Session-* response headers.
//
//	GET /            counts visits in the session
//	GET /login?user= sets the user and rotates the session ID (as after any login)
//	GET /logout      invalidates the session
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"strconv"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9001", "listen address")
	name := flag.String("name", "go", "name shown in responses")
	flag.Parse()
	log.Fatal(http.ListenAndServe(*listen, handler(*name)))
}

func handler(name string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		counter, _ := strconv.Atoi(r.Header.Get("X-Session-Attr-Counter"))
		counter++
		w.Header().Set("X-Session-Set-Counter", strconv.Itoa(counter))
		reply(w, name, r, counter)
	})
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Session-Set-User", r.URL.Query().Get("user"))
		w.Header().Set("X-Session-Rotate", "1") // a new ID after login defeats session fixation
		reply(w, name, r, 0)
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Session-Invalidate", "1")
		reply(w, name, r, 0)
	})
	return mux
}

func reply(w http.ResponseWriter, name string, r *http.Request, counter int) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"backend": name,
		"session": r.Header.Get("X-Session-Id"),
		"user":    r.Header.Get("X-Session-Attr-User"),
		"counter": counter,
	})
}
