package main

import (
	"fmt"
	"log"
	"net/http"
	"strconv"

	"github.com/gorilla/websocket"
)

// chat is a WebSocket echo room that knows its user from the session. The
// handshake is an ordinary request to sessionproxy: it arrives with the
// X-Session-* headers, and X-Session-Set-* headers on the 101 change the
// session as on any answer (here: how many chats this session opened).
// After the 101 the proxy relays frames untouched; the session is read once,
// at the handshake.
func chat(name string) http.HandlerFunc {
	upgrader := websocket.Upgrader{
		// The browser's Origin is the site behind the proxy; a real app
		// checks it against its own host to stop cross-site sockets.
		CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "" || sameHost(r) },
	}
	return func(w http.ResponseWriter, r *http.Request) {
		user := r.Header.Get("X-Session-Attr-User")
		if user == "" {
			user = "guest"
		}
		chats, _ := strconv.Atoi(r.Header.Get("X-Session-Attr-Chats"))
		chats++
		set := http.Header{"X-Session-Set-Chats": {strconv.Itoa(chats)}}
		conn, err := upgrader.Upgrade(w, r, set)
		if err != nil {
			return // Upgrade has answered the client
		}
		defer conn.Close()
		greeting := fmt.Sprintf("hello %s, chat #%d on %s", user, chats, name)
		if err := conn.WriteMessage(websocket.TextMessage, []byte(greeting)); err != nil {
			return
		}
		for {
			kind, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if err := conn.WriteMessage(kind, append([]byte(user+": "), msg...)); err != nil {
				log.Printf("chat: %v", err)
				return
			}
		}
	}
}

func sameHost(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	return origin == "http://"+r.Host || origin == "https://"+r.Host
}
