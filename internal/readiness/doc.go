// Package readiness decides when a freshly started container instance may
// receive traffic. It implements lifecycle.Prober.
//
// The gate has two phases that share one deadline, start + ProbeTarget.Timeout
// (30s when zero):
//
//  1. Every port in ProbeTarget.Ports must answer an HTTP request. Any status
//     counts, 404 and 500 included, but a TCP accept does not: Docker's
//     userland proxy accepts on the published port before the app listens and
//     then resets the connection or closes it (EOF). Connection refused,
//     reset, EOF and "server closed idle connection" all mean "not ready
//     yet". The request is Cloudflare's port probe, GET http://ping/ (Host
//     "ping", path "/"), as @cloudflare/containers sends through
//     getTcpPort(p).fetch("http://ping").
//  2. Once every port answers, every readyOn check is retried until it
//     returns exactly its status. As @lunora/container does, the request is
//     GET http://container<path>, so the app sees Host "container".
//
// Probes of one phase run in parallel. Each attempt is cut after
// max(500ms, deadline-now), Lunora's rule, so an attempt started just before
// the deadline may still succeed. Between failed attempts a probe waits
// InitialInterval, doubling up to MaxInterval (2ms and 10ms by default).
// Lunora waits 500ms; lunorad polls faster because the time between the app
// becoming ready and the held request being released is latency the user
// sees, and loopback probes are cheap.
//
// Where the libraries are silent lunorad chooses, and says so: redirects are
// not followed (the status is compared as returned, and a probe never leaves
// the container's published port), bodies are not read (a streaming "/"
// must not hold a probe), connections are not kept alive (a connection that
// reached docker-proxy before the app listened is useless), and requests
// carry "User-Agent: lunorad-readiness" so app logs can tell them apart.
//
// When the deadline passes WaitReady returns a *lifecycle.NotReadyError for
// the first port (phase 1) or readyOn check (phase 2), in configuration
// order, that had not passed. When ProbeTarget.Exited closes first it returns
// at once with an *ExitedError, which wraps lifecycle.ErrExited. When ctx
// ends it returns ctx's error, wrapped.
package readiness
