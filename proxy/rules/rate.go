package rules

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// Rate is a number of requests per unit of time, as nginx's limit_req_zone
// writes it: "10r/s" or "30r/m".
type Rate struct {
	// Interval is the time one request's share of the rate lasts: 100ms
	// for 10r/s.
	Interval time.Duration
}

// maxPerSecond bounds a rate so that its Interval is at least a
// microsecond: a rate above it would round to no limit at all.
const maxPerSecond = 1_000_000

// ParseRate reads "Nr/s" or "Nr/m", N a whole number from 1 (up to a
// million per second).
func ParseRate(s string) (Rate, error) {
	num, unit, ok := strings.Cut(s, "r/")
	if !ok || num == "" {
		return Rate{}, errors.New(`a rate is "Nr/s" or "Nr/m", as "10r/s"`)
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return Rate{}, errors.New(`a rate is "Nr/s" or "Nr/m", N a whole number`)
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 1 {
		return Rate{}, errors.New("a rate needs at least 1 request per unit")
	}
	var per time.Duration
	switch unit {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	default:
		return Rate{}, errors.New(`a rate's unit is "r/s" or "r/m"`)
	}
	if n > maxPerSecond*int64(per/time.Second) {
		return Rate{}, errors.New("a rate above 1000000r/s is no limit")
	}
	return Rate{Interval: per / time.Duration(n)}, nil
}
