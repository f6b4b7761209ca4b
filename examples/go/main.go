// Command example is a minimal stateless backend for sessionproxy: its
// session arrives in X-Session-* request headers and changes go back in
// X-Session-* response headers.
//
//	GET /            counts visits in the session
//	GET /login?user= sets the user and rotates the session ID (as after any login)
//	GET /logout      invalidates the session
//	GET /attrs       shows every session attribute
//	POST /attrs      sets the attributes of a JSON object {"name": "value", ...}
//	GET /chat        a WebSocket that greets the session's user and echoes (chat.go)
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"strconv"
	"strings"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9001", "listen address")
	name := flag.String("name", "go", "name shown in responses")
	flag.Parse()
	srv := &http.Server{
		Addr:    *listen,
		Handler: handler(*name),
		// The session arrives as one request header per attribute. Go's
		// default limit on a request's headers, 1 MB, holds a session of
		// sessionproxy's default max_size (64 KiB) many times over; set
		// it explicitly above twice max_size if you raise max_size past
		// 512 KiB. See docs/limits.md.
		MaxHeaderBytes: http.DefaultMaxHeaderBytes,
	}
	log.Fatal(srv.ListenAndServe())
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
	mux.HandleFunc("GET /chat", chat(name))
	mux.HandleFunc("GET /attrs", func(w http.ResponseWriter, r *http.Request) {
		reply(w, name, r, 0)
	})
	mux.HandleFunc("POST /attrs", func(w http.ResponseWriter, r *http.Request) {
		var set map[string]string
		if err := json.NewDecoder(r.Body).Decode(&set); err != nil {
			http.Error(w, "want a JSON object of strings: "+err.Error(), http.StatusBadRequest)
			return
		}
		for k, v := range set {
			w.Header().Set("X-Session-Set-"+k, v)
		}
		reply(w, name, r, 0)
	})
	return mux
}

func reply(w http.ResponseWriter, name string, r *http.Request, counter int) {
	attrs := map[string]string{}
	for k, v := range r.Header {
		// Go canonicalises header names: X-Session-Attr-Counter.
		if a, ok := strings.CutPrefix(k, "X-Session-Attr-"); ok {
			attrs[strings.ToLower(a)] = v[0]
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"backend": name,
		"session": r.Header.Get("X-Session-Id"),
		"user":    r.Header.Get("X-Session-Attr-User"),
		"counter": counter,
		"attrs":   attrs,
	})
}
