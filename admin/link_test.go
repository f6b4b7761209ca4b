package admin

// The admin pages are tested against every kind of shared store: New
// builds the Redis one only when its package is linked.
import _ "sessionproxy/sessionstore/redis"
