package admin

// The Redis store registers with sessionstore when linked in: the sessions
// and status tests build it through sessionstore.New as cmd does.
import _ "sessionproxy/sessionstore/redis"
