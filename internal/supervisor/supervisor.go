// Package supervisor runs lunorad's containers on the Docker Engine: it builds
// or finds images, creates, starts, stops and removes one labelled container
// per instance with its ports published on 127.0.0.1 (and, when asked,
// attaches running ones to a bridge network of its own that the host reaches
// without docker-proxy), lists what this daemon owns and streams container
// exits. It implements lifecycle.Runtime and lifecycle.Attacher and is the
// only package that imports the Docker client.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/lunora/lunorad/internal/clock"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// Interface guards.
var (
	_ lifecycle.Runtime  = (*Docker)(nil)
	_ lifecycle.Attacher = (*Docker)(nil)
)

// Timeouts of Docker calls. The client's http.Client has none, and a wedged
// engine must not wedge lunorad (nomad: "protect against wedged locked-up API
// call"). Streams (events, build, pull) get cancellation only.
const (
	defaultCallTimeout = 30 * time.Second
	pingTimeout        = 5 * time.Second
	// DefaultStopGrace is the SIGTERM-to-SIGKILL grace when Stop gets none
	// (PROTOCOL §4: 10 s by default).
	DefaultStopGrace = 10 * time.Second
	// minMemoryBytes is the engine's floor: "Minimum memory limit allowed is 6MB".
	minMemoryBytes = 6 << 20
	// minNanoCPUs is the engine's floor: "Range of CPUs is from 0.01 to ...".
	minNanoCPUs = 10_000_000
)

// engine is the part of the Docker client the supervisor uses; *client.Client
// implements it, and unit tests use a hand-written fake.
type engine interface {
	Ping(ctx context.Context) (types.Ping, error)
	NegotiateAPIVersionPing(p types.Ping)
	ClientVersion() string
	DaemonHost() string
	Info(ctx context.Context) (system.Info, error)
	Close() error

	ImageBuild(ctx context.Context, buildContext io.Reader, options build.ImageBuildOptions) (build.ImageBuildResponse, error)
	ImageInspect(ctx context.Context, imageID string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
	ImagePull(ctx context.Context, ref string, options image.PullOptions) (io.ReadCloser, error)
	ImageList(ctx context.Context, options image.ListOptions) ([]image.Summary, error)
	ImageRemove(ctx context.Context, imageID string, options image.RemoveOptions) ([]image.DeleteResponse, error)

	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig, networkingConfig *network.NetworkingConfig, platform *ocispec.Platform, containerName string) (container.CreateResponse, error)
	ContainerStart(ctx context.Context, containerID string, options container.StartOptions) error
	ContainerInspect(ctx context.Context, containerID string) (container.InspectResponse, error)
	ContainerKill(ctx context.Context, containerID, signal string) error
	ContainerWait(ctx context.Context, containerID string, condition container.WaitCondition) (<-chan container.WaitResponse, <-chan error)
	ContainerRemove(ctx context.Context, containerID string, options container.RemoveOptions) error
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	Events(ctx context.Context, options events.ListOptions) (<-chan events.Message, <-chan error)

	NetworkCreate(ctx context.Context, name string, options network.CreateOptions) (network.CreateResponse, error)
	NetworkInspect(ctx context.Context, networkID string, options network.InspectOptions) (network.Inspect, error)
	NetworkRemove(ctx context.Context, networkID string) error
	NetworkConnect(ctx context.Context, networkID, containerID string, config *network.EndpointSettings) error
}

// Options configure a Docker runtime.
type Options struct {
	// ConfigID is the owning config's identity (config.(*Config).ID()). It is
	// stamped as a label on everything created and is part of container
	// names. Required.
	ConfigID string
	// Logger; nil means zap.NewNop().
	Logger *zap.Logger
	// Clock drives the stop grace timer and the event stream's reconnect
	// backoff; nil means clock.Real{}.
	Clock clock.Clock
	// StopGrace is used when Stop is called with grace <= 0; 0 means
	// DefaultStopGrace.
	StopGrace time.Duration
	// LimitsEnabled applies RunSpec.NanoCPUs/MemoryBytes (instanceType) to
	// containers. CPU limits are clamped to the engine's CPU count.
	LimitsEnabled bool
	// CallTimeout bounds each unary Docker call; 0 means 30 s.
	CallTimeout time.Duration
}

// Docker implements lifecycle.Runtime over the Docker Engine API. It is safe
// for concurrent use. Close it when done.
type Docker struct {
	api           engine
	log           *zap.Logger
	clock         clock.Clock
	configID      string
	stopGrace     time.Duration
	callTimeout   time.Duration
	limitsEnabled bool
	ncpu          int
	version       string
	apiVersion    string

	// builds runs at most one EnsureImage per (container, context, Dockerfile).
	builds singleflight.Group
	// flightSeq numbers the start of every shared image flight (sharedImage).
	flightSeq atomic.Uint64
	// buildCtx outlives callers: a build keeps going when the request that
	// triggered it gives up, so the next request finds the image ready.
	// Close cancels it.
	buildCtx    context.Context
	cancelBuild context.CancelFunc

	clampWarn sync.Once
	// dial is net.Dialer's DialContext (tests simulate routes).
	dial dialFunc

	// netMu guards netID and netErr (held across the network's create).
	netMu sync.Mutex
	// netID is our network's id once created or adopted; "" before, and
	// after RemoveNetwork.
	netID string
	// netErr: the network could not be had; Attach returns it without
	// trying again.
	netErr error

	// reachMu is held across the one reachability probe; reach, its
	// answer, is written with it held and read without it (ListOwned must
	// not wait for a probe).
	reachMu sync.Mutex
	reach   atomic.Int32 // a reachability
	// racyWindow: see defaultRacyWindow (tests shorten it).
	racyWindow time.Duration

	// mu guards built.
	mu sync.Mutex
	// built caches the last successful build per build key, so an unchanged
	// context is not rebuilt within a run.
	built map[string]builtImage
}

// builtImage is one cached build result.
type builtImage struct {
	digest  string // content hash of the tarred context and build inputs
	imageID string
	// contextDigest and dockerfile are the tar's hash and the Dockerfile's
	// name in it; snapshot is snapshotContext's fingerprint taken before
	// that tar was made ("" when it was not trustworthy).
	contextDigest string
	dockerfile    string
	snapshot      string
}

// EngineUnreachableError is returned by New when the Docker Engine does not
// answer. Its text is one line that says what to do.
type EngineUnreachableError struct {
	Host string
	Err  error
}

func (e *EngineUnreachableError) Error() string {
	cause := strings.Join(strings.Fields(e.Err.Error()), " ") // keep it on one line
	if !strings.HasSuffix(cause, ".") && !strings.HasSuffix(cause, "?") {
		cause += "."
	}
	return fmt.Sprintf("cannot reach the Docker Engine at %s: %s Start Docker (e.g. 'sudo systemctl start docker' or 'make docker'), or set DOCKER_HOST to your engine.", e.Host, cause)
}

func (e *EngineUnreachableError) Unwrap() error { return e.Err }

// New connects to the engine named by the environment (DOCKER_HOST and
// friends), checks that it answers, negotiates the API version and reads the
// engine's CPU count. An unreachable engine yields an *EngineUnreachableError.
func New(ctx context.Context, opts Options) (*Docker, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("cannot configure the Docker client (check DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH): %w", err)
	}
	d, err := newDocker(ctx, cli, opts)
	if err != nil {
		_ = cli.Close()
		return nil, err
	}
	return d, nil
}

func newDocker(ctx context.Context, api engine, opts Options) (*Docker, error) {
	if opts.ConfigID == "" {
		return nil, errors.New("supervisor: Options.ConfigID is required")
	}
	d := &Docker{
		api:           api,
		log:           opts.Logger,
		clock:         opts.Clock,
		configID:      opts.ConfigID,
		stopGrace:     opts.StopGrace,
		callTimeout:   opts.CallTimeout,
		limitsEnabled: opts.LimitsEnabled,
		dial:          (&net.Dialer{}).DialContext,
		built:         map[string]builtImage{},
		racyWindow:    defaultRacyWindow,
	}
	if d.log == nil {
		d.log = zap.NewNop()
	}
	d.log = d.log.Named("supervisor")
	if d.clock == nil {
		d.clock = clock.Real{}
	}
	if d.stopGrace <= 0 {
		d.stopGrace = DefaultStopGrace
	}
	if d.callTimeout <= 0 {
		d.callTimeout = defaultCallTimeout
	}

	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	ping, err := api.Ping(pctx)
	cancel()
	if err != nil {
		return nil, &EngineUnreachableError{Host: api.DaemonHost(), Err: err}
	}
	// An explicit Ping does not negotiate; without this ClientVersion stays
	// at the client's maximum until the first versioned call.
	api.NegotiateAPIVersionPing(ping)

	ictx, cancel := d.callCtx(ctx)
	info, err := api.Info(ictx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("cannot read the Docker Engine's info at %s: %w", api.DaemonHost(), err)
	}
	d.ncpu, d.version, d.apiVersion = info.NCPU, info.ServerVersion, api.ClientVersion()
	d.buildCtx, d.cancelBuild = context.WithCancel(context.Background())
	d.log.Info("connected to the Docker Engine",
		zap.String("host", api.DaemonHost()), zap.String("version", d.version),
		zap.String("api_version", d.apiVersion), zap.Int("ncpu", d.ncpu))
	return d, nil
}

// Engine reports the engine's version and the negotiated API version.
func (d *Docker) Engine() (version, apiVersion string) { return d.version, d.apiVersion }

// Close cancels builds in progress and closes the client. Containers are left
// alone: call RemoveAllOwned first to clean up.
func (d *Docker) Close() error {
	d.cancelBuild()
	if err := d.api.Close(); err != nil {
		return fmt.Errorf("closing the Docker client: %w", err)
	}
	return nil
}

// callCtx bounds one unary Docker call.
func (d *Docker) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.callTimeout)
}

// cleanupCtx bounds a cleanup call that must run even when the caller's
// context is already cancelled (values are kept, cancellation is not).
func (d *Docker) cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d.callTimeout)
}
