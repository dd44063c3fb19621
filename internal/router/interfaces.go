package router

import (
	"context"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// Lease is one request's hold on a running, ready instance. Until Streaming
// is called the instance counts a request in flight and does not sleep;
// after it, only the bytes moved (Touch) keep the instance awake.
type Lease interface {
	Instance() string
	// Generation identifies the instance's current run; a new start gets a
	// new generation (and new published ports).
	Generation() uint64
	// DefaultPort is the container's defaultPort, 0 when none is configured.
	DefaultPort() int
	// Addr returns "127.0.0.1:NNNNN" for a published container port.
	Addr(port int) (string, bool)
	Ports() []int
	// Streaming says the container has answered with response headers (a
	// 101 upgrade or a body now streaming to the client): from then on the
	// lease no longer blocks sleeping by being held, so a silent WebSocket
	// or stream lets the instance sleep (PROTOCOL §4), which closes Done.
	// It is idempotent.
	Streaming()
	// Touch records activity: bytes moved on a stream or WebSocket.
	Touch()
	// Release ends the hold. It is idempotent.
	Release()
	// Done is closed when the instance's run ends.
	Done() <-chan struct{}
}

// ColdStarter is optionally implemented by a Lease to tell whether its
// Acquire had to wait for the instance to start; the router counts those in
// lunorad_cold_starts_waited_total. Without it, an Acquire slower than 50 ms
// counts as a cold start.
type ColdStarter interface {
	ColdStart() bool
}

// Instances hands out leases on instances, starting them as needed.
type Instances interface {
	// Acquire starts the instance if needed, waits until it is ready and
	// returns a lease. Errors are the types of package lifecycle.
	Acquire(ctx context.Context, container, id string) (Lease, error)
	Container(name string) (*config.Container, bool)
}

// Control is what the control plane needs; the lifecycle Manager has exactly
// these methods.
type Control interface {
	ContainerNames() []string
	Container(name string) (*config.Container, bool)
	Start(ctx context.Context, container, id string, opts lifecycle.StartOptions) error
	Stop(ctx context.Context, container, id string, signal string) error
	Destroy(ctx context.Context, container, id string) error
	State(container, id string) (lifecycle.State, error)
	RenewActivity(container, id string) error
	Instance(container, id string) (lifecycle.InstanceInfo, error)
	Instances(container string) ([]lifecycle.InstanceInfo, error)
}
