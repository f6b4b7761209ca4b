// Package chaos holds the fault harness of issue 28 (chaos_test.go, build
// tag chaos; `make chaos`): several sessionproxy processes over memcached
// nodes behind cuttable relays, clients recording every session operation,
// a nemesis killing, freezing, partitioning and restarting nodes and
// proxies, and a porcupine model of what CONTRACT sections 3, 8, 11 and
// 12 promise checked against the recorded history. docs/guarantees.md has
// the results.
package chaos
