package router

import (
	"fmt"
	"net/http"
	"time"
)

// Request headers that tune one call (PROTOCOL §2); all are removed before
// the request is forwarded.
const (
	headerAttempts     = "Lunora-Attempts"
	headerBackoffMs    = "Lunora-Backoff-Ms"
	headerMaxBackoffMs = "Lunora-Max-Backoff-Ms"
	headerPoolSize     = "Lunora-Pool-Size"
	headerTargetPort   = "Cf-Container-Target-Port"
	// headerInstance names the instance that answered (response).
	headerInstance = "Lunora-Instance"
)

var tuningHeaders = [...]string{headerAttempts, headerBackoffMs, headerMaxBackoffMs, headerPoolSize, headerTargetPort}

// Retry defaults of @lunora/container (lunora-container.md §3).
const (
	defaultAttempts    = 3
	defaultBackoff     = 500 * time.Millisecond // get/any: waiting for a start
	defaultPoolBackoff = 100 * time.Millisecond // pool: re-picking an instance
	defaultMaxBackoff  = 30 * time.Second
	maxHeaderMillis    = 24 * 60 * 60 * 1000 // a day; larger values are typos
	maxCountHeader     = 1_000_000           // attempts and pool size
)

// tuning is one request's retry policy and routing overrides.
type tuning struct {
	attempts   int
	backoff    time.Duration
	maxBackoff time.Duration
	poolSize   int // 0: use the container's default
	targetPort int // 0: use the lease's default port
}

// parseTuning reads the tuning headers. Defaults depend on the route kind;
// an invalid value is a 400 whose body names the header.
func parseTuning(h http.Header, kind routeKind) (tuning, error) {
	t := tuning{attempts: defaultAttempts, backoff: defaultBackoff, maxBackoff: defaultMaxBackoff}
	if kind == kindPool {
		t.backoff = defaultPoolBackoff
	}
	if v, ok, err := headerInt(h, headerAttempts, 1, maxCountHeader); err != nil {
		return t, err
	} else if ok {
		t.attempts = v
	}
	if v, ok, err := headerInt(h, headerBackoffMs, 0, maxHeaderMillis); err != nil {
		return t, err
	} else if ok {
		t.backoff = time.Duration(v) * time.Millisecond
	}
	if v, ok, err := headerInt(h, headerMaxBackoffMs, 0, maxHeaderMillis); err != nil {
		return t, err
	} else if ok {
		t.maxBackoff = time.Duration(v) * time.Millisecond
	}
	if v, ok, err := headerInt(h, headerPoolSize, 1, maxCountHeader); err != nil {
		return t, err
	} else if ok {
		t.poolSize = v
	}
	if v, ok, err := headerInt(h, headerTargetPort, 1, 65535); err != nil {
		return t, err
	} else if ok {
		t.targetPort = v
	}
	return t, nil
}

// wait is the pause before attempt k (k >= 1): backoff doubling from the
// first retry, capped at maxBackoff.
func (t tuning) wait(k int) time.Duration {
	d := t.backoff
	for i := 1; i < k && d < t.maxBackoff; i++ {
		d *= 2
	}
	return min(d, t.maxBackoff)
}

// headerInt parses a header holding a plain decimal integer in [lo, hi].
// Signs, spaces, repeats and anything else are refused: these headers are
// written by code, and a malformed one is a bug worth reporting.
func headerInt(h http.Header, name string, lo, hi int) (v int, ok bool, err error) {
	vals := h.Values(name)
	switch len(vals) {
	case 0:
		return 0, false, nil
	case 1:
	default:
		return 0, false, fmt.Errorf("Invalid %s header: sent %d times, expected once", lowerName(name), len(vals))
	}
	s := vals[0]
	n, valid := parseDecimal(s, hi)
	if !valid || n < lo {
		return 0, false, fmt.Errorf("Invalid %s header %q: expected an integer from %d to %d", lowerName(name), s, lo, hi)
	}
	return n, true, nil
}

// parseDecimal parses s as digits only, failing beyond limit.
func parseDecimal(s string, limit int) (int, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n <= limit
}

// lowerName spells a canonical header name the way the docs do.
func lowerName(canonical string) string {
	b := []byte(canonical)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
