package sessionstore_test

// The stores in packages of their own register with sessionstore when
// linked in: this links them into the package's test binary, so that its
// tests (TestStoreBehaviours, the Store tests over memcached nodes, the Redis
// tests) build them through New as
// the proxy does.
import (
	_ "sessionproxy/sessionstore/memcached"
	_ "sessionproxy/sessionstore/redis"
)
