package lifecycle

import (
	"context"
	"time"

	"github.com/lunora/lunorad/internal/config"
)

// Runtime is what lifecycle needs from a container engine. The supervisor
// package implements it over the Docker Engine API; tests use hand-written
// fakes. Every method is safe for concurrent use.
type Runtime interface {
	// EnsureImage builds (or finds) the image for c and returns a reference
	// usable in RunSpec.Image. Errors are final for this image version
	// (a failed build, a missing registry image): wrap them in a *BuildError.
	EnsureImage(ctx context.Context, c *config.Container) (image string, err error)
	// Run creates and starts one container and returns it with its published
	// ports read back. On error nothing is left running.
	Run(ctx context.Context, spec RunSpec) (Running, error)
	// Stop sends signal (a name such as "SIGTERM"), waits up to grace for the
	// container to exit, then kills it; the container is removed either way.
	Stop(ctx context.Context, containerID string, signal string, grace time.Duration) error
	// Remove kills (SIGKILL) and removes the container at once.
	Remove(ctx context.Context, containerID string) error
	// ListOwned returns every container carrying this daemon's ownership
	// labels for the given config identity, running or not.
	ListOwned(ctx context.Context) ([]Running, error)
	// ListOwnedStates lists the same containers as ListOwned, cheaply
	// enough to call every reconcile interval. It fills ID, Name,
	// Container, Instance, ConfigHash, Generation, Running and Created,
	// and for a container not running also ExitCode and StartedAt. Ports
	// and Direct are never filled. Created may be rounded down to the
	// second for a running container (see createdResolution).
	ListOwnedStates(ctx context.Context) ([]Running, error)
	// Exits streams container exits (die and oom) of owned containers until
	// ctx is done, reconnecting on its own; the channel closes with ctx.
	Exits(ctx context.Context) <-chan Exit
}

// RunSpec is everything needed to create one instance's container.
type RunSpec struct {
	Container string // export name
	Instance  string // instance id, verbatim
	Image     string
	// Env is the full environment, already resolved (env, secrets,
	// CLOUDFLARE_*). The runtime must never log values.
	Env        map[string]string
	Entrypoint []string          // nil: the image's own
	Labels     map[string]string // user labels, added beside the ownership labels
	// Ports to publish on 127.0.0.1 ephemeral host ports.
	Ports []int
	// ConfigHash identifies the container's effective configuration; stored
	// as a label so a restarted daemon knows whether it may re-adopt.
	ConfigHash string
	Generation uint64
	// Limits from instanceType; zero values mean no limit.
	NanoCPUs    int64
	MemoryBytes int64
	// EnableInternet false: the container has no route out except the egress proxy.
	EnableInternet bool
}

// Running is one owned container as the runtime sees it.
type Running struct {
	ID        string
	Name      string
	Container string // from labels
	Instance  string // from labels
	// Ports maps a container port to its "127.0.0.1:NNNNN" address.
	Ports map[int]string
	// Direct maps a container port to the container's "IP:port" on a
	// network the host routes to; lunorad prefers it to Ports (no
	// docker-proxy hop). Empty when the runtime has no such route.
	Direct     map[int]string
	ConfigHash string
	Generation uint64
	Created    time.Time
	StartedAt  time.Time
	Running    bool
	ExitCode   int
}

// Exit reports a container that stopped running.
type Exit struct {
	ContainerID string
	Container   string
	Instance    string
	ExitCode    int
	OOMKilled   bool
	At          time.Time
}

// Prober decides when a freshly started instance is ready for traffic. The
// readiness package implements it.
type Prober interface {
	// WaitReady returns nil once every port in target.Ports answers an HTTP
	// request and every readyOn check returns its status. It returns a
	// *NotReadyError when the deadline passes, and an error wrapping
	// ErrExited when target.Exited closes first.
	WaitReady(ctx context.Context, target ProbeTarget) error
}

// ProbeTarget describes one run of one instance for the prober.
type ProbeTarget struct {
	Container string
	Instance  string
	// Addrs maps container port to the address to dial: Running.Direct's
	// when present, else the published "127.0.0.1:NNNNN".
	Addrs map[int]string
	// Ports that must answer any HTTP request (requiredPorts, else defaultPort).
	Ports   []int
	ReadyOn []config.ReadyCheck
	// Timeout is the shared deadline for the whole gate (default 30s).
	Timeout time.Duration
	// Exited closes when the container exits; the prober then fails at once.
	Exited <-chan struct{}
	// ExitCode reports the exit code once Exited is closed.
	ExitCode func() int
}
