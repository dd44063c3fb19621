package readiness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/lunora/lunorad/internal/clock"
	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// Defaults of the gate. DefaultTimeout and MinAttemptTimeout are Lunora's;
// the poll intervals are lunorad's own (see the package doc).
const (
	DefaultTimeout         = 30 * time.Second
	MinAttemptTimeout      = 500 * time.Millisecond
	DefaultInitialInterval = 2 * time.Millisecond
	DefaultMaxInterval     = 10 * time.Millisecond
)

// Host headers of the two kinds of probe: Cloudflare's port probe fetches
// http://ping, Lunora's readyOn probe fetches http://container<path>.
const (
	portProbeHost  = "ping"
	checkProbeHost = "container"
	userAgent      = "lunorad-readiness"
)

// errAttemptTimedOut is the cause set on an attempt's context when its
// max(MinAttemptTimeout, deadline-now) bound passes.
var errAttemptTimedOut = errors.New("no response")

// Options configures a Prober. Every field is optional.
type Options struct {
	// Clock drives the deadline, the attempt bound and the poll waits.
	// Nil means the wall clock.
	Clock clock.Clock
	// Logger; nil means zap.NewNop().
	Logger *zap.Logger
	// Doer sends the probe requests. Nil means a dedicated *http.Client with
	// no keep-alives, no proxy, no redirects and a dial timeout.
	Doer Doer
	// InitialInterval is the wait after a probe's first failed attempt;
	// it doubles after each further failure up to MaxInterval.
	// Zero means DefaultInitialInterval / DefaultMaxInterval.
	InitialInterval time.Duration
	MaxInterval     time.Duration
}

// Prober implements lifecycle.Prober over HTTP. It holds no per-gate state,
// so one Prober serves every instance concurrently.
type Prober struct {
	clock           clock.Clock
	logger          *zap.Logger
	doer            Doer
	initialInterval time.Duration
	maxInterval     time.Duration
}

// Interface guard.
var _ lifecycle.Prober = (*Prober)(nil)

// New returns a Prober with opts' zero fields set to their defaults.
func New(opts Options) *Prober {
	p := &Prober{
		clock:           opts.Clock,
		logger:          opts.Logger,
		doer:            opts.Doer,
		initialInterval: opts.InitialInterval,
		maxInterval:     opts.MaxInterval,
	}
	if p.clock == nil {
		p.clock = clock.Real{}
	}
	if p.logger == nil {
		p.logger = zap.NewNop()
	}
	p.logger = p.logger.Named("readiness")
	if p.doer == nil {
		p.doer = newHTTPClient()
	}
	if p.initialInterval <= 0 {
		p.initialInterval = DefaultInitialInterval
	}
	if p.maxInterval <= 0 {
		p.maxInterval = DefaultMaxInterval
	}
	if p.maxInterval < p.initialInterval {
		p.maxInterval = p.initialInterval
	}
	return p
}

// WaitReady blocks until every port in target.Ports answers an HTTP request
// and then every readyOn check returns its status (see the package doc). No
// goroutine it starts outlives it.
func (p *Prober) WaitReady(ctx context.Context, target lifecycle.ProbeTarget) error {
	if isClosed(target.Exited) {
		return exitedError(target)
	}
	g, err := p.newGate(target)
	if err != nil {
		return err
	}

	gateCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	result := make(chan error, 1)
	go func() { result <- g.run(gateCtx) }()

	select {
	case err := <-result:
		// A container that exited is not ready, whatever its last answer was.
		if isClosed(target.Exited) {
			return exitedError(target)
		}
		return err
	case <-target.Exited:
		cancel()
		<-result
		return exitedError(target)
	}
}

// probe is one port or readyOn check of a gate.
type probe struct {
	port int
	// path is "" for a port probe, which accepts any status.
	path       string
	wantStatus int
	request    *http.Request // template, cloned with each attempt's context
	attempts   int
	lastErr    error
	passed     bool
}

// gate is one WaitReady call: its probes and its single deadline.
type gate struct {
	p         *Prober
	logger    *zap.Logger
	container string
	timeout   time.Duration
	start     time.Time
	deadline  time.Time
	ports     []*probe
	checks    []*probe
}

func (p *Prober) newGate(target lifecycle.ProbeTarget) (*gate, error) {
	timeout := target.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	start := p.clock.Now()
	g := &gate{
		p:         p,
		logger:    p.logger.With(zap.String("container", target.Container), zap.String("instance", target.Instance)),
		container: target.Container,
		timeout:   timeout,
		start:     start,
		deadline:  start.Add(timeout),
	}
	for _, port := range target.Ports {
		pr, err := newProbe(target, port, "", 0)
		if err != nil {
			return nil, err
		}
		g.ports = append(g.ports, pr)
	}
	for _, check := range target.ReadyOn {
		pr, err := newCheckProbe(target, check)
		if err != nil {
			return nil, err
		}
		g.checks = append(g.checks, pr)
	}
	return g, nil
}

func newCheckProbe(target lifecycle.ProbeTarget, check config.ReadyCheck) (*probe, error) {
	path := check.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path // as Lunora does
	}
	status := check.Status
	if status == 0 {
		status = http.StatusOK
	}
	return newProbe(target, check.Port, path, status)
}

// newProbe builds the request template of one probe. A port with no
// published address is a caller bug that no retry can fix, so it fails the
// gate at once.
func newProbe(target lifecycle.ProbeTarget, port int, path string, wantStatus int) (*probe, error) {
	addr, ok := target.Addrs[port]
	if !ok || addr == "" {
		return nil, fmt.Errorf("container %q: port %d has no published address to probe", target.Container, port)
	}
	host, urlPath := portProbeHost, "/"
	if path != "" {
		host, urlPath = checkProbeHost, path
	}
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+urlPath, nil)
	if err != nil {
		return nil, fmt.Errorf("container %q: readiness check %q (port %d): %w", target.Container, path, port, err)
	}
	req.Host = host
	req.Header.Set("User-Agent", userAgent)
	return &probe{port: port, path: path, wantStatus: wantStatus, request: req}, nil
}

// run executes phase 1 then phase 2.
func (g *gate) run(ctx context.Context) error {
	if err := g.runPhase(ctx, g.ports); err != nil {
		return err
	}
	if err := g.runPhase(ctx, g.checks); err != nil {
		return err
	}
	if ce := g.logger.Check(zapcore.DebugLevel, "instance ready"); ce != nil {
		ce.Write(zap.Duration("elapsed", g.p.clock.Now().Sub(g.start)),
			zap.Int("ports", len(g.ports)), zap.Int("checks", len(g.checks)))
	}
	return nil
}

// runPhase polls every probe in parallel and waits for all of them, so the
// failure reported is the first in configuration order, not the first in time.
func (g *gate) runPhase(ctx context.Context, probes []*probe) error {
	var wg sync.WaitGroup
	for _, pr := range probes {
		wg.Go(func() { g.poll(ctx, pr) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("readiness of container %q: %w", g.container, err)
	}
	for _, pr := range probes {
		if !pr.passed {
			return &lifecycle.NotReadyError{
				Container: g.container,
				Path:      pr.path,
				Port:      pr.port,
				Status:    pr.wantStatus,
				TimeoutMs: g.timeout.Milliseconds(),
				LastErr:   pr.lastErr,
			}
		}
	}
	return nil
}

// poll retries pr until it passes, the deadline passes or ctx ends. It
// always makes at least one attempt, so a check still gets its chance when
// phase 1 finished right at the deadline.
func (g *gate) poll(ctx context.Context, pr *probe) {
	interval := g.p.initialInterval
	for {
		pr.attempts++
		err := g.attempt(ctx, pr)
		if err == nil {
			pr.passed = true
			return
		}
		pr.lastErr = err
		if ce := g.logger.Check(zapcore.DebugLevel, "probe not ready"); ce != nil {
			ce.Write(zap.Int("port", pr.port), zap.String("path", pr.path), zap.Int("attempt", pr.attempts), zap.Error(err))
		}
		remaining := g.deadline.Sub(g.p.clock.Now())
		if remaining <= 0 || ctx.Err() != nil {
			return
		}
		if clock.Sleep(ctx, g.p.clock, min(interval, remaining)) != nil {
			return
		}
		interval = min(interval*2, g.p.maxInterval)
	}
}

// attempt sends one request, bounded by max(MinAttemptTimeout, deadline-now),
// and reports why it did not pass (nil when it did).
func (g *gate) attempt(ctx context.Context, pr *probe) error {
	bound := max(MinAttemptTimeout, g.deadline.Sub(g.p.clock.Now()))
	attemptCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := g.p.clock.AfterFunc(bound, func() { cancel(errAttemptTimedOut) })
	defer timer.Stop()

	resp, err := g.p.doer.Do(pr.request.Clone(attemptCtx))
	if err != nil {
		if errors.Is(context.Cause(attemptCtx), errAttemptTimedOut) {
			return fmt.Errorf("%w within %v: %w", errAttemptTimedOut, bound, err)
		}
		return err
	}
	// Closing without draining is deliberate: without keep-alives the
	// connection is not reused, and a streaming body would never drain.
	resp.Body.Close()
	if pr.wantStatus != 0 && resp.StatusCode != pr.wantStatus {
		return fmt.Errorf("got status %d", resp.StatusCode)
	}
	return nil
}

func exitedError(target lifecycle.ProbeTarget) error {
	code := -1
	if target.ExitCode != nil {
		code = target.ExitCode()
	}
	return &ExitedError{Container: target.Container, ExitCode: code}
}

// isClosed reports whether ch is closed, without blocking; a nil channel
// never closes.
func isClosed(ch <-chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
