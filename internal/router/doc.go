// Package router is lunorad's HTTP surface (PROTOCOL §2 and §3): it decodes
// the data-plane routes (get, any, pool), retries provisioning failures,
// reverse-proxies requests, streams and WebSockets to containers, writes the
// contract's exact error bodies, and serves the JSON control plane, the SSE
// event stream, /healthz and /metrics.
//
// The router never talks to Docker. It consumes three small interfaces it
// declares itself (Instances and Lease for the data plane, Control for the
// control plane); cmd/lunorad adapts the lifecycle Manager to them.
//
// Decisions where the contract is silent, stated once here:
//
//   - The container sees the client's headers as sent, minus hop-by-hop and
//     the per-call tuning headers. lunorad adds no X-Forwarded-* or Forwarded
//     header (Cloudflare adds none between a Durable Object and its
//     container) and keeps any the client sent itself.
//   - The request path after /fetch and the query string are forwarded byte
//     for byte; Host is "container".
//   - The lunora-instance response header is url.PathEscape of the decoded
//     id, which decodes back to the same id.
//   - An instance id must be valid UTF-8 (ids become Docker labels).
//   - Tuning headers are validated on every data-plane route, including the
//     ones they do not apply to, so a typo is reported instead of ignored.
//   - A request whose body was never read by an attempt (the instance could
//     not be acquired, or refused the connection) may be retried even when
//     the body is not replayable: nothing was sent yet.
//   - Past its last attempt, pool returns the last outcome; a start error
//     is retried on another instance like any other 5xx, except errors no
//     other instance can fix (an unpublished target port, an unknown
//     container, a daemon shutting down).
//   - Response bodies are flushed to the client as they arrive when they
//     are SSE, chunked or larger than one 32 KiB copy buffer; a smaller
//     fixed-length body is written once, at its end (the per-response flush
//     timer of FlushInterval -1 costs a third of the warm-path throughput).
//   - A WebSocket whose container side ends without a close frame (the
//     container died or its instance stopped) gets one sent to the client
//     at a frame boundary: 1000, as Cloudflare's library turns the 1006 the
//     client would see into 1000, or 1001 when lunorad shuts down.
//   - /healthz answers 503 {"status":"draining"} once Drain was called, so a
//     supervisor sees the daemon is on its way out.
package router
