// Package rules holds the parsers and the state of the route rules of
// section 15 of the contract that both config (to check a file) and proxy
// (to apply it) need: request rates, the variable templates of redirect
// and try_files, htpasswd files, and the rate limiter's buckets. It
// imports the standard library and bcrypt only, so that config can ask it
// what is valid without linking the request path.
package rules
