package main

import (
	"os"
	"time"
)

// acmeRenewCheck is how often ACME certificates' expiry is checked: 0 is
// certmagic's default (10 minutes). SESSIONPROXY_ACME_RENEW_CHECK (a Go
// duration) shortens it for the renewal test, whose CA issues
// certificates that last seconds; it is not a configuration key because
// real certificates last days.
var acmeRenewCheck = func() time.Duration {
	d, _ := time.ParseDuration(os.Getenv("SESSIONPROXY_ACME_RENEW_CHECK"))
	return d
}()
