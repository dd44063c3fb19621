package lifecycle

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/lunora/lunorad/internal/clock"
	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/events"
)

// SecretSource resolves secret values by name (.dev.vars, then the process
// environment). Secrets Store bindings are looked up by binding name.
type SecretSource interface {
	Lookup(name string) (string, bool)
}

// Options configures a Manager. Config, Runtime and Prober are required.
type Options struct {
	Config  *config.Config
	Runtime Runtime
	Prober  Prober
	Clock   clock.Clock // nil → clock.Real{}
	Logger  *zap.Logger // nil → nop; used as is (the caller names it)
	Events  *events.Bus // nil → a private bus
	Secrets SecretSource
	// StopGrace is the SIGTERM→SIGKILL grace, default 10s.
	StopGrace time.Duration
	// ReadyTimeout is the readiness deadline passed to the Prober, default 30s.
	ReadyTimeout time.Duration
	// StartTimeout bounds one cold start (image, run, ready), default 2m;
	// past it the callers get a *NoInstanceError.
	StartTimeout time.Duration
	// AdoptGrace: owned containers younger than this are never removed at
	// adoption or by the reconcile loop, default 30s (a create can succeed
	// on the engine while the call that made it is still returning).
	AdoptGrace time.Duration
	// LimitsEnabled passes instanceType CPU and memory limits to RunSpec.
	LimitsEnabled bool
	// Attacher, when set, attaches each container in the background once
	// it is ready, and leases dial it at the address Attach returns from
	// then on (published ports until then, and for good if the attach
	// fails). Nil: never attach; leases always dial the published ports.
	Attacher Attacher
}

const (
	defaultStopGrace    = 10 * time.Second
	defaultReadyTimeout = 30 * time.Second
	defaultStartTimeout = 2 * time.Minute
	defaultAdoptGrace   = 30 * time.Second

	// reconcileInterval is how often ListOwnedStates is compared with the
	// known state, to catch exits the event stream missed.
	reconcileInterval = 10 * time.Second
	// createdResolution is how much older than it is ListOwnedStates may
	// make a container look (its Created can be whole seconds, rounded
	// down).
	createdResolution = time.Second
	// dockerCallTimeout bounds unary engine calls (remove, list).
	dockerCallTimeout = 30 * time.Second
	// stopCallMargin is added to the grace for Runtime.Stop's deadline, which
	// must outlast the grace the engine waits for.
	stopCallMargin = 30 * time.Second
	// imageBuildTimeout bounds the background builds Run starts.
	imageBuildTimeout = 15 * time.Minute

	// crashWindow: an exit this soon after a start counts as a crash loop
	// step; a run that lasted longer resets the count.
	crashWindow     = 10 * time.Second
	minCrashBackoff = time.Second
	maxCrashBackoff = 30 * time.Second

	// maxUnmatchedExits caps the exits kept for containers not registered
	// yet (an exit can overtake the Run call that created the container).
	maxUnmatchedExits = 128
	unmatchedExitTTL  = time.Minute
)

// Manager owns every instance of every configured container. Create it with
// NewManager; all methods are safe for concurrent use.
type Manager struct {
	cfg          *config.Config
	rt           Runtime
	prober       Prober
	clock        clock.Clock
	log          *zap.Logger
	bus          *events.Bus
	secrets      SecretSource
	stopGrace    time.Duration
	readyTimeout time.Duration
	startTimeout time.Duration
	adoptGrace   time.Duration
	limits       bool
	// attacher is Options.Attacher; nil: no run is ever attached.
	attacher Attacher
	// attachWarnOnce makes a failed attach a warning once per manager: the
	// cause (a network that cannot be had, an engine refusing connects) is
	// usually the same for every container, and published ports still work.
	attachWarnOnce sync.Once

	// startsCtx parents every start so that Shutdown can cancel them all; it
	// is detached from any request on purpose.
	startsCtx    context.Context
	cancelStarts context.CancelCauseFunc

	// bg counts goroutines the manager owns (starts, stops run for callers
	// and timers). Add is only called with mu held and shuttingDown false,
	// so every Add happens before Shutdown's Wait.
	bg sync.WaitGroup

	// mu guards everything that follows, and every field of instance, run,
	// startOp and stopOp that is not documented otherwise.
	mu            sync.Mutex
	instances     map[string]map[string]*instance // container name → instance id → instance
	byContainerID map[string]*instance
	// unmatchedExits keeps exits of containers not (yet) registered to a run.
	unmatchedExits map[string]unmatchedExit
	runSeq         uint64
	shuttingDown   bool
	runCalled      bool
	// adoptDone is nil until Run begins and closes once adoption is over;
	// starts wait for it so they never race an adoption of the same instance.
	adoptDone chan struct{}
}

type unmatchedExit struct {
	exit Exit
	seen time.Time
}

// NewManager checks opts and applies the defaults.
func NewManager(opts Options) (*Manager, error) {
	switch {
	case opts.Config == nil:
		return nil, errors.New("lifecycle: Options.Config is required")
	case opts.Runtime == nil:
		return nil, errors.New("lifecycle: Options.Runtime is required")
	case opts.Prober == nil:
		return nil, errors.New("lifecycle: Options.Prober is required")
	}
	m := &Manager{
		cfg:            opts.Config,
		rt:             opts.Runtime,
		prober:         opts.Prober,
		clock:          opts.Clock,
		log:            opts.Logger,
		bus:            opts.Events,
		secrets:        opts.Secrets,
		stopGrace:      orDefault(opts.StopGrace, defaultStopGrace),
		readyTimeout:   orDefault(opts.ReadyTimeout, defaultReadyTimeout),
		startTimeout:   orDefault(opts.StartTimeout, defaultStartTimeout),
		adoptGrace:     orDefault(opts.AdoptGrace, defaultAdoptGrace),
		limits:         opts.LimitsEnabled,
		attacher:       opts.Attacher,
		instances:      make(map[string]map[string]*instance),
		byContainerID:  make(map[string]*instance),
		unmatchedExits: make(map[string]unmatchedExit),
	}
	if m.clock == nil {
		m.clock = clock.Real{}
	}
	if m.log == nil {
		m.log = zap.NewNop()
	}
	if m.bus == nil {
		m.bus = &events.Bus{}
	}
	m.startsCtx, m.cancelStarts = context.WithCancelCause(context.Background())
	return m, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Container returns the configuration of the named container.
func (m *Manager) Container(name string) (*config.Container, bool) {
	c, ok := m.cfg.Containers[name]
	return c, ok && c != nil
}

// ContainerNames lists the configured containers, sorted.
func (m *Manager) ContainerNames() []string {
	if len(m.cfg.Names) > 0 {
		return slices.Clone(m.cfg.Names)
	}
	names := make([]string, 0, len(m.cfg.Containers))
	for name := range m.cfg.Containers {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func (m *Manager) container(name string) (*config.Container, error) {
	c, ok := m.Container(name)
	if !ok {
		return nil, &UnknownContainerError{Name: name}
	}
	return c, nil
}

// Run adopts owned containers left by an earlier daemon, builds every image
// in the background (so errors surface early in the log), consumes the
// runtime's exit stream and reconciles every ~10s. It returns nil once ctx
// is done and its goroutines have ended.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.runCalled {
		m.mu.Unlock()
		return errors.New("lifecycle: Run called twice")
	}
	m.runCalled = true
	adoptDone := make(chan struct{})
	m.adoptDone = adoptDone
	m.mu.Unlock()

	// Subscribe before adopting so that an exit during adoption is not lost.
	exits := m.rt.Exits(ctx)
	m.adopt(ctx)
	close(adoptDone)

	var wg sync.WaitGroup
	wg.Go(func() { m.buildImages(ctx) })
	wg.Go(func() { m.consumeExits(ctx, exits) })
	m.reconcileLoop(ctx)
	wg.Wait()
	return nil
}

// buildImages asks for every image once, one after the other: builds are
// heavy and the machine is shared. A failure is logged here and shows again
// on the first start of that container.
func (m *Manager) buildImages(ctx context.Context) {
	for _, name := range m.ContainerNames() {
		c, ok := m.Container(name)
		if !ok {
			continue
		}
		bctx, cancel := context.WithTimeout(ctx, imageBuildTimeout)
		image, err := m.rt.EnsureImage(bctx, c)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			m.log.Error("preparing image failed", zap.String("container", name), zap.Error(err))
			continue
		}
		m.log.Info("image ready", zap.String("container", name), zap.String("image", image))
	}
}

func (m *Manager) consumeExits(ctx context.Context, exits <-chan Exit) {
	for {
		select {
		case <-ctx.Done():
			return
		case ex, ok := <-exits:
			if !ok {
				return
			}
			m.handleExit(ex)
		}
	}
}

func (m *Manager) reconcileLoop(ctx context.Context) {
	t := m.clock.NewTimer(reconcileInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		err := m.reconcile(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			// Logged on the transition only: the engine being down would
			// otherwise fill the log every interval.
			m.log.Warn("reconcile failed", zap.Error(err))
			failing = true
		case err == nil && failing:
			m.log.Info("reconcile recovered")
			failing = false
		}
		t.Reset(reconcileInterval)
	}
}

// emit publishes e and writes one log line for it. Never call it with mu
// held: logging is I/O.
func (m *Manager) emit(e events.Event) {
	if e.Event == "" {
		return
	}
	m.bus.Publish(e)
	fields := []zap.Field{
		zap.String("container", e.Container),
		zap.String("instance", e.Instance),
		zap.String("event", e.Event),
		zap.String("message", e.Message),
	}
	if e.Level == events.LevelError {
		m.log.Error("container event", fields...)
		return
	}
	m.log.Info("container event", fields...)
}

func (m *Manager) eventLocked(inst *instance, typ, level, msg string) events.Event {
	return events.New(inst.cfg.Name, inst.id, typ, level, msg, m.clock.Now().UnixMilli())
}

// spawnLocked runs fn on a goroutine the manager owns. It reports false
// once Shutdown has begun; the caller then runs fn itself.
func (m *Manager) spawnLocked(fn func()) bool {
	if m.shuttingDown {
		return false
	}
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		fn()
	}()
	return true
}

// waitAdoption holds a start until Run's adoption is over.
func (m *Manager) waitAdoption(ctx context.Context) error {
	m.mu.Lock()
	ch := m.adoptDone
	m.mu.Unlock()
	if ch == nil {
		return nil
	}
	return waitFor(ctx, ch)
}

func waitFor(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
