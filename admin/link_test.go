package admin

// The memcached and Redis stores register with sessionstore when linked
// in: the sessions and status tests build them through sessionstore.New as
// cmd does.
import (
	_ "sessionproxy/sessionstore/memcached"
	_ "sessionproxy/sessionstore/redis"
)
