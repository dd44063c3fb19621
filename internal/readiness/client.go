package readiness

import (
	"net"
	"net/http"
	"time"
)

// Doer sends one probe request. *http.Client satisfies it; tests use fakes.
// Implementations must return promptly once the request's context is done.
type Doer interface {
	Do(req *http.Request) (*http.Response, error)
}

// dialTimeout bounds a connect to a published port. Loopback answers in
// microseconds; the bound only matters if the host is badly overloaded.
const dialTimeout = time.Second

// newHTTPClient returns the client probes use by default: its own transport
// (never http.DefaultTransport, whose pool and proxy settings belong to the
// rest of the process), no proxy, no keep-alives and no redirects.
func newHTTPClient() *http.Client {
	transport := &http.Transport{
		// Probes go to 127.0.0.1 only; an HTTP_PROXY in the environment
		// must never see them.
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   dialTimeout,
			KeepAlive: -1,
		}).DialContext,
		// A connection that reached docker-proxy before the app listened is
		// dead weight, and one that worked is not needed again: every
		// attempt dials afresh and nothing stays open after the gate.
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport: transport,
		// The check compares the status the app returned; following a
		// Location could also send the probe off the published port.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
