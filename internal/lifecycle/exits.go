package lifecycle

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/lunora/lunorad/internal/events"
)

// handleExit applies one exit from Runtime.Exits. An exit of a container
// being stopped on purpose is expected and changes nothing; one that matches
// no run yet is kept for a short while, because it can overtake the Run
// call that created the container.
func (m *Manager) handleExit(ex Exit) {
	m.mu.Lock()
	inst := m.byContainerID[ex.ContainerID]
	if inst == nil || inst.run == nil || inst.run.containerID != ex.ContainerID {
		m.rememberUnmatchedExitLocked(ex)
		m.mu.Unlock()
		return
	}
	evt := m.containerExitedLocked(inst, inst.run, ex)
	m.mu.Unlock()
	m.emit(evt)
}

func (m *Manager) rememberUnmatchedExitLocked(ex Exit) {
	now := m.clock.Now()
	for id, u := range m.unmatchedExits {
		if now.Sub(u.seen) > unmatchedExitTTL {
			delete(m.unmatchedExits, id)
		}
	}
	if len(m.unmatchedExits) >= maxUnmatchedExits {
		return
	}
	m.unmatchedExits[ex.ContainerID] = unmatchedExit{exit: ex, seen: now}
}

// containerExitedLocked records that r's container exited on its own (a
// crash, an OOM kill, a clean exit nobody asked for): the instance becomes
// stopped_with_code, the container is kept for `docker logs` until the next
// start, and quick exits count towards the crash backoff. It returns the
// stop event to emit (zero if r had already ended).
func (m *Manager) containerExitedLocked(inst *instance, r *run, ex Exit) events.Event {
	if r.ended {
		// A stop we asked for; the stop op owns the state.
		return events.Event{}
	}
	r.exited = true
	r.exitCode = ex.ExitCode
	m.endRunLocked(r)
	m.forgetRunLocked(inst, r)
	inst.leftover = r.containerID
	return m.recordExitLocked(inst, r.startedAt, ex.ExitCode, ex.OOMKilled)
}

// recordExitLocked makes inst stopped_with_code, counts an exit this soon
// after startedAt towards the crash backoff, and returns the stop event.
func (m *Manager) recordExitLocked(inst *instance, startedAt time.Time, exitCode int, oomKilled bool) events.Event {
	inst.exitCode = exitCode
	m.setStatusLocked(inst, StatusStoppedWithCode)

	now := m.clock.Now()
	if now.Sub(startedAt) < crashWindow {
		inst.crashes++
		inst.backoffUntil = now.Add(crashBackoff(inst.crashes))
	} else {
		inst.crashes = 0
		inst.backoffUntil = time.Time{}
	}
	msg := fmt.Sprintf("container exited (exit %d)", exitCode)
	if oomKilled {
		msg = fmt.Sprintf("out of memory: killed (exit %d)", exitCode)
	}
	return m.eventLocked(inst, eventStop, events.LevelInfo, msg)
}

// crashBackoff is the wait before an automatic restart after n quick
// crashes in a row: 1s doubling, capped at 30s.
func crashBackoff(n int) time.Duration {
	d := minCrashBackoff
	for i := 1; i < n && d < maxCrashBackoff; i++ {
		d *= 2
	}
	return min(d, maxCrashBackoff)
}

// runVanishedLocked handles a registered container that the engine no
// longer lists (removed behind lunorad's back): the run ends, stopped.
func (m *Manager) runVanishedLocked(inst *instance, r *run) events.Event {
	m.endRunLocked(r)
	m.forgetRunLocked(inst, r)
	m.setStatusLocked(inst, StatusStopped)
	return m.eventLocked(inst, eventStop, events.LevelInfo, "container removed outside lunorad")
}

// reconcile compares the engine's owned containers with the known runs:
// a run whose container stopped or vanished without an exit event is
// ended, and an owned container no run or instance accounts for is removed
// (unless young: it may belong to a Run call still returning). It reads
// only what ListOwnedStates fills, so that an idle daemon does not inspect
// every container every interval.
func (m *Manager) reconcile(ctx context.Context) error {
	m.mu.Lock()
	snapshot := m.runSeq
	m.mu.Unlock()
	lctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	owned, err := m.rt.ListOwnedStates(lctx)
	cancel()
	if err != nil {
		return fmt.Errorf("listing owned containers: %w", err)
	}
	listed := make(map[string]Running, len(owned))
	for _, o := range owned {
		listed[o.ID] = o
	}

	var evts []events.Event
	var orphans []Running
	now := m.clock.Now()
	m.mu.Lock()
	known := make(map[string]bool)
	for _, byID := range m.instances {
		for _, inst := range byID {
			if inst.leftover != "" {
				known[inst.leftover] = true
			}
			r := inst.run
			if r == nil {
				continue
			}
			known[r.containerID] = true
			// Runs registered after the list was taken are not in it; runs
			// already ending belong to their stop.
			if r.ended || r.seq > snapshot {
				continue
			}
			o, ok := listed[r.containerID]
			switch {
			case !ok:
				evts = append(evts, m.runVanishedLocked(inst, r))
			case !o.Running:
				evts = append(evts, m.containerExitedLocked(inst, r, Exit{
					ContainerID: o.ID, Container: o.Container, Instance: o.Instance, ExitCode: o.ExitCode, At: now,
				}))
			}
		}
	}
	for _, o := range owned {
		// A second more of grace: the listed Created may be rounded down,
		// and a container must never look old while a Run call that made
		// it can still be returning.
		if known[o.ID] || m.youngLocked(o, now, createdResolution) {
			continue
		}
		if inst := m.lookupLocked(o.Container, o.Instance); inst != nil && inst.start != nil {
			continue // its Run may not have returned yet
		}
		orphans = append(orphans, o)
	}
	m.mu.Unlock()

	for _, e := range evts {
		m.emit(e)
	}
	for _, o := range orphans {
		m.log.Info("removing unaccounted-for container", zap.String("container", o.Container),
			zap.String("instance", o.Instance), zap.String("containerID", shortID(o.ID)))
		if err := m.removeContainer(o.ID); err != nil {
			m.log.Warn("removing unaccounted-for container failed", zap.String("containerID", shortID(o.ID)), zap.Error(err))
		}
	}
	return nil
}

// youngLocked reports whether o was created less than adoptGrace before
// now; slack is how much older than it is o.Created may make it look.
func (m *Manager) youngLocked(o Running, now time.Time, slack time.Duration) bool {
	return !o.Created.IsZero() && now.Sub(o.Created) < m.adoptGrace+slack
}

// adopt takes over the containers an earlier daemon left: one still running
// with the current configuration hash is adopted (new generation, timers
// re-armed, readiness gate run again); any other is removed, unless younger
// than AdoptGrace. When one instance has several candidates the newest wins.
func (m *Manager) adopt(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	owned, err := m.rt.ListOwned(lctx)
	cancel()
	if err != nil {
		m.log.Error("listing owned containers for re-adoption failed; the reconcile loop retries", zap.Error(err))
		return
	}
	slices.SortStableFunc(owned, func(a, b Running) int { return b.Created.Compare(a.Created) })
	now := m.clock.Now()
	var remove []Running
	m.mu.Lock()
	for _, o := range owned {
		c, ok := m.Container(o.Container)
		if ok && o.Running && !m.shuttingDown && o.ConfigHash == c.Hash() {
			inst := m.instanceLocked(c, o.Instance)
			if !inst.occupiesSlot() {
				adopted := o
				m.beginStartLocked(inst, startRequest{adopted: &adopted})
				m.log.Info("adopting container", zap.String("container", c.Name),
					zap.String("instance", o.Instance), zap.String("containerID", shortID(o.ID)))
				continue
			}
		}
		if m.youngLocked(o, now, 0) { // ListOwned's Created is exact
			m.log.Info("keeping young unadoptable container", zap.String("container", o.Container),
				zap.String("instance", o.Instance), zap.String("containerID", shortID(o.ID)))
			continue
		}
		remove = append(remove, o)
	}
	m.mu.Unlock()

	// Removals fan out, a few at a time: each has its own deadline.
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, o := range remove {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := m.removeContainer(o.ID); err != nil {
				m.log.Warn("removing stale container failed", zap.String("container", o.Container),
					zap.String("instance", o.Instance), zap.Error(err))
				return
			}
			m.log.Info("removed stale container", zap.String("container", o.Container),
				zap.String("instance", o.Instance), zap.String("containerID", shortID(o.ID)))
		})
	}
	wg.Wait()
}
