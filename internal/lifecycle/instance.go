package lifecycle

import (
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/lunora/lunorad/internal/clock"
	"github.com/lunora/lunorad/internal/config"
)

// Status values of State.Status (the @cloudflare/containers names).
const (
	StatusStopped         = "stopped"
	StatusRunning         = "running"
	StatusHealthy         = "healthy"
	StatusStopping        = "stopping"
	StatusStoppedWithCode = "stopped_with_code"
)

// State is an instance's state as GET .../{id}/state shows it.
type State struct {
	Status     string `json:"status"`
	LastChange int64  `json:"lastChange"` // epoch ms
	ExitCode   *int   `json:"exitCode,omitempty"`
}

// InstanceInfo describes one instance for GET /v1/containers/X/instances/{id}.
type InstanceInfo struct {
	Container      string         `json:"container"`
	Instance       string         `json:"instance"`
	State          State          `json:"state"`
	ContainerID    string         `json:"containerId,omitempty"`
	Image          string         `json:"image,omitempty"`
	Ports          map[int]string `json:"ports,omitempty"`
	Direct         map[int]string `json:"direct,omitempty"` // what lunorad dials, when not Ports
	Generation     uint64         `json:"generation"`
	StartedAt      time.Time      `json:"startedAt,omitzero"`
	LastActivity   time.Time      `json:"lastActivity,omitzero"`
	InFlight       int            `json:"inFlight"`
	EnableInternet bool           `json:"enableInternet"`
	AllowedHosts   []string       `json:"allowedHosts"`
	DeniedHosts    []string       `json:"deniedHosts"`
}

// instance is one (container, id) pair. Its fields are guarded by Manager.mu.
// Invariants: start != nil while a start is in progress; stopping != nil
// while a stop is; run != nil while a container of this instance is
// registered (from Runtime.Run returning until it is stopped or exits).
type instance struct {
	cfg *config.Container
	id  string

	status     string
	lastChange time.Time
	exitCode   int // meaningful with StatusStoppedWithCode

	gen      uint64 // generation of the latest run; bumped by every new run
	run      *run
	start    *startOp
	stopping *stopOp
	// leftover is an exited container kept for `docker logs` until the next
	// start, Destroy or Shutdown removes it (disk is ephemeral: never reused).
	leftover string

	crashes      int // consecutive exits within crashWindow of a start
	backoffUntil time.Time

	// storeMemo memoises Secrets Store values per instance (Lunora does the
	// same); cleared after a failure so that a fixed binding is seen.
	storeMemo map[string]string

	egress EgressPolicy
}

// run is one container of one instance. Fields are guarded by Manager.mu
// except the immutable ones set at registration and lastActivity.
type run struct {
	gen         uint64
	seq         uint64 // registration order, for the reconcile snapshot
	containerID string
	image       string
	ports       map[int]string // published, "127.0.0.1:NNNNN"
	// direct is Running.Direct, or what the background attach found once
	// the run was ready; preferred when present. It is replaced whole,
	// never changed in place, so a lease may keep the map it was given.
	direct    map[int]string
	startedAt time.Time
	adopted   bool

	// done closes when the run ends: a stop begins, the container exits or
	// the start fails. Leases and the prober watch it.
	done     chan struct{}
	ended    bool
	exited   bool // ended because the container exited on its own
	exitCode int

	// inFlight counts the leases held; streaming counts those among them
	// whose response is being streamed (Lease.Streaming). Only the others
	// are requests in flight that keep the instance awake: a stream or
	// WebSocket does so only while bytes move on it (lastActivity).
	inFlight  int
	streaming int
	idleTimer clock.Timer
	// idleArmed: idleTimer is pending (see Manager.armIdleLocked).
	idleArmed bool
	hardTimer clock.Timer
	// lastActivity is unix nanoseconds, atomic so that Lease.Touch, called
	// for every chunk a stream moves, never takes the manager's lock.
	lastActivity atomic.Int64
}

// addr is the address lunorad dials for a container port: the direct one
// when there is one, else the published one. It reads r.direct: call it
// with Manager.mu held.
func (r *run) addr(port int) (string, bool) {
	return dialAddr(r.direct, r.ports, port)
}

// dialAddr is direct's address for port, else published's.
func dialAddr(direct, published map[int]string, port int) (string, bool) {
	if a, ok := direct[port]; ok {
		return a, true
	}
	a, ok := published[port]
	return a, ok
}

// addrs is addr for every published port (Manager.mu held).
func (r *run) addrs() map[int]string {
	out := make(map[int]string, len(r.ports))
	for port := range r.ports {
		out[port], _ = r.addr(port)
	}
	return out
}

func (r *run) lastActive() time.Time {
	return time.Unix(0, r.lastActivity.Load())
}

// busy reports whether a request is in flight: a lease is held whose
// response has not started streaming yet.
func (r *run) busy() bool {
	return r.inFlight > r.streaming
}

func (m *Manager) instanceLocked(c *config.Container, id string) *instance {
	byID := m.instances[c.Name]
	if byID == nil {
		byID = make(map[string]*instance)
		m.instances[c.Name] = byID
	}
	inst := byID[id]
	if inst == nil {
		inst = &instance{
			cfg:    c,
			id:     id,
			status: StatusStopped,
			egress: EgressPolicy{
				EnableInternet: c.EnableInternet,
				AllowedHosts:   slices.Clone(c.AllowedHosts),
				DeniedHosts:    slices.Clone(c.DeniedHosts),
			},
		}
		byID[id] = inst
	}
	return inst
}

func (m *Manager) lookupLocked(container, id string) *instance {
	return m.instances[container][id]
}

func (m *Manager) setStatusLocked(inst *instance, status string) {
	inst.status = status
	inst.lastChange = m.clock.Now()
}

// endRunLocked marks r as over: leases and the prober see done close, and
// its timers stop. The container itself is handled by the caller.
func (m *Manager) endRunLocked(r *run) {
	if r.ended {
		return
	}
	r.ended = true
	close(r.done)
	if r.idleTimer != nil {
		r.idleTimer.Stop()
	}
	if r.hardTimer != nil {
		r.hardTimer.Stop()
	}
}

// forgetRunLocked unregisters r from inst once its container is gone or
// handed over to leftover.
func (m *Manager) forgetRunLocked(inst *instance, r *run) {
	if inst.run == r {
		inst.run = nil
	}
	if m.byContainerID[r.containerID] == inst {
		delete(m.byContainerID, r.containerID)
	}
}

// occupiesSlot reports whether inst counts against maxInstances: a start in
// progress, a container running, or one being stopped.
func (inst *instance) occupiesSlot() bool {
	return inst.start != nil || inst.run != nil || inst.stopping != nil
}

func (inst *instance) stateLocked() State {
	s := State{Status: inst.status}
	if !inst.lastChange.IsZero() {
		s.LastChange = inst.lastChange.UnixMilli()
	}
	if inst.status == StatusStoppedWithCode {
		code := inst.exitCode
		s.ExitCode = &code
	}
	return s
}

func (inst *instance) infoLocked() InstanceInfo {
	info := InstanceInfo{
		Container:      inst.cfg.Name,
		Instance:       inst.id,
		State:          inst.stateLocked(),
		Generation:     inst.gen,
		EnableInternet: inst.egress.EnableInternet,
		AllowedHosts:   nonNil(inst.egress.AllowedHosts),
		DeniedHosts:    nonNil(inst.egress.DeniedHosts),
	}
	if r := inst.run; r != nil {
		info.ContainerID = r.containerID
		info.Image = r.image
		info.Ports = maps.Clone(r.ports)
		info.Direct = maps.Clone(r.direct)
		info.StartedAt = r.startedAt
		info.LastActivity = r.lastActive()
		info.InFlight = r.inFlight
	}
	return info
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

// State returns the instance's state. An instance never started reads
// stopped with lastChange 0.
func (m *Manager) State(container, id string) (State, error) {
	if _, err := m.container(container); err != nil {
		return State{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	inst := m.lookupLocked(container, id)
	if inst == nil {
		return State{Status: StatusStopped}, nil
	}
	return inst.stateLocked(), nil
}

// Instance describes one instance, started or not.
func (m *Manager) Instance(container, id string) (InstanceInfo, error) {
	c, err := m.container(container)
	if err != nil {
		return InstanceInfo{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	inst := m.lookupLocked(container, id)
	if inst == nil {
		// Describe it without remembering it: a read creates no state.
		return (&instance{cfg: c, id: id, status: StatusStopped, egress: EgressPolicy{
			EnableInternet: c.EnableInternet, AllowedHosts: c.AllowedHosts, DeniedHosts: c.DeniedHosts,
		}}).infoLocked(), nil
	}
	return inst.infoLocked(), nil
}

// Instances describes every instance of container this manager has seen,
// sorted by id. Stopped instances stay listed with their last state.
func (m *Manager) Instances(container string) ([]InstanceInfo, error) {
	if _, err := m.container(container); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	byID := m.instances[container]
	infos := make([]InstanceInfo, 0, len(byID))
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		infos = append(infos, byID[id].infoLocked())
	}
	return infos, nil
}

// RenewActivity restarts the instance's idle clock
// (renewActivityTimeout). On an instance that is not running it does
// nothing.
func (m *Manager) RenewActivity(container, id string) error {
	if _, err := m.container(container); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	inst := m.lookupLocked(container, id)
	if inst == nil || inst.run == nil || inst.run.ended {
		return nil
	}
	// The idle timer reads lastActivity when it fires and re-arms itself
	// for the rest, so a store is all a renewal needs.
	inst.run.lastActivity.Store(m.clock.Now().UnixNano())
	return nil
}
