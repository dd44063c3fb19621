package lifecycle

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/lunora/lunorad/internal/config"
)

// maxAcquireStarts bounds how often one Acquire starts over after a start it
// waited for succeeded but the instance was stopped again before the lease
// could be taken (a stop racing the end of a start).
const maxAcquireStarts = 3

// Acquire returns a lease on a healthy instance, starting it if needed.
// Concurrent callers for one instance share one start (one Runtime.Run) and
// are held until the readiness gate passes. ctx bounds only this caller's
// wait: the start runs detached, bounded by StartTimeout, and finishes even
// if every caller has gone (the instance then idles out).
func (m *Manager) Acquire(ctx context.Context, container, id string) (*Lease, error) {
	c, err := m.container(container)
	if err != nil {
		return nil, err
	}
	if err := m.waitAdoption(ctx); err != nil {
		return nil, m.waitErr(c, id, err)
	}
	coldStart := false // this caller waited for a start
	for starts := 0; starts < maxAcquireStarts; {
		m.mu.Lock()
		if m.shuttingDown {
			m.mu.Unlock()
			return nil, ErrShuttingDown
		}
		inst := m.instanceLocked(c, id)
		if inst.start == nil && inst.stopping == nil {
			if inst.run != nil {
				lease := m.leaseLocked(inst, inst.run)
				lease.coldStart = coldStart
				m.mu.Unlock()
				return lease, nil
			}
			if err := m.admitAutoStartLocked(inst); err != nil {
				m.mu.Unlock()
				return nil, err
			}
			m.beginStartLocked(inst, startRequest{}) // sets inst.start, joined below
		}
		if op := inst.start; op != nil {
			op.waiters++
			coldStart = true
			m.mu.Unlock()
			if err := waitFor(ctx, op.done); err != nil {
				return nil, m.waitErr(c, id, err)
			}
			if op.err != nil {
				return nil, op.err
			}
			starts++
			continue
		}
		// A stop is in progress: wait for it, then start afresh.
		op := inst.stopping
		op.waiters++
		m.mu.Unlock()
		if err := waitFor(ctx, op.done); err != nil {
			return nil, m.waitErr(c, id, err)
		}
	}
	return nil, &NoInstanceError{Err: fmt.Errorf("container %q instance %q was stopped each time it became ready", c.Name, id)}
}

func (m *Manager) waitErr(c *config.Container, id string, err error) error {
	return fmt.Errorf("waiting for container %q instance %q: %w", c.Name, id, err)
}

// admitAutoStartLocked refuses a start triggered by traffic while the
// instance is in crash backoff or the container is at maxInstances.
func (m *Manager) admitAutoStartLocked(inst *instance) error {
	if now := m.clock.Now(); now.Before(inst.backoffUntil) {
		return &StartError{
			Container: inst.cfg.Name, Instance: inst.id, Retryable: true,
			Err: fmt.Errorf("container %q instance %q crashed %d times in a row within %s of starting; next start allowed in %s",
				inst.cfg.Name, inst.id, inst.crashes, crashWindow, inst.backoffUntil.Sub(now).Round(time.Millisecond)),
		}
	}
	return m.checkCapacityLocked(inst.cfg)
}

// checkCapacityLocked enforces maxInstances: instances starting, running or
// stopping count; other containers are not affected.
func (m *Manager) checkCapacityLocked(c *config.Container) error {
	if c.MaxInstances <= 0 {
		return nil
	}
	n := 0
	for _, inst := range m.instances[c.Name] {
		if inst.occupiesSlot() {
			n++
		}
	}
	if n >= c.MaxInstances {
		return &CapacityError{Container: c.Name, Max: c.MaxInstances}
	}
	return nil
}

func (m *Manager) leaseLocked(inst *instance, r *run) *Lease {
	// The idle timer, if armed, stays armed: when it fires it finds the
	// run busy or lastActivity recent, and waits for the rest.
	r.inFlight++
	r.lastActivity.Store(m.clock.Now().UnixNano())
	return &Lease{m: m, inst: inst, run: r, direct: r.direct}
}

func (m *Manager) release(l *Lease) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := l.run
	r.inFlight--
	if l.streaming {
		r.streaming--
	}
	r.lastActivity.Store(m.clock.Now().UnixNano())
	m.armIdleIfQuietLocked(l.inst, r)
}

// markStreaming stops counting l as a request in flight. A lease already
// released is left alone: release has counted it out.
func (m *Manager) markStreaming(l *Lease) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l.streaming || l.released.Load() {
		return
	}
	l.streaming = true
	r := l.run
	r.streaming++
	// The response headers just moved: that is activity too.
	r.lastActivity.Store(m.clock.Now().UnixNano())
	m.armIdleIfQuietLocked(l.inst, r)
}

// armIdleIfQuietLocked starts r's idle clock once no request is in flight,
// provided r is still the instance's current, healthy run (a lease can
// outlive its run).
func (m *Manager) armIdleIfQuietLocked(inst *instance, r *run) {
	if !r.busy() && inst.run == r && inst.status == StatusHealthy {
		m.armIdleLocked(inst, r, m.sleepAfter(inst.cfg))
	}
}

// minSleepAfter is the shortest idle time before an instance sleeps.
// `sleepAfter: 0s` (Lunora accepts it) means "sleep as soon as idle", but
// Cloudflare only checks idleness from an alarm, never in the instant a start
// completes; the floor gives the requests held by a cold start time to take
// their leases instead of finding the instance stopping.
const minSleepAfter = time.Second

// sleepAfter is c's idle time before sleeping. config.Load always sets it
// (10m by default), so 0 here was written as "0s".
func (m *Manager) sleepAfter(c *config.Container) time.Duration {
	return max(c.SleepAfter, minSleepAfter)
}

// armIdleLocked arms r's idle timer to fire after d, unless it is armed
// already: a pending timer re-checks everything when it fires and waits
// again for whatever part of sleepAfter the latest activity left, so
// requests never touch the runtime's timers. The callback carries r's
// generation.
func (m *Manager) armIdleLocked(inst *instance, r *run, d time.Duration) {
	if r.idleArmed {
		return
	}
	r.idleArmed = true
	if r.idleTimer != nil {
		r.idleTimer.Reset(d)
		return
	}
	gen := r.gen
	r.idleTimer = m.clock.AfterFunc(d, func() { m.onIdle(inst, gen) })
}

// onIdle stops the instance when it has been idle for sleepAfter: no
// request in flight and no activity for that long. Activity since the timer
// was armed (Touch, RenewActivity) only moved lastActivity, so the timer
// re-arms itself for the remaining time. Streaming leases still held see
// their Done close, as on any stop.
func (m *Manager) onIdle(inst *instance, gen uint64) {
	m.mu.Lock()
	r := inst.run
	if r != nil && r.gen == gen {
		r.idleArmed = false // this was its timer; the next quiet moment re-arms it
	}
	if m.shuttingDown || r == nil || r.gen != gen || r.ended || inst.status != StatusHealthy || r.busy() {
		m.mu.Unlock()
		return
	}
	sleepAfter := m.sleepAfter(inst.cfg)
	if idle := m.clock.Now().Sub(r.lastActive()); idle < sleepAfter {
		m.armIdleLocked(inst, r, sleepAfter-idle)
		m.mu.Unlock()
		return
	}
	op := m.beginStopLocked(inst, r, stopCause{event: eventSleep, message: "idle for " + sleepAfter.String(), signal: "SIGTERM"})
	m.bg.Add(1) // shuttingDown is false: see Manager.bg
	m.mu.Unlock()
	defer m.bg.Done()
	m.emit(op.evt)
	m.executeStop(op)
}

// onHardTimeout stops the run that armed it, whatever its activity
// (Lunora's onHardTimeoutExpired): ignored for another generation or a run
// that is no longer running.
func (m *Manager) onHardTimeout(inst *instance, gen uint64) {
	m.mu.Lock()
	r := inst.run
	if m.shuttingDown || r == nil || r.gen != gen || r.ended ||
		(inst.status != StatusRunning && inst.status != StatusHealthy) {
		m.mu.Unlock()
		return
	}
	// During the readiness gate this also fails the start: the prober
	// watches r.done.
	op := m.beginStopLocked(inst, r, stopCause{event: eventStop, message: "hard timeout reached", signal: "SIGTERM"})
	m.bg.Add(1) // shuttingDown is false: see Manager.bg
	m.mu.Unlock()
	defer m.bg.Done()
	m.emit(op.evt)
	m.executeStop(op)
}

// Lease is held by the caller for one proxied request or WebSocket. It pins
// one run: Done closes when that run ends. Until Streaming is called the
// lease is a request in flight and the instance does not sleep.
type Lease struct {
	m    *Manager
	inst *instance
	run  *run
	// direct is run.direct when the lease was made: a lease keeps the
	// addresses it started with, and leases made after an attach get the
	// direct ones.
	direct    map[int]string
	coldStart bool
	released  atomic.Bool
	// streaming is guarded by Manager.mu.
	streaming bool
}

// ColdStart reports whether the Acquire that made this lease waited for
// the instance to start (the router counts those).
func (l *Lease) ColdStart() bool { return l.coldStart }

// Instance returns the instance id.
func (l *Lease) Instance() string { return l.inst.id }

// Generation returns the run's generation.
func (l *Lease) Generation() uint64 { return l.run.gen }

// DefaultPort is the port a request without cf-container-target-port goes
// to: defaultPort, else the first required port, else the first published
// port (0 when there is none).
func (l *Lease) DefaultPort() int {
	c := l.inst.cfg
	if c.DefaultPort != 0 {
		return c.DefaultPort
	}
	if len(c.RequiredPorts) > 0 {
		return c.RequiredPorts[0]
	}
	if ports := l.Ports(); len(ports) > 0 {
		return ports[0]
	}
	return 0
}

// Addr returns the address to dial for a published container port: the
// container's own address when it had a direct route (no docker-proxy hop)
// as the lease was made, else its "127.0.0.1:NNNNN" published port.
func (l *Lease) Addr(port int) (string, bool) {
	return dialAddr(l.direct, l.run.ports, port)
}

// Ports lists the published container ports, sorted.
func (l *Lease) Ports() []int {
	return slices.Sorted(maps.Keys(l.run.ports))
}

// Touch records activity (bytes moved on a stream or WebSocket) and so
// renews the idle clock. Lock-free: it is called for every chunk.
func (l *Lease) Touch() {
	l.run.lastActivity.Store(l.m.clock.Now().UnixNano())
}

// Streaming tells the manager that the container has answered with response
// headers (a 101 upgrade, or a body now streaming to the client): from now
// on the lease no longer keeps the instance awake by being held, only by
// the bytes it moves (Touch). An instance whose every held lease is
// streaming sleeps once sleepAfter passes without activity; Done then
// closes. It is idempotent and does nothing after Release.
func (l *Lease) Streaming() {
	l.m.markStreaming(l)
}

// Release ends the lease; it is idempotent. Once no request is in flight
// (every lease left is streaming, or none is held) the idle clock starts.
func (l *Lease) Release() {
	if l.released.CompareAndSwap(false, true) {
		l.m.release(l)
	}
}

// Done is closed when the leased run ends (stop, exit, sleep, destroy).
func (l *Lease) Done() <-chan struct{} { return l.run.done }
