package lifecycle

import (
	"context"
	"maps"
	"time"

	"go.uber.org/zap"
)

// Attacher gives a running container a second, faster address after the
// fact (the supervisor connects it to a bridge network the host routes to,
// skipping docker-proxy). The manager uses it only when Options.Attacher is
// set: whoever builds the manager decides whether containers get attached.
type Attacher interface {
	// Attach makes the running container containerID reachable directly and
	// returns, for each port of published, the address to dial instead. An
	// empty map with a nil error means there is no such route here. It is
	// idempotent.
	Attach(ctx context.Context, containerID string, published map[int]string) (map[int]string, error)
}

// attachTimeout bounds one background attach (network create, connect,
// inspect, one reachability probe), whatever the runtime's own call
// timeouts are.
const attachTimeout = time.Minute

// maybeAttachLocked starts the one background attach of a run that just
// became ready, unless there is no Attacher, the run has a direct address
// already (a Runtime may report one for a container it lists; the Docker
// runtime never does at adoption, so adopted runs are attached here too)
// or publishes no port. It never delays the start: the run serves on its
// published ports until the attach succeeds.
func (m *Manager) maybeAttachLocked(inst *instance, r *run) {
	if m.attacher == nil || len(r.direct) > 0 || len(r.ports) == 0 || r.ended {
		return
	}
	published := maps.Clone(r.ports)
	// No spawn once Shutdown began: the container is about to be stopped.
	m.spawnLocked(func() { m.attachRun(inst, r, published) })
}

// attachRun attaches r's container and, if r is still the instance's
// current run, makes the direct addresses the ones leases get from now on.
// It ends with Shutdown, which cancels startsCtx.
func (m *Manager) attachRun(inst *instance, r *run, published map[int]string) {
	ctx, cancel := context.WithTimeout(m.startsCtx, attachTimeout)
	defer cancel()
	began := m.clock.Now()
	direct, err := m.attacher.Attach(ctx, r.containerID, published)
	log := m.log.With(zap.String("container", inst.cfg.Name), zap.String("instance", inst.id),
		zap.String("containerID", shortID(r.containerID)))

	m.mu.Lock()
	current := inst.run == r && !r.ended
	if err == nil && current && len(direct) > 0 {
		r.direct = maps.Clone(direct)
	}
	m.mu.Unlock()

	switch {
	case !current || m.startsCtx.Err() != nil:
		// Stopped, exited or replaced meanwhile (or shutting down): a
		// failure is expected and a success is of no use.
		log.Debug("ignoring the attach of a run that is over", zap.Error(err))
	case err != nil:
		m.attachWarnOnce.Do(func() {
			log.Warn("cannot attach containers to lunorad's network; proxying through their published ports (logged once)",
				zap.Error(err))
		})
		log.Debug("attach failed; keeping the published ports", zap.Error(err))
	case len(direct) == 0:
		log.Debug("no direct route to the container; keeping the published ports")
	default:
		log.Debug("dialing the container directly", zap.Any("direct", direct),
			zap.Duration("took", m.clock.Now().Sub(began)))
	}
}
