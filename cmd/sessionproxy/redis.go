package main

import (
	"sessionproxy/config"
	"sessionproxy/sessionstore"
	_ "sessionproxy/sessionstore/redis" // the Redis store, built by sessionstore.New when session.redis names addresses
)

// redisOptions turns session.redis into the store's options; no addresses
// leave Redis unused.
func redisOptions(r config.Redis) sessionstore.RedisOptions {
	return sessionstore.RedisOptions{
		Addrs:        r.Addrs,
		Username:     r.Username,
		Password:     r.Password,
		KeyPrefix:    r.KeyPrefix,
		Timeout:      r.Timeout.Std(),
		WaitReplicas: r.WaitReplicas,
		ClientCache:  r.ClientCache,
	}
}
