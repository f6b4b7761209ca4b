package sessionstore

// RedisStatus describes one Redis server in /status.
type RedisStatus struct {
	Addr string `json:"addr"`
	Up   bool   `json:"up"` // answered the last PING
}
