package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/events"
)

// stopCause says why a run is being stopped and how.
type stopCause struct {
	event   string // eventStop or eventSleep
	message string
	signal  string // for Runtime.Stop
	kill    bool   // Runtime.Remove instead: SIGKILL and remove at once
}

// stopOp is one stop in progress; later Stop calls join it.
type stopOp struct {
	inst   *instance
	run    *run
	signal string
	kill   bool
	// killing is set once a Destroy escalated a graceful stop.
	killing bool
	// waiters counts callers that joined (for tests and logs).
	waiters int
	evt     events.Event
	// done closes when the stop is over; err is written before.
	done chan struct{}
	err  error
}

// beginStopLocked moves inst to stopping and ends r (leases and a gate in
// progress see r.done close). The caller runs executeStop and emits op.evt.
func (m *Manager) beginStopLocked(inst *instance, r *run, cause stopCause) *stopOp {
	op := &stopOp{
		inst:   inst,
		run:    r,
		signal: cause.signal,
		kill:   cause.kill,
		done:   make(chan struct{}),
	}
	m.endRunLocked(r)
	inst.stopping = op
	m.setStatusLocked(inst, StatusStopping)
	op.evt = m.eventLocked(inst, cause.event, events.LevelInfo, cause.message)
	return op
}

// executeStop stops (or kills) the run's container under its own deadline,
// detached from whoever asked, so that no instance stays stopping forever.
func (m *Manager) executeStop(op *stopOp) {
	inst, r := op.inst, op.run
	var err error
	if op.kill {
		err = m.removeContainer(r.containerID)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), m.stopGrace+stopCallMargin)
		err = m.rt.Stop(ctx, r.containerID, op.signal, m.stopGrace)
		cancel()
		if err != nil {
			// Fall back to a kill so that no container outlives its run.
			if rmErr := m.removeContainer(r.containerID); rmErr != nil {
				err = errors.Join(fmt.Errorf("stopping container %s: %w", shortID(r.containerID), err), rmErr)
			} else {
				err = nil
			}
		}
	}
	if err != nil {
		err = fmt.Errorf("container %q instance %q: %w", inst.cfg.Name, inst.id, err)
		m.log.Error("stopping instance failed; its container is removed on the next start",
			zap.String("container", inst.cfg.Name), zap.String("instance", inst.id), zap.Error(err))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forgetRunLocked(inst, r)
	if err != nil {
		inst.leftover = r.containerID
	}
	if m.clock.Now().Sub(r.startedAt) >= crashWindow {
		inst.crashes = 0
	}
	if inst.stopping == op {
		inst.stopping = nil
		if inst.start == nil {
			m.setStatusLocked(inst, StatusStopped)
		}
	}
	op.err = err
	close(op.done)
}

// runStopLocked runs op for a caller: on a manager goroutine, so that the
// caller may stop waiting, or inline once Shutdown has begun. It unlocks mu.
func (m *Manager) runStopLocked(op *stopOp) {
	spawned := m.spawnLocked(func() { m.executeStop(op) })
	m.mu.Unlock()
	m.emit(op.evt)
	if !spawned {
		m.executeStop(op)
	}
}

// Stop stops the instance with signal (SIGTERM when empty; names or
// numbers), SIGKILL after the grace, and removes its container. Stop on a
// stopped instance succeeds; during a stop it joins it; during a start it
// cancels the start and stops the container if it already runs.
func (m *Manager) Stop(ctx context.Context, container, id string, signal string) error {
	c, err := m.container(container)
	if err != nil {
		return err
	}
	sig, err := ParseSignal(signal)
	if err != nil {
		return err
	}
	cause := stopCause{event: eventStop, message: fmt.Sprintf("stop requested (%s)", sig), signal: sig}
	return m.stop(ctx, c, id, cause)
}

// Destroy kills the instance's container (SIGKILL) and removes it. It also
// removes an exited container kept for inspection and clears the crash
// backoff, leaving the instance stopped.
func (m *Manager) Destroy(ctx context.Context, container, id string) error {
	c, err := m.container(container)
	if err != nil {
		return err
	}
	cause := stopCause{event: eventStop, message: "destroyed (SIGKILL)", signal: "SIGKILL", kill: true}
	return m.stop(ctx, c, id, cause)
}

func (m *Manager) stop(ctx context.Context, c *config.Container, id string, cause stopCause) error {
	// gen is the instance's latest run when the call began. The loop goes
	// round after waiting for a stop or a start to end; a start that began
	// since then (a request arriving once the stop finished) is a new run
	// that this call must leave alone.
	var gen uint64
	for first := true; ; first = false {
		m.mu.Lock()
		inst := m.lookupLocked(c.Name, id)
		if inst == nil {
			m.mu.Unlock()
			return nil
		}
		if first {
			gen = inst.gen
		} else if inst.gen != gen {
			m.mu.Unlock()
			return nil
		}
		switch {
		case inst.start != nil:
			start := inst.start
			start.cancel(errStopRequested)
			if r := start.run; r != nil && !r.ended {
				// The container already runs: stop it as asked. The start
				// sees its run end and reports errStoppedWhileStarting.
				op := m.beginStopLocked(inst, r, cause)
				m.runStopLocked(op)
				if err := waitFor(ctx, op.done); err != nil {
					return m.waitErr(c, id, err)
				}
				if op.err != nil {
					return op.err
				}
				continue
			}
			m.mu.Unlock()
			if err := waitFor(ctx, start.done); err != nil {
				return m.waitErr(c, id, err)
			}
		case inst.stopping != nil:
			op := inst.stopping
			op.waiters++
			escalate := cause.kill && !op.kill && !op.killing
			spawned := false
			if escalate {
				op.killing = true
				containerID := op.run.containerID
				spawned = m.spawnLocked(func() { m.escalate(inst, containerID) })
			}
			m.mu.Unlock()
			if escalate && !spawned {
				m.escalate(inst, op.run.containerID)
			}
			if err := waitFor(ctx, op.done); err != nil {
				return m.waitErr(c, id, err)
			}
			if !cause.kill {
				return op.err
			}
		case inst.run != nil:
			op := m.beginStopLocked(inst, inst.run, cause)
			m.runStopLocked(op)
			if err := waitFor(ctx, op.done); err != nil {
				return m.waitErr(c, id, err)
			}
			if !cause.kill {
				return op.err
			}
		default:
			if !cause.kill {
				m.mu.Unlock()
				return nil
			}
			return m.clearStoppedLocked(inst)
		}
	}
}

// escalate turns a graceful stop in progress into a kill (Destroy during
// Stop). The stop op finishes once Runtime.Stop sees the container gone.
func (m *Manager) escalate(inst *instance, containerID string) {
	if err := m.removeContainer(containerID); err != nil {
		m.log.Warn("killing a stopping container failed", zap.String("container", inst.cfg.Name),
			zap.String("instance", inst.id), zap.Error(err))
	}
}

// clearStoppedLocked finishes a Destroy on a stopped instance: the kept
// exited container goes, the crash backoff is forgotten, the state reads
// stopped. It unlocks mu.
func (m *Manager) clearStoppedLocked(inst *instance) error {
	leftover := inst.leftover
	inst.leftover = ""
	inst.crashes = 0
	inst.backoffUntil = time.Time{}
	if inst.status != StatusStopped {
		m.setStatusLocked(inst, StatusStopped)
	}
	m.mu.Unlock()
	if leftover == "" {
		return nil
	}
	if err := m.removeContainer(leftover); err != nil {
		m.mu.Lock()
		if inst.leftover == "" {
			inst.leftover = leftover
		}
		m.mu.Unlock()
		return fmt.Errorf("container %q instance %q: %w", inst.cfg.Name, inst.id, err)
	}
	return nil
}

// Shutdown refuses new starts (ErrShuttingDown), cancels the starts in
// progress and waits for them, then stops every container this manager
// owns in parallel (SIGTERM, SIGKILL after the grace) and removes them,
// exited ones included. ctx bounds the wait; the stops themselves have
// their own deadlines. Calling it again waits for what is left.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.shuttingDown = true
	var starts []*startOp
	for _, byID := range m.instances {
		for _, inst := range byID {
			if inst.start != nil {
				starts = append(starts, inst.start)
			}
		}
	}
	m.mu.Unlock()
	m.cancelStarts(errShutdown)
	for _, op := range starts {
		if err := waitFor(ctx, op.done); err != nil {
			return fmt.Errorf("waiting for starts to end: %w", err)
		}
	}

	type leftoverRef struct {
		inst        *instance
		containerID string
	}
	var stops, joined []*stopOp
	var leftovers []leftoverRef
	m.mu.Lock()
	for _, byID := range m.instances {
		for _, inst := range byID {
			switch {
			case inst.stopping != nil:
				joined = append(joined, inst.stopping)
			case inst.run != nil && !inst.run.ended:
				stops = append(stops, m.beginStopLocked(inst, inst.run,
					stopCause{event: eventStop, message: "lunorad shutting down", signal: "SIGTERM"}))
			}
			if inst.leftover != "" {
				leftovers = append(leftovers, leftoverRef{inst, inst.leftover})
				inst.leftover = ""
			}
		}
	}
	m.mu.Unlock()

	var (
		wg     sync.WaitGroup
		errsMu sync.Mutex
		errs   []error
	)
	for _, op := range stops {
		m.emit(op.evt)
		wg.Go(func() { m.executeStop(op) })
	}
	for _, l := range leftovers {
		wg.Go(func() {
			if err := m.removeContainer(l.containerID); err != nil {
				errsMu.Lock()
				errs = append(errs, fmt.Errorf("container %q instance %q: %w", l.inst.cfg.Name, l.inst.id, err))
				errsMu.Unlock()
			}
		})
	}
	allDone := make(chan struct{})
	go func() {
		wg.Wait()
		m.bg.Wait()
		// A stop joined here may run inline in a Stop call made after
		// Shutdown began, outside bg.
		for _, op := range joined {
			<-op.done
		}
		close(allDone)
	}()
	if err := waitFor(ctx, allDone); err != nil {
		return fmt.Errorf("waiting for containers to stop: %w", err)
	}
	for _, op := range append(stops, joined...) {
		if op.err != nil {
			errs = append(errs, op.err)
		}
	}
	return errors.Join(errs...)
}
