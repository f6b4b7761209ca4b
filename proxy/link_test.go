package proxy

// The memcached store registers with sessionstore when linked in: the
// session tests build it through sessionstore.New as cmd does (the Redis
// tests link sessionstore/redis in redis_test.go).
import _ "sessionproxy/sessionstore/memcached"
