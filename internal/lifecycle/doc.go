// Package lifecycle owns the life of every container instance: one state
// machine per (container, instance id) that starts the instance on demand
// (one start however many callers ask), holds callers until the readiness
// gate passes, counts requests in flight, stops idle instances (sleepAfter)
// and old ones (hardTimeout), enforces maxInstances, notices crashes,
// re-adopts containers left running by an earlier daemon and reports every
// transition as an event.
//
// It talks to the container engine only through the Runtime interface and
// to the instance's ports only through the Prober interface, both declared
// in runtime.go; every timer runs on an injected clock.
//
// Idleness (PROTOCOL §4, sleepAfter): an instance is idle when no request
// is in flight and no byte has moved on any of its open WebSocket or
// streamed connections for sleepAfter. A Lease is a request in flight until
// its holder calls Lease.Streaming (the container has answered with
// headers); from then on only the bytes it moves (Lease.Touch) renew the
// idle clock, so a silent WebSocket lets the instance sleep, and the sleep
// closes its Done like any stop.
//
// States (PROTOCOL §3): stopped → running (a start is in progress: image,
// container, readiness gate) → healthy (leases are granted only now) →
// stopping (stop, sleep, hard timeout, destroy or shutdown in progress) →
// stopped, or stopped_with_code when the container exited on its own.
//
// Rules for concurrent calls on one instance:
//   - Acquire and Start during a start join it; during a stop they wait for
//     the stop and then start a fresh container.
//   - Stop or Destroy during a start cancel the start; if its container is
//     already running it is stopped (or killed) like a healthy one, and the
//     callers waiting on the start get a final StartError.
//   - Stop during a stop joins it; Destroy during a stop also kills.
//   - Stop and Destroy on a stopped instance succeed and do nothing (Destroy
//     also removes an exited container kept for inspection and clears the
//     crash backoff).
package lifecycle
