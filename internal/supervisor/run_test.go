package supervisor

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/go-connections/nat"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lunora/lunorad/internal/lifecycle"
)

// runFake is an engine where create/start/inspect behave like a healthy
// engine: every exposed port gets a host port.
func runFake() (*fakeEngine, *[]*container.Config, *[]*container.HostConfig) {
	var cfgs []*container.Config
	var hcs []*container.HostConfig
	f := &fakeEngine{ncpu: 2}
	f.imageInspect = func(ctx context.Context, ref string) (image.InspectResponse, error) {
		return image.InspectResponse{ID: ref, Config: &dockerspec.DockerOCIImageConfig{
			ImageConfig: ocispec.ImageConfig{ExposedPorts: map[string]struct{}{"8080/tcp": {}, "5353/udp": {}}},
		}}, nil
	}
	f.containerCreate = func(ctx context.Context, cfg *container.Config, hc *container.HostConfig, name string) (container.CreateResponse, error) {
		cfgs, hcs = append(cfgs, cfg), append(hcs, hc)
		return container.CreateResponse{ID: "c1"}, nil
	}
	f.containerInspect = func(ctx context.Context, id string) (container.InspectResponse, error) {
		cfg, hc := cfgs[len(cfgs)-1], hcs[len(hcs)-1]
		ports := nat.PortMap{}
		n := 32000
		for p := range cfg.ExposedPorts {
			n++
			ports[p] = []nat.PortBinding{{HostIP: hc.PortBindings[p][0].HostIP, HostPort: strconv.Itoa(n)}}
		}
		return container.InspectResponse{
			ContainerJSONBase: &container.ContainerJSONBase{ID: id, Name: "/x", Created: "2026-11-28T10:00:00.5Z",
				State: &container.State{Running: true, StartedAt: "2026-11-28T10:00:01Z"}},
			Config:          cfg,
			NetworkSettings: &container.NetworkSettings{NetworkSettingsBase: container.NetworkSettingsBase{Ports: ports}},
		}, nil
	}
	return f, &cfgs, &hcs
}

func TestRunBuildsTheCreateRequest(t *testing.T) {
	f, cfgs, hcs := runFake()
	d, _ := newFakeDocker(t, f, Options{ConfigID: "cfg0123456789", LimitsEnabled: true})
	spec := lifecycle.RunSpec{
		Container: "web", Instance: "user/42", Image: "sha256:img",
		Env:        map[string]string{"B": "2", "A": "1", "SECRET": "s3cr3t"},
		Entrypoint: []string{"/testserver", "--flag"},
		Labels:     map[string]string{"team": "media", LabelConfig: "forged"},
		Ports:      []int{9090},
		ConfigHash: "h1", Generation: 3,
		NanoCPUs: 4_000_000_000, MemoryBytes: 1 << 20,
	}
	r, err := d.Run(context.Background(), spec)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	cfg, hc := (*cfgs)[0], (*hcs)[0]
	if got := f.called("create "); len(got) != 1 || got[0] != "create "+containerName("cfg0123456789", "web", "user/42") {
		t.Errorf("create calls = %v", got)
	}
	if !slices.Equal(cfg.Env, []string{"A=1", "B=2", "SECRET=s3cr3t"}) {
		t.Errorf("env = %v, want sorted K=V", cfg.Env)
	}
	if !slices.Equal(cfg.Entrypoint, []string{"/testserver", "--flag"}) {
		t.Errorf("entrypoint = %v", cfg.Entrypoint)
	}
	if cfg.Labels[LabelConfig] != "cfg0123456789" || cfg.Labels["team"] != "media" || cfg.Labels[LabelInstance] != "user/42" || cfg.Labels[LabelGeneration] != "3" {
		t.Errorf("labels = %v", cfg.Labels)
	}
	// spec.Ports plus the image's EXPOSEd TCP port; both exposed AND bound.
	for _, p := range []nat.Port{"8080/tcp", "9090/tcp"} {
		if _, ok := cfg.ExposedPorts[p]; !ok {
			t.Errorf("%s not exposed: %v", p, cfg.ExposedPorts)
		}
		if b := hc.PortBindings[p]; len(b) != 1 || b[0].HostIP != "127.0.0.1" || b[0].HostPort != "" {
			t.Errorf("%s binding = %v, want 127.0.0.1 with an ephemeral port", p, b)
		}
	}
	if len(cfg.ExposedPorts) != 2 {
		t.Errorf("exposed = %v; udp ports must not be published", cfg.ExposedPorts)
	}
	if !slices.Equal(hc.ExtraHosts, []string{"host.docker.internal:host-gateway"}) || hc.AutoRemove {
		t.Errorf("host config: extra hosts %v, auto-remove %v", hc.ExtraHosts, hc.AutoRemove)
	}
	if hc.NanoCPUs != 2_000_000_000 {
		t.Errorf("NanoCPUs = %d, want clamped to the engine's 2 CPUs", hc.NanoCPUs)
	}
	if hc.Memory != 6<<20 || hc.MemorySwap != hc.Memory {
		t.Errorf("Memory = %d, MemorySwap = %d; want the 6 MiB floor for both", hc.Memory, hc.MemorySwap)
	}
	if r.ID != "c1" || !strings.HasPrefix(r.Ports[8080], "127.0.0.1:320") || !strings.HasPrefix(r.Ports[9090], "127.0.0.1:320") || len(r.Ports) != 2 {
		t.Errorf("running = %+v", r)
	}
	if r.Container != "web" || r.Instance != "user/42" || r.ConfigHash != "h1" || r.Generation != 3 || !r.Running || r.StartedAt.IsZero() || r.Created.IsZero() {
		t.Errorf("running metadata = %+v", r)
	}
}

func TestRunWithoutLimits(t *testing.T) {
	f, _, hcs := runFake()
	d, _ := newFakeDocker(t, f, Options{LimitsEnabled: false})
	if _, err := d.Run(context.Background(), lifecycle.RunSpec{Container: "web", Image: "img", NanoCPUs: 1e9, MemoryBytes: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	if hc := (*hcs)[0]; hc.NanoCPUs != 0 || hc.Memory != 0 {
		t.Errorf("limits applied while disabled: %+v", hc.Resources)
	}
}

func TestRunReplacesOwnedLeftoverOnConflict(t *testing.T) {
	f, _, _ := runFake()
	create := f.containerCreate
	conflicts := 1
	f.containerCreate = func(ctx context.Context, cfg *container.Config, hc *container.HostConfig, name string) (container.CreateResponse, error) {
		if conflicts > 0 {
			conflicts--
			return container.CreateResponse{}, cerrdefs.ErrConflict.WithMessage("name in use")
		}
		return create(ctx, cfg, hc, name)
	}
	inspect := f.containerInspect
	f.containerInspect = func(ctx context.Context, id string) (container.InspectResponse, error) {
		if strings.HasPrefix(id, "lunorad-") {
			return container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{ID: "old"},
				Config: &container.Config{Labels: map[string]string{LabelManaged: "true", LabelConfig: "cfg0123456789", LabelInstance: "1"}}}, nil
		}
		return inspect(ctx, id)
	}
	d, _ := newFakeDocker(t, f, Options{})
	if _, err := d.Run(context.Background(), lifecycle.RunSpec{Container: "web", Instance: "1", Image: "img"}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := f.called("remove"); !slices.Equal(got, []string{"remove old"}) {
		t.Errorf("removes = %v, want the leftover only", got)
	}
	if n := len(f.called("create")); n != 2 {
		t.Errorf("%d creates, want 2", n)
	}
}

func TestRunNeverTouchesAForeignContainer(t *testing.T) {
	f, _, _ := runFake()
	f.containerCreate = func(ctx context.Context, cfg *container.Config, hc *container.HostConfig, name string) (container.CreateResponse, error) {
		return container.CreateResponse{}, cerrdefs.ErrConflict.WithMessage("name in use")
	}
	f.containerInspect = func(ctx context.Context, id string) (container.InspectResponse, error) {
		return container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{ID: "foreign0123456789"},
			Config: &container.Config{Labels: map[string]string{LabelManaged: "true", LabelConfig: "another-config", LabelInstance: "1"}}}, nil
	}
	d, _ := newFakeDocker(t, f, Options{})
	_, err := d.Run(context.Background(), lifecycle.RunSpec{Container: "web", Instance: "1", Image: "img"})
	if err == nil || !strings.Contains(err.Error(), "lunorad does not own") || !cerrdefs.IsConflict(err) {
		t.Fatalf("err = %v", err)
	}
	if got := f.called("remove"); len(got) != 0 {
		t.Errorf("a foreign container was removed: %v", got)
	}
}

func TestRunRemovesTheContainerWhenStartOrPortsFail(t *testing.T) {
	t.Run("start fails", func(t *testing.T) {
		f, _, _ := runFake()
		f.containerStart = func(ctx context.Context, id string) error { return errors.New("port is already allocated") }
		d, _ := newFakeDocker(t, f, Options{})
		_, err := d.Run(context.Background(), lifecycle.RunSpec{Container: "web", Image: "img"})
		if err == nil || !strings.Contains(err.Error(), "port is already allocated") {
			t.Fatalf("err = %v", err)
		}
		if got := f.called("remove"); !slices.Equal(got, []string{"remove c1"}) {
			t.Errorf("removes = %v, want the created container", got)
		}
	})
	t.Run("empty host port", func(t *testing.T) {
		f, _, _ := runFake()
		inspect := f.containerInspect
		f.containerInspect = func(ctx context.Context, id string) (container.InspectResponse, error) {
			r, err := inspect(ctx, id)
			r.NetworkSettings.Ports["8080/tcp"] = []nat.PortBinding{{HostIP: "127.0.0.1", HostPort: ""}}
			return r, err
		}
		d, _ := newFakeDocker(t, f, Options{})
		_, err := d.Run(context.Background(), lifecycle.RunSpec{Container: "web", Image: "img"})
		if err == nil || !strings.Contains(err.Error(), "port 8080/tcp was not published") {
			t.Fatalf("err = %v", err)
		}
		if got := f.called("remove"); !slices.Equal(got, []string{"remove c1"}) {
			t.Errorf("removes = %v", got)
		}
	})
	t.Run("bad spec", func(t *testing.T) {
		f, _, _ := runFake()
		d, _ := newFakeDocker(t, f, Options{})
		for _, spec := range []lifecycle.RunSpec{{Image: "img"}, {Container: "web"}, {Container: "web", Image: "img", Ports: []int{70000}}} {
			if _, err := d.Run(context.Background(), spec); err == nil {
				t.Errorf("Run(%+v) succeeded", spec)
			}
		}
		if n := len(f.called("create")); n != 0 {
			t.Errorf("%d creates for invalid specs", n)
		}
	})
}
