// Package daemon is lunorad's composition root: it builds the supervisor,
// prober, lifecycle manager and router from a loaded config, serves them on
// one listener, and tears everything down in order on shutdown. cmd/lunorad
// and the end-to-end tests both start the daemon through Run, so what the
// tests exercise is exactly what users run.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/lunora/lunorad/internal/clock"
	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/events"
	"github.com/lunora/lunorad/internal/httpfront"
	"github.com/lunora/lunorad/internal/lifecycle"
	"github.com/lunora/lunorad/internal/readiness"
	"github.com/lunora/lunorad/internal/router"
	"github.com/lunora/lunorad/internal/supervisor"
)

// Options are the daemon's knobs beyond the config file.
type Options struct {
	Config *config.Config
	Logger *zap.Logger
	// Listener overrides Config.Listen (tests pass 127.0.0.1:0).
	Listener net.Listener
	// Secrets resolves `secrets` and `secretsStore` names.
	Secrets lifecycle.SecretSource
	// StopGrace is the time between SIGTERM and SIGKILL (default 10s).
	StopGrace time.Duration
	// ReadyTimeout is the readiness deadline (default 30s).
	ReadyTimeout time.Duration
	// ShutdownTimeout bounds how long in-flight requests may run after a
	// shutdown signal before they are cut (default 10s).
	ShutdownTimeout time.Duration
	// NoLimits turns instanceType CPU and memory limits off (slow machines).
	NoLimits bool
	// DirectDial attaches each container, once it is ready, to a bridge
	// network lunorad creates, and proxies to its address there from then
	// on, skipping docker-proxy behind the published ports. The cold start
	// never waits for it: containers are created on the default bridge and
	// served on their published ports until the attach is done (or for good
	// when it fails). cmd/lunorad turns it on by default.
	DirectDial bool
	// NetHTTPOnly serves every request with Go's net/http server instead of
	// answering plain data-plane requests on httpfront's lean path.
	NetHTTPOnly bool
	// Ready, when set, receives the bound address once the daemon serves.
	Ready func(addr net.Addr)
}

// Run serves until ctx is cancelled, then shuts down: refuse new requests,
// let in-flight ones finish (bounded), stop and remove every container this
// daemon owns, then its bridge network. It returns nil after a clean shutdown.
func Run(ctx context.Context, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = supervisor.DefaultStopGrace
	}
	cfg := opts.Config

	docker, err := supervisor.New(ctx, supervisor.Options{
		ConfigID:      cfg.ID(),
		Logger:        log.Named("supervisor"),
		StopGrace:     opts.StopGrace,
		LimitsEnabled: !opts.NoLimits,
	})
	if err != nil {
		return err // already one clear line saying what to do
	}
	defer docker.Close()

	// Direct dial is decided here and nowhere else: the manager attaches
	// ready containers only when it is given an Attacher.
	var attacher lifecycle.Attacher
	if opts.DirectDial {
		attacher = docker
	}
	bus := &events.Bus{}
	manager, err := lifecycle.NewManager(lifecycle.Options{
		Config:        cfg,
		Runtime:       docker,
		Prober:        readiness.New(readiness.Options{Logger: log.Named("readiness")}),
		Clock:         clock.Real{},
		Logger:        log.Named("lifecycle"),
		Events:        bus,
		Secrets:       opts.Secrets,
		StopGrace:     opts.StopGrace,
		ReadyTimeout:  opts.ReadyTimeout,
		LimitsEnabled: !opts.NoLimits,
		Attacher:      attacher,
	})
	if err != nil {
		return fmt.Errorf("lifecycle: %w", err)
	}

	rt := router.New(router.Options{
		Instances: leases{manager},
		Control:   manager,
		Events:    bus,
		Logger:    log.Named("router"),
		Clock:     clock.Real{},
	})

	ln := opts.Listener
	if ln == nil {
		ln, err = net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fmt.Errorf("listen on %s (set `listen:` in %s or free the port): %w", cfg.Listen, cfg.Path, err)
		}
	}
	const readHeaderTimeout = 30 * time.Second
	fallback := &http.Server{Handler: rt.Handler(), ReadHeaderTimeout: readHeaderTimeout}
	var srv httpServer = fallback
	if !opts.NetHTTPOnly {
		srv = &httpfront.Server{
			Handler: rt.DataHandler(), Fallback: fallback, Take: router.TakesFastPath,
			Logger: log.Named("http"),
		}
	}

	// The manager runs on its own context: it must outlive ctx long enough to
	// stop containers after the HTTP side has drained.
	managerCtx, stopManager := context.WithCancel(context.WithoutCancel(ctx))
	defer stopManager()
	managerDone := make(chan error, 1)
	go func() { managerDone <- manager.Run(managerCtx) }()

	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	log.Info("lunorad is serving", zap.String("addr", ln.Addr().String()),
		zap.String("config", cfg.Path), zap.Strings("containers", cfg.Names))
	if opts.Ready != nil {
		opts.Ready(ln.Addr())
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-serveDone:
		log.Error("HTTP server stopped", zap.Error(serveErr))
	case err := <-managerDone:
		serveErr = fmt.Errorf("lifecycle manager stopped: %w", err)
		managerDone <- err // put it back: the shutdown path below waits on managerDone
	}

	log.Info("shutting down: refusing new requests, finishing in-flight ones",
		zap.Duration("bound", opts.ShutdownTimeout))
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancelDrain()
	rt.Drain() // a request that slips in before the listener closes gets the 503 body
	if err := srv.Shutdown(drainCtx); err != nil {
		log.Warn("in-flight requests did not finish in time; closing them", zap.Error(err))
		_ = srv.Close()
	}
	// Shutdown neither waits for nor closes hijacked connections.
	rt.CloseWebSockets()
	rt.Close()

	// Stopping containers waits up to StopGrace each (in parallel), so give it that plus slack.
	stopCtx, cancelStop := context.WithTimeout(context.Background(), opts.StopGrace+30*time.Second)
	defer cancelStop()
	shutdownErr := manager.Shutdown(stopCtx)
	stopManager()
	<-managerDone
	if shutdownErr != nil {
		return fmt.Errorf("stopping containers: %w", shutdownErr)
	}
	// Only now: the engine refuses to remove a network with containers on
	// it. A network left behind is harmless (the next run reuses it), so
	// this warns rather than failing the shutdown.
	if err := docker.RemoveNetwork(stopCtx); err != nil {
		log.Warn("could not remove lunorad's bridge network; the next run reuses it", zap.Error(err))
	}
	log.Info("lunorad stopped; every container it started is removed")
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

// leases adapts the manager's concrete *Lease to the router's Lease interface.
type leases struct{ *lifecycle.Manager }

func (l leases) Acquire(ctx context.Context, container, id string) (router.Lease, error) {
	lease, err := l.Manager.Acquire(ctx, container, id)
	if err != nil {
		return nil, err // a typed nil *Lease must not become a non-nil interface
	}
	return lease, nil
}

// httpServer is what Run needs of the HTTP side: net/http's Server, or
// httpfront's in front of one.
type httpServer interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}
