package supervisor

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.uber.org/zap/zaptest"

	"github.com/lunora/lunorad/internal/clock"
)

// fakeEngine is a hand-written stand-in for the Docker client. Each method
// calls the matching func field when set and otherwise returns a harmless
// default; every call is recorded by name.
type fakeEngine struct {
	pingErr error
	ncpu    int

	imageBuild       func(ctx context.Context, r io.Reader, o build.ImageBuildOptions) (build.ImageBuildResponse, error)
	imageInspect     func(ctx context.Context, ref string) (image.InspectResponse, error)
	imagePull        func(ctx context.Context, ref string) (io.ReadCloser, error)
	imageList        func(ctx context.Context, o image.ListOptions) ([]image.Summary, error)
	imageRemove      func(ctx context.Context, id string, o image.RemoveOptions) error
	containerCreate  func(ctx context.Context, cfg *container.Config, hc *container.HostConfig, name string) (container.CreateResponse, error)
	containerStart   func(ctx context.Context, id string) error
	containerInspect func(ctx context.Context, id string) (container.InspectResponse, error)
	containerKill    func(ctx context.Context, id, signal string) error
	containerWait    func(ctx context.Context, id string) (<-chan container.WaitResponse, <-chan error)
	containerRemove  func(ctx context.Context, id string) error
	containerList    func(ctx context.Context, o container.ListOptions) ([]container.Summary, error)
	events           func(ctx context.Context, o events.ListOptions) (<-chan events.Message, <-chan error)
	networkCreate    func(ctx context.Context, name string, o network.CreateOptions) (network.CreateResponse, error)
	networkInspect   func(ctx context.Context, id string) (network.Inspect, error)
	networkRemove    func(ctx context.Context, id string) error
	networkConnect   func(ctx context.Context, netID, containerID string) error

	// mu guards calls.
	mu    sync.Mutex
	calls []string
}

func (f *fakeEngine) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

// called returns the recorded calls whose text starts with prefix.
func (f *fakeEngine) called(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeEngine) Ping(ctx context.Context) (types.Ping, error) {
	return types.Ping{APIVersion: "1.41"}, f.pingErr
}
func (f *fakeEngine) NegotiateAPIVersionPing(types.Ping) {}
func (f *fakeEngine) ClientVersion() string              { return "1.41" }
func (f *fakeEngine) DaemonHost() string                 { return "unix:///fake.sock" }
func (f *fakeEngine) Info(ctx context.Context) (system.Info, error) {
	return system.Info{NCPU: f.ncpu, ServerVersion: "20.10-fake"}, nil
}
func (f *fakeEngine) Close() error { return nil }

func (f *fakeEngine) ImageBuild(ctx context.Context, r io.Reader, o build.ImageBuildOptions) (build.ImageBuildResponse, error) {
	// The real client sends r as a request body, which net/http closes.
	if c, ok := r.(io.Closer); ok {
		defer c.Close()
	}
	f.record("build " + o.Dockerfile)
	if f.imageBuild == nil {
		return build.ImageBuildResponse{}, errors.New("fake: no build")
	}
	return f.imageBuild(ctx, r, o)
}

func (f *fakeEngine) ImageInspect(ctx context.Context, ref string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	f.record("imageInspect " + ref)
	if f.imageInspect == nil {
		return image.InspectResponse{ID: ref}, nil
	}
	return f.imageInspect(ctx, ref)
}

func (f *fakeEngine) ImagePull(ctx context.Context, ref string, _ image.PullOptions) (io.ReadCloser, error) {
	f.record("pull " + ref)
	if f.imagePull == nil {
		return nil, errors.New("fake: no registry")
	}
	return f.imagePull(ctx, ref)
}

func (f *fakeEngine) ImageList(ctx context.Context, o image.ListOptions) ([]image.Summary, error) {
	f.record("imageList")
	if f.imageList == nil {
		return nil, nil
	}
	return f.imageList(ctx, o)
}

func (f *fakeEngine) ImageRemove(ctx context.Context, id string, o image.RemoveOptions) ([]image.DeleteResponse, error) {
	f.record("imageRemove " + id)
	if f.imageRemove == nil {
		return nil, nil
	}
	return nil, f.imageRemove(ctx, id, o)
}

func (f *fakeEngine) ContainerCreate(ctx context.Context, cfg *container.Config, hc *container.HostConfig, _ *network.NetworkingConfig, _ *ocispec.Platform, name string) (container.CreateResponse, error) {
	f.record("create " + name)
	if f.containerCreate == nil {
		return container.CreateResponse{ID: "new-id"}, nil
	}
	return f.containerCreate(ctx, cfg, hc, name)
}

func (f *fakeEngine) ContainerStart(ctx context.Context, id string, _ container.StartOptions) error {
	f.record("start " + id)
	if f.containerStart == nil {
		return nil
	}
	return f.containerStart(ctx, id)
}

func (f *fakeEngine) ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	f.record("inspect " + id)
	if f.containerInspect == nil {
		return container.InspectResponse{}, cerrdefs.ErrNotFound
	}
	return f.containerInspect(ctx, id)
}

func (f *fakeEngine) ContainerKill(ctx context.Context, id, signal string) error {
	f.record("kill " + id + " " + signal)
	if f.containerKill == nil {
		return nil
	}
	return f.containerKill(ctx, id, signal)
}

func (f *fakeEngine) ContainerWait(ctx context.Context, id string, _ container.WaitCondition) (<-chan container.WaitResponse, <-chan error) {
	f.record("wait " + id)
	if f.containerWait == nil {
		return make(chan container.WaitResponse), make(chan error)
	}
	return f.containerWait(ctx, id)
}

func (f *fakeEngine) ContainerRemove(ctx context.Context, id string, o container.RemoveOptions) error {
	if !o.Force || !o.RemoveVolumes {
		return errors.New("fake: remove must be forced and drop volumes")
	}
	f.record("remove " + id)
	if f.containerRemove == nil {
		return nil
	}
	return f.containerRemove(ctx, id)
}

func (f *fakeEngine) ContainerList(ctx context.Context, o container.ListOptions) ([]container.Summary, error) {
	f.record("list")
	if f.containerList == nil {
		return nil, nil
	}
	return f.containerList(ctx, o)
}

func (f *fakeEngine) Events(ctx context.Context, o events.ListOptions) (<-chan events.Message, <-chan error) {
	f.record("events since=" + o.Since)
	if f.events == nil {
		errs := make(chan error, 1)
		errs <- errors.New("fake: no events")
		return nil, errs
	}
	return f.events(ctx, o)
}

func (f *fakeEngine) NetworkCreate(ctx context.Context, name string, o network.CreateOptions) (network.CreateResponse, error) {
	f.record("networkCreate " + name)
	if f.networkCreate == nil {
		return network.CreateResponse{ID: "net-id"}, nil
	}
	return f.networkCreate(ctx, name, o)
}

func (f *fakeEngine) NetworkInspect(ctx context.Context, id string, _ network.InspectOptions) (network.Inspect, error) {
	f.record("networkInspect " + id)
	if f.networkInspect == nil {
		return network.Inspect{}, cerrdefs.ErrNotFound
	}
	return f.networkInspect(ctx, id)
}

func (f *fakeEngine) NetworkRemove(ctx context.Context, id string) error {
	f.record("networkRemove " + id)
	if f.networkRemove == nil {
		return nil
	}
	return f.networkRemove(ctx, id)
}

func (f *fakeEngine) NetworkConnect(ctx context.Context, netID, containerID string, _ *network.EndpointSettings) error {
	f.record("networkConnect " + netID + " " + containerID)
	if f.networkConnect == nil {
		return nil
	}
	return f.networkConnect(ctx, netID, containerID)
}

// newFakeDocker returns a Docker over f with a fake clock.
func newFakeDocker(t *testing.T, f *fakeEngine, opts Options) (*Docker, *clock.Fake) {
	t.Helper()
	fc := clock.NewFake(time.Unix(1_700_000_000, 0))
	if opts.ConfigID == "" {
		opts.ConfigID = "cfg0123456789"
	}
	opts.Clock = fc
	opts.Logger = zaptest.NewLogger(t)
	d, err := newDocker(context.Background(), f, opts)
	if err != nil {
		t.Fatalf("newDocker: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d, fc
}

// jsonStream is a canned Docker JSON-message stream.
func jsonStream(lines ...string) io.ReadCloser {
	return io.NopCloser(strings.NewReader(strings.Join(lines, "\n") + "\n"))
}
