package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/lunora/lunorad/internal/lifecycle"
)

const testNetConfig = "cfg0123456789"

// directFake is runFake where a container created on a network gets the
// address 10.99.0.2 on it, as the engine reports it after start.
func directFake() (*fakeEngine, *[]*container.HostConfig) {
	f, _, hcs := runFake()
	inspect := f.containerInspect
	f.containerInspect = func(ctx context.Context, id string) (container.InspectResponse, error) {
		insp, err := inspect(ctx, id)
		if mode := (*hcs)[len(*hcs)-1].NetworkMode; mode != "" && err == nil {
			insp.NetworkSettings.Networks = map[string]*network.EndpointSettings{
				string(mode): {IPAddress: "10.99.0.2", Gateway: "10.99.0.1"},
			}
		}
		return insp, err
	}
	return f, hcs
}

// fakeDial answers every dial with err (nil: a connection) and counts the dials.
func fakeDial(d *Docker, err error) *atomic.Int32 {
	var n atomic.Int32
	d.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		n.Add(1)
		if err != nil {
			return nil, err
		}
		client, server := net.Pipe()
		_ = server.Close()
		return client, nil
	}
	return &n
}

func runWeb(t *testing.T, d *Docker, instance string) lifecycle.Running {
	t.Helper()
	r, err := d.Run(context.Background(), lifecycle.RunSpec{Container: "web", Instance: instance, Image: "sha256:img"})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return r
}

func TestRunAttachesToOurNetworkAndReportsTheDirectAddress(t *testing.T) {
	f, hcs := directFake()
	var created network.CreateOptions
	f.networkCreate = func(ctx context.Context, name string, o network.CreateOptions) (network.CreateResponse, error) {
		created = o
		return network.CreateResponse{ID: "net-id"}, nil
	}
	d, _ := newFakeDocker(t, f, Options{ConfigID: testNetConfig, DirectDial: true})
	dials := fakeDial(d, &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})

	first := runWeb(t, d, "a")
	second := runWeb(t, d, "b")

	if got := f.called("networkCreate"); len(got) != 1 || got[0] != "networkCreate lunorad-"+testNetConfig {
		t.Errorf("network creates = %v, want one of lunorad-%s", got, testNetConfig)
	}
	if created.Driver != "bridge" || created.Internal || created.Labels[LabelManaged] != "true" || created.Labels[LabelConfig] != testNetConfig {
		t.Errorf("network create options = %+v, want a plain bridge with our labels", created)
	}
	for i, hc := range *hcs {
		if hc.NetworkMode != container.NetworkMode("lunorad-"+testNetConfig) {
			t.Errorf("container %d NetworkMode = %q", i, hc.NetworkMode)
		}
		if b := hc.PortBindings["8080/tcp"]; len(b) != 1 || b[0].HostIP != "127.0.0.1" {
			t.Errorf("container %d still needs its published port on 127.0.0.1: %v", i, b)
		}
	}
	for _, r := range []lifecycle.Running{first, second} {
		if r.Direct[8080] != "10.99.0.2:8080" || len(r.Direct) != 1 {
			t.Errorf("Direct = %v, want 8080 → 10.99.0.2:8080", r.Direct)
		}
		if !strings.HasPrefix(r.Ports[8080], "127.0.0.1:") {
			t.Errorf("Ports = %v, want the published port kept", r.Ports)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("reachability probed %d times, want once per Docker", n)
	}
}

func TestUnroutableNetworkFallsBackToPublishedPortsForGood(t *testing.T) {
	for name, dialErr := range map[string]error{
		"timeout":          context.DeadlineExceeded,
		"host unreachable": &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)},
		"net unreachable":  &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ENETUNREACH)},
	} {
		t.Run(name, func(t *testing.T) {
			f, _ := directFake()
			d, _ := newFakeDocker(t, f, Options{ConfigID: testNetConfig, DirectDial: true})
			dials := fakeDial(d, dialErr)
			for _, inst := range []string{"a", "b"} {
				if r := runWeb(t, d, inst); r.Direct != nil || r.Ports[8080] == "" {
					t.Errorf("Run(%s) Direct = %v Ports = %v, want no Direct and the published port", inst, r.Direct, r.Ports)
				}
			}
			if n := dials.Load(); n != 1 {
				t.Errorf("reachability probed %d times, want once", n)
			}
		})
	}
}

func TestDirectDialOffKeepsTheDefaultBridge(t *testing.T) {
	f, hcs := directFake()
	d, _ := newFakeDocker(t, f, Options{ConfigID: testNetConfig})
	dials := fakeDial(d, nil)
	r := runWeb(t, d, "a")
	if got := f.called("network"); len(got) != 0 {
		t.Errorf("network calls = %v, want none", got)
	}
	if (*hcs)[0].NetworkMode != "" || r.Direct != nil || dials.Load() != 0 {
		t.Errorf("NetworkMode = %q Direct = %v dials = %d, want default bridge, no Direct, no probe", (*hcs)[0].NetworkMode, r.Direct, dials.Load())
	}
}

func TestExistingNetworkIsReusedOnlyWhenOurs(t *testing.T) {
	for name, tc := range map[string]struct {
		labels   map[string]string
		wantMode container.NetworkMode
	}{
		"ours (left by a killed daemon)": {map[string]string{LabelManaged: "true", LabelConfig: testNetConfig}, "lunorad-" + testNetConfig},
		"another config's":               {map[string]string{LabelManaged: "true", LabelConfig: "other"}, ""},
		"not lunorad's":                  {nil, ""},
	} {
		t.Run(name, func(t *testing.T) {
			f, hcs := directFake()
			f.networkCreate = func(ctx context.Context, name string, o network.CreateOptions) (network.CreateResponse, error) {
				return network.CreateResponse{}, cerrdefs.ErrConflict.WithMessage("network with name " + name + " already exists")
			}
			f.networkInspect = func(ctx context.Context, id string) (network.Inspect, error) {
				return network.Inspect{ID: "existing", Name: id, Driver: "bridge", Labels: tc.labels}, nil
			}
			d, _ := newFakeDocker(t, f, Options{ConfigID: testNetConfig, DirectDial: true})
			fakeDial(d, nil)
			runWeb(t, d, "a")
			runWeb(t, d, "b")
			for i, hc := range *hcs {
				if hc.NetworkMode != tc.wantMode {
					t.Errorf("container %d NetworkMode = %q, want %q", i, hc.NetworkMode, tc.wantMode)
				}
			}
			if got := f.called("networkCreate"); len(got) != 1 {
				t.Errorf("network creates = %v, want one: the outcome is decided once", got)
			}
		})
	}
}

func TestRunRecreatesANetworkRemovedUnderIt(t *testing.T) {
	f, hcs := directFake()
	create := f.containerCreate
	var removed atomic.Bool
	f.containerCreate = func(ctx context.Context, cfg *container.Config, hc *container.HostConfig, name string) (container.CreateResponse, error) {
		if removed.Swap(false) {
			return container.CreateResponse{}, cerrdefs.ErrNotFound.WithMessage("network " + string(hc.NetworkMode) + " not found")
		}
		return create(ctx, cfg, hc, name)
	}
	d, _ := newFakeDocker(t, f, Options{ConfigID: testNetConfig, DirectDial: true})
	fakeDial(d, nil)
	runWeb(t, d, "a")
	removed.Store(true)
	if r := runWeb(t, d, "b"); r.Direct[8080] == "" {
		t.Errorf("Direct = %v after recreating the network", r.Direct)
	}
	if got := f.called("networkCreate"); len(got) != 2 {
		t.Errorf("network creates = %v, want the network created again", got)
	}
	if mode := (*hcs)[len(*hcs)-1].NetworkMode; mode != container.NetworkMode("lunorad-"+testNetConfig) {
		t.Errorf("NetworkMode = %q", mode)
	}
}

func TestRemoveAllOwnedRemovesOurNetworkAfterTheContainers(t *testing.T) {
	ours := map[string]string{LabelManaged: "true", LabelConfig: testNetConfig}
	for name, tc := range map[string]struct {
		labels      map[string]string
		removeErr   error
		wantRemoved bool
		wantErr     bool
	}{
		"ours":                    {labels: ours, wantRemoved: true},
		"not ours":                {labels: map[string]string{LabelManaged: "true", LabelConfig: "other"}},
		"a container stays":       {labels: ours, removeErr: errors.New("engine says no"), wantErr: true},
		"network already removed": {labels: nil},
	} {
		t.Run(name, func(t *testing.T) {
			f := &fakeEngine{}
			f.containerList = func(ctx context.Context, o container.ListOptions) ([]container.Summary, error) {
				return []container.Summary{{ID: "c1"}}, nil
			}
			f.containerRemove = func(ctx context.Context, id string) error { return tc.removeErr }
			if tc.labels != nil {
				f.networkInspect = func(ctx context.Context, id string) (network.Inspect, error) {
					return network.Inspect{ID: "net-id", Name: id, Driver: "bridge", Labels: tc.labels}, nil
				}
			}
			d, _ := newFakeDocker(t, f, Options{ConfigID: testNetConfig})
			err := d.RemoveAllOwned(context.Background())
			if (err != nil) != tc.wantErr {
				t.Fatalf("RemoveAllOwned: %v, want error %v", err, tc.wantErr)
			}
			got := f.called("networkRemove")
			if tc.wantRemoved != (len(got) == 1) {
				t.Errorf("network removes = %v, want removed %v", got, tc.wantRemoved)
			}
			if tc.wantRemoved {
				if calls := fmt.Sprint(f.called("")); strings.Index(calls, "remove c1") > strings.Index(calls, "networkRemove") {
					t.Errorf("calls = %s, want the containers removed first", calls)
				}
			}
		})
	}
}
