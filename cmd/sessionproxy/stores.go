package main

import (
	"sessionproxy/config"
	"sessionproxy/sessionstore"
	"sessionproxy/sessionstore/memcached"
	"sessionproxy/sessionstore/redis"
)

// The shared stores this program has: importing a store's package
// registers its session: section with sessionstore (which config reads
// and checks) and its store (which sessionstore.New builds when the
// section is in use). Only the flags that set a store's servers name it.

// memcachedSettings is the session.memcached section of c, which -memcached
// and demo's -memcached set.
func memcachedSettings(c *config.Config) *memcached.Settings {
	return c.Session.Stores[sessionstore.KindMemcached].(*memcached.Settings)
}

// redisSettings is the session.redis section of c, which -redis sets.
func redisSettings(c *config.Config) *redis.Settings {
	return c.Session.Stores[sessionstore.KindRedis].(*redis.Settings)
}
