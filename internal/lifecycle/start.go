package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"go.uber.org/zap"

	"github.com/lunora/lunorad/internal/events"
)

// Local names for the event types, so call sites read as prose.
const (
	eventStart = events.Start
	eventStop  = events.Stop
	eventSleep = events.Sleep
	eventError = events.Error
)

// StartOptions are the body of POST .../{id}/start (Lunora's start(opts)).
// They apply to the run they start; on an instance already running or
// starting, Start joins that run and ignores them.
type StartOptions struct {
	// EnvVars, when non-nil, replaces the configured env, secrets and
	// Secrets Store values wholesale (CLOUDFLARE_* are still added).
	EnvVars        map[string]string
	Entrypoint     []string
	EnableInternet *bool
	Labels         map[string]string
	// WaitHealthy (?wait=healthy) makes Start return only once the
	// readiness gate passed; otherwise it returns once the container runs.
	WaitHealthy bool
}

// Causes of a start's context ending, told apart with context.Cause.
var (
	errStartTimeout  = errors.New("start timed out")
	errShutdown      = errors.New("shutting down")
	errStopRequested = errors.New("stop requested")
)

// errStoppedWhileStarting is the final StartError text callers of a start
// get when Stop, Destroy or a hard timeout ended it.
var errStoppedWhileStarting = errors.New("instance was stopped while starting")

// exitedError is the failure of a start whose container exited before the
// readiness gate passed; the text is @cloudflare/containers'.
type exitedError struct{ code int }

func (e *exitedError) Error() string {
	return fmt.Sprintf("Container exited before we could determine the container health, exit code: %d", e.code)
}
func (e *exitedError) Is(target error) bool { return target == ErrExited }

// startRequest says what a start op does.
type startRequest struct {
	opts StartOptions
	// adopted, when set, is a container left by an earlier daemon: no image,
	// no Run, only the readiness gate.
	adopted *Running
}

// startOp is one start in progress; every caller for the instance joins it.
type startOp struct {
	began time.Time
	// started closes once the container runs (or when the op ends first).
	started       chan struct{}
	startedClosed bool
	// done closes when the op is over; err is written before.
	done   chan struct{}
	err    error
	cancel context.CancelCauseFunc
	run    *run // set when the container is registered
	// waiters counts callers that joined (for tests and logs).
	waiters int
}

func (op *startOp) markStartedLocked() {
	if !op.startedClosed {
		op.startedClosed = true
		close(op.started)
	}
}

// Start starts the instance with opts (POST .../start). It does not wait
// for readiness unless opts.WaitHealthy. An instance already running or
// starting is joined; maxInstances applies, crash backoff does not (a
// person asked explicitly).
func (m *Manager) Start(ctx context.Context, container, id string, opts StartOptions) error {
	c, err := m.container(container)
	if err != nil {
		return err
	}
	if err := m.waitAdoption(ctx); err != nil {
		return m.waitErr(c, id, err)
	}
	for {
		m.mu.Lock()
		if m.shuttingDown {
			m.mu.Unlock()
			return ErrShuttingDown
		}
		inst := m.instanceLocked(c, id)
		var op *startOp
		switch {
		case inst.start != nil:
			op = inst.start
		case inst.stopping != nil:
			stop := inst.stopping
			stop.waiters++
			m.mu.Unlock()
			if err := waitFor(ctx, stop.done); err != nil {
				return m.waitErr(c, id, err)
			}
			continue
		case inst.run != nil:
			m.mu.Unlock()
			return nil
		default:
			if err := m.checkCapacityLocked(c); err != nil {
				m.mu.Unlock()
				return err
			}
			op = m.beginStartLocked(inst, startRequest{opts: opts})
		}
		op.waiters++
		m.mu.Unlock()
		wait := op.started
		if opts.WaitHealthy {
			wait = op.done
		}
		if err := waitFor(ctx, wait); err != nil {
			return m.waitErr(c, id, err)
		}
		select {
		case <-op.done:
			return op.err
		default:
			return nil
		}
	}
}

// beginStartLocked starts a start op on a manager-owned goroutine. The
// caller has checked that no op is in progress and that the manager is not
// shutting down.
func (m *Manager) beginStartLocked(inst *instance, req startRequest) *startOp {
	gen := inst.gen + 1
	if req.adopted != nil && req.adopted.Generation >= gen {
		// Keep generations increasing across daemon restarts.
		gen = req.adopted.Generation + 1
	}
	inst.gen = gen
	ctx, cancel := context.WithCancelCause(m.startsCtx)
	op := &startOp{
		began:   m.clock.Now(),
		started: make(chan struct{}),
		done:    make(chan struct{}),
		cancel:  cancel,
	}
	inst.start = op
	m.setStatusLocked(inst, StatusRunning)
	leftover := inst.leftover
	inst.leftover = ""
	// The start timeout runs on the injected clock so tests can pass it.
	timeout := m.clock.AfterFunc(m.startTimeout, func() { cancel(errStartTimeout) })
	// Every caller checked shuttingDown under mu, so the spawn happens.
	m.spawnLocked(func() {
		defer cancel(nil)
		defer timeout.Stop()
		m.runStart(ctx, inst, op, gen, req, leftover)
	})
	return op
}

// Start stages, for telling failures apart.
const (
	stageEnv   = "env"
	stageImage = "image"
	stageRun   = "run"
	stageGate  = "gate"
)

func (m *Manager) runStart(ctx context.Context, inst *instance, op *startOp, gen uint64, req startRequest, leftover string) {
	if leftover != "" {
		// Removed before Run: the runtime may reuse the instance's name. If
		// this fails, the reconcile loop removes it as unaccounted for.
		if err := m.removeContainer(leftover); err != nil {
			m.log.Warn("removing exited container failed", zap.String("container", inst.cfg.Name),
				zap.String("instance", inst.id), zap.String("containerID", leftover), zap.Error(err))
		}
	}
	stage, r, err := m.launch(ctx, inst, op, gen, req)
	if err == nil {
		stage = stageGate
		err = m.gate(ctx, inst, r)
	}
	m.finishStart(ctx, inst, op, r, stage, err)
}

// launch resolves the env, ensures the image, runs the container and
// registers the run; for an adopted container it only registers it.
func (m *Manager) launch(ctx context.Context, inst *instance, op *startOp, gen uint64, req startRequest) (string, *run, error) {
	if req.adopted != nil {
		return stageRun, m.registerRun(inst, op, gen, *req.adopted, "", true), nil
	}
	env, err := m.resolveEnv(inst, req.opts)
	if err != nil {
		return stageEnv, nil, err
	}
	image, err := m.rt.EnsureImage(ctx, inst.cfg)
	if err != nil {
		return stageImage, nil, err
	}
	spec := m.runSpec(inst, req.opts, image, env, gen)
	running, err := m.rt.Run(ctx, spec)
	if err != nil {
		return stageRun, nil, err
	}
	return stageRun, m.registerRun(inst, op, gen, running, image, false), nil
}

// registerRun makes running the instance's current run and arms its hard
// timeout, measured from the container's start.
func (m *Manager) registerRun(inst *instance, op *startOp, gen uint64, running Running, image string, adopted bool) *run {
	m.mu.Lock()
	var exitEvt events.Event
	defer func() {
		m.mu.Unlock()
		m.emit(exitEvt)
	}()
	now := m.clock.Now()
	m.runSeq++
	r := &run{
		gen:         gen,
		seq:         m.runSeq,
		containerID: running.ID,
		image:       image,
		ports:       maps.Clone(running.Ports),
		direct:      maps.Clone(running.Direct),
		startedAt:   now,
		adopted:     adopted,
		done:        make(chan struct{}),
	}
	if adopted && !running.StartedAt.IsZero() && running.StartedAt.Before(now) {
		r.startedAt = running.StartedAt
	}
	r.lastActivity.Store(now.UnixNano())
	inst.run = r
	op.run = r
	m.byContainerID[r.containerID] = inst
	op.markStartedLocked()
	if hard := inst.cfg.HardTimeout; hard > 0 {
		remaining := max(hard-now.Sub(r.startedAt), 0)
		r.hardTimer = m.clock.AfterFunc(remaining, func() { m.onHardTimeout(inst, gen) })
	}
	if u, ok := m.unmatchedExits[r.containerID]; ok {
		// The exit overtook the Run call; apply it now (the prober then
		// sees done closed and fails at once).
		delete(m.unmatchedExits, r.containerID)
		exitEvt = m.containerExitedLocked(inst, r, u.exit)
	}
	return r
}

func (m *Manager) gate(ctx context.Context, inst *instance, r *run) error {
	c := inst.cfg
	m.mu.Lock()
	addrs := r.addrs()
	m.mu.Unlock()
	target := ProbeTarget{
		Container: c.Name,
		Instance:  inst.id,
		Addrs:     addrs,
		Ports:     c.PortsToCheck(),
		ReadyOn:   c.ReadyOn,
		Timeout:   m.readyTimeout,
		Exited:    r.done,
		ExitCode: func() int {
			m.mu.Lock()
			defer m.mu.Unlock()
			return r.exitCode
		},
	}
	return m.prober.WaitReady(ctx, target)
}

// finishStart records the outcome of a start op. On failure with a
// container still registered to it, the op removes that container before
// it reports done, so that the next start never meets the old one.
func (m *Manager) finishStart(ctx context.Context, inst *instance, op *startOp, r *run, stage string, err error) {
	m.mu.Lock()
	if err == nil && r.ended {
		// The gate passed, but the run ended at the same moment.
		stage, err = stageGate, errStoppedWhileStarting
	}
	var evt, exitEvt events.Event
	teardown := ""
	if err == nil {
		m.setStatusLocked(inst, StatusHealthy)
		r.lastActivity.Store(m.clock.Now().UnixNano())
		if !r.busy() {
			// Nobody may be waiting any more: the instance then idles out.
			m.armIdleLocked(inst, r, m.sleepAfter(inst.cfg))
		}
		// After readiness, never before: the attach must not delay the
		// cold start it would speed up the next requests of.
		m.maybeAttachLocked(inst, r)
		msg := fmt.Sprintf("started in %dms", m.clock.Now().Sub(op.began).Milliseconds())
		if r.adopted {
			msg = fmt.Sprintf("adopted running container %s", shortID(r.containerID))
		}
		evt = m.eventLocked(inst, eventStart, events.LevelInfo, msg)
	} else {
		// A container that died before Run returned exited like any other.
		var exited *RunExitedError
		runExited := r == nil && errors.As(err, &exited)
		err = m.classifyStartErr(ctx, inst, r, stage, err)
		if reportable(ctx) {
			evt = m.eventLocked(inst, eventError, events.LevelError, err.Error())
		}
		switch {
		case r != nil && !r.ended:
			// Nobody else is ending this run: the op tears it down.
			m.endRunLocked(r)
			m.setStatusLocked(inst, StatusStopping)
			teardown = r.containerID
		case runExited:
			exitEvt = m.recordExitLocked(inst, op.began, exited.ExitCode, exited.OOMKilled)
		case r == nil:
			m.setStatusLocked(inst, StatusStopped)
		}
		// Otherwise a crash or a stop ended the run and owns the state.
	}
	if teardown == "" {
		m.completeStartLocked(inst, op, err)
	}
	m.mu.Unlock()
	m.emit(exitEvt)
	m.emit(evt)
	if teardown == "" {
		return
	}
	rmErr := m.removeContainer(teardown)
	if rmErr != nil {
		m.log.Error("removing container of a failed start failed", zap.String("container", inst.cfg.Name),
			zap.String("instance", inst.id), zap.String("containerID", teardown), zap.Error(rmErr))
	}
	m.mu.Lock()
	m.forgetRunLocked(inst, r)
	if rmErr != nil {
		inst.leftover = teardown
	}
	m.setStatusLocked(inst, StatusStopped)
	m.completeStartLocked(inst, op, err)
	m.mu.Unlock()
}

func (m *Manager) completeStartLocked(inst *instance, op *startOp, err error) {
	if inst.start == op {
		inst.start = nil
	}
	if inst.stopping == nil && inst.status == StatusStopping {
		// A stop ended this start's run and finished first: it left the
		// status to whoever finished last.
		m.setStatusLocked(inst, StatusStopped)
	}
	op.err = err
	// done closes before started so that a Start woken by started always
	// sees the outcome of an op that ended before its container ran.
	close(op.done)
	op.markStartedLocked()
}

// reportable tells whether a failed start deserves an error event: one
// cancelled by a stop or by shutdown did not fail.
func reportable(ctx context.Context) bool {
	cause := context.Cause(ctx)
	return !errors.Is(cause, errStopRequested) && !errors.Is(cause, errShutdown)
}

// classifyStartErr turns what went wrong into the error callers get (see
// errors.go for how the router maps each).
func (m *Manager) classifyStartErr(ctx context.Context, inst *instance, r *run, stage string, err error) error {
	final := func(e error) error {
		return &StartError{Container: inst.cfg.Name, Instance: inst.id, Retryable: false, Err: e}
	}
	retryable := func(e error) error {
		return &StartError{Container: inst.cfg.Name, Instance: inst.id, Retryable: true, Err: e}
	}
	// A run that ended under the start is the real story.
	if r != nil && r.ended {
		if r.exited {
			return final(&exitedError{code: r.exitCode})
		}
		return final(errStoppedWhileStarting)
	}
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errStartTimeout):
		return &NoInstanceError{Err: fmt.Errorf("container %q instance %q did not start within %s: %w",
			inst.cfg.Name, inst.id, m.startTimeout, err)}
	case errors.Is(cause, errShutdown):
		return fmt.Errorf("start of container %q instance %q abandoned: %w", inst.cfg.Name, inst.id, ErrShuttingDown)
	case errors.Is(cause, errStopRequested):
		return final(errStoppedWhileStarting)
	}
	var build *BuildError
	switch stage {
	case stageEnv:
		return final(err)
	case stageImage:
		if errors.As(err, &build) {
			return final(err)
		}
		return retryable(fmt.Errorf("preparing image: %w", err))
	case stageRun:
		if errors.As(err, &build) {
			return final(err)
		}
		var exited *RunExitedError
		if errors.As(err, &exited) {
			return final(&exitedError{code: exited.ExitCode})
		}
		return retryable(fmt.Errorf("creating container: %w", err))
	default:
		// Readiness: a deadline that passed, a check that cannot work, or
		// an exit; none is helped by a retry. NotReadyError stays the Err
		// so its text is Lunora's, exactly.
		return final(err)
	}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// removeContainer kills and removes a container under its own deadline.
func (m *Manager) removeContainer(containerID string) error {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCallTimeout)
	defer cancel()
	if err := m.rt.Remove(ctx, containerID); err != nil {
		return fmt.Errorf("removing container %s: %w", shortID(containerID), err)
	}
	return nil
}
