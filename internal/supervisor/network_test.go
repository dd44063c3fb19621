package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/lunora/lunorad/internal/lifecycle"
)

const testNetConfig = "cfg0123456789"

// directFake is runFake where a container connected to a network gets the
// address 10.99.0.2 on it, as the engine reports it on inspect. connected
// holds the ids of the networks connected to.
func directFake() (f *fakeEngine, hcs *[]*container.HostConfig, connected *[]string) {
	f, _, hcs = runFake()
	var mu sync.Mutex
	var nets []string
	inspect := f.containerInspect
	f.networkConnect = func(ctx context.Context, netID, containerID string) error {
		mu.Lock()
		defer mu.Unlock()
		nets = append(nets, netID)
		return nil
	}
	f.containerInspect = func(ctx context.Context, id string) (container.InspectResponse, error) {
		insp, err := inspect(ctx, id)
		mu.Lock()
		defer mu.Unlock()
		if len(nets) > 0 && err == nil {
			insp.NetworkSettings.Networks = map[string]*network.EndpointSettings{
				"lunorad-" + testNetConfig: {IPAddress: "10.99.0.2"},
			}
		}
		return insp, err
	}
	return f, hcs, &nets
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

func TestRunStaysOnTheDefaultBridgeAndAttachReportsTheDirectAddress(t *testing.T) {
	f, hcs, connected := directFake()
	var created network.CreateOptions
	f.networkCreate = func(ctx context.Context, name string, o network.CreateOptions) (network.CreateResponse, error) {
		created = o
		return network.CreateResponse{ID: "net-id"}, nil
	}
	d, _ := newFakeDocker(t, f, Options{ConfigID: testNetConfig})
	dials := fakeDial(d, &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})

	first, second := runWeb(t, d, "a"), runWeb(t, d, "b")
	if got := f.called("network"); len(got) != 0 {
		t.Errorf("network calls during Run = %v, want none: the cold start stays on the default bridge", got)
	}
	for i, hc := range *hcs {
		if hc.NetworkMode != "" {
			t.Errorf("container %d NetworkMode = %q, want the default bridge", i, hc.NetworkMode)
		}
	}
	for _, r := range []lifecycle.Running{first, second} {
		if r.Direct != nil {
			t.Errorf("Run's Direct = %v, want none before Attach", r.Direct)
		}
		direct, err := d.Attach(context.Background(), r.ID, r.Ports)
		if err != nil {
			t.Fatalf("Attach: %v", err)
		}
		if direct[8080] != "10.99.0.2:8080" || len(direct) != 1 {
			t.Errorf("Attach = %v, want 8080 → 10.99.0.2:8080", direct)
		}
	}
	if got := f.called("networkCreate"); len(got) != 1 || got[0] != "networkCreate lunorad-"+testNetConfig {
		t.Errorf("network creates = %v, want one of lunorad-%s", got, testNetConfig)
	}
	if created.Driver != "bridge" || !created.Internal || created.Labels[LabelManaged] != "true" || created.Labels[LabelConfig] != testNetConfig {
		t.Errorf("network create options = %+v, want an internal bridge with our labels", created)
	}
	if len(*connected) != 2 || (*connected)[0] != "net-id" {
		t.Errorf("connects = %v, want two to net-id", *connected)
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("reachability probed %d times, want once per Docker", n)
	}
}

func TestAttachOfAnAlreadyConnectedContainerSucceeds(t *testing.T) {
	f, _, _ := directFake()
	d, _ := newFakeDocker(t, f, Options{ConfigID: testNetConfig})
	fakeDial(d, nil)
	r := runWeb(t, d, "a")
	if _, err := d.Attach(context.Background(), r.ID, r.Ports); err != nil {
		t.Fatal(err)
	}
	// What Engine 20.10 answers to a second connect.
	f.networkConnect = func(ctx context.Context, netID, containerID string) error {
		return cerrdefs.ErrPermissionDenied.WithMessage("endpoint with name x already exists in network lunorad-" + testNetConfig)
	}
	direct, err := d.Attach(context.Background(), r.ID, r.Ports)
	if err != nil || direct[8080] != "10.99.0.2:8080" {
		t.Errorf("second Attach = %v, %v; want the same direct address and no error", direct, err)
	}
}

func TestAttachReportsAConnectFailure(t *testing.T) {
	f, _, _ := directFake()
	f.networkConnect = func(ctx context.Context, netID, containerID string) error {
		return errors.New("engine says no")
	}
	d, _ := newFakeDocker(t, f, Options{ConfigID: testNetConfig})
	fakeDial(d, nil)
	r := runWeb(t, d, "a")
	if direct, err := d.Attach(context.Background(), r.ID, r.Ports); err == nil || !strings.Contains(err.Error(), "engine says no") || direct != nil {
		t.Errorf("Attach = %v, %v; want the connect error", direct, err)
	}
}

func TestUnroutableNetworkGivesNoDirectAddressForGood(t *testing.T) {
	for name, dialErr := range map[string]error{
		"timeout":          context.DeadlineExceeded,
		"host unreachable": &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)},
		"net unreachable":  &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ENETUNREACH)},
	} {
		t.Run(name, func(t *testing.T) {
			f, _, _ := directFake()
			d, _ := newFakeDocker(t, f, Options{ConfigID: testNetConfig})
			dials := fakeDial(d, dialErr)
			for _, inst := range []string{"a", "b"} {
				r := runWeb(t, d, inst)
				if direct, err := d.Attach(context.Background(), r.ID, r.Ports); err != nil || len(direct) != 0 {
					t.Errorf("Attach(%s) = %v, %v; want no direct address and no error", inst, direct, err)
				}
			}
			if n := dials.Load(); n != reachProbeAttempts {
				t.Errorf("reachability dialled %d times, want %d (one decision, retried while the bridge comes up)", n, reachProbeAttempts)
			}
		})
	}
}

// Only Attach touches the network. A Docker that is never asked to (lunorad
// up --direct=false, lunorad down) creates none, probes nothing, and lists
// no direct address, even for a container an earlier run left connected.
func TestWithoutAttachThereIsNoNetworkAndNoDirectAddress(t *testing.T) {
	f, _, _ := directFake()
	d, _ := newFakeDocker(t, f, Options{ConfigID: testNetConfig})
	dials := fakeDial(d, nil)
	r := runWeb(t, d, "a")
	// Connected behind the engine's API, as an earlier daemon's Attach left it.
	if err := f.networkConnect(context.Background(), "net-id", r.ID); err != nil {
		t.Fatal(err)
	}
	f.containerList = func(ctx context.Context, o container.ListOptions) ([]container.Summary, error) {
		return []container.Summary{{ID: r.ID}}, nil
	}
	list, err := d.ListOwned(context.Background())
	if err != nil || len(list) != 1 {
		t.Fatalf("ListOwned = %+v, %v", list, err)
	}
	if r.Direct != nil || list[0].Direct != nil {
		t.Errorf("Direct after Run = %v, after ListOwned = %v; want none without an Attach", r.Direct, list[0].Direct)
	}
	if got := f.called("network"); len(got) != 0 || dials.Load() != 0 {
		t.Errorf("network calls = %v, dials = %d; want none", got, dials.Load())
	}
}

func TestExistingNetworkIsReusedOnlyWhenOurs(t *testing.T) {
	for name, tc := range map[string]struct {
		labels  map[string]string
		wantNet string // "": Attach fails
	}{
		"ours (left by a killed daemon)": {map[string]string{LabelManaged: "true", LabelConfig: testNetConfig}, "existing"},
		"another config's":               {map[string]string{LabelManaged: "true", LabelConfig: "other"}, ""},
		"not lunorad's":                  {nil, ""},
	} {
		t.Run(name, func(t *testing.T) {
			f, _, connected := directFake()
			f.networkCreate = func(ctx context.Context, name string, o network.CreateOptions) (network.CreateResponse, error) {
				return network.CreateResponse{}, cerrdefs.ErrConflict.WithMessage("network with name " + name + " already exists")
			}
			f.networkInspect = func(ctx context.Context, id string) (network.Inspect, error) {
				return network.Inspect{ID: "existing", Name: id, Driver: "bridge", Labels: tc.labels}, nil
			}
			d, _ := newFakeDocker(t, f, Options{ConfigID: testNetConfig})
			fakeDial(d, nil)
			for _, inst := range []string{"a", "b"} {
				r := runWeb(t, d, inst)
				_, err := d.Attach(context.Background(), r.ID, r.Ports)
				if (err == nil) != (tc.wantNet != "") {
					t.Errorf("Attach(%s): %v, want success %v", inst, err, tc.wantNet != "")
				}
			}
			if tc.wantNet != "" && (len(*connected) != 2 || (*connected)[0] != tc.wantNet) {
				t.Errorf("connects = %v, want two to %s", *connected, tc.wantNet)
			}
			if got := f.called("networkCreate"); len(got) != 1 {
				t.Errorf("network creates = %v, want one: the outcome is decided once", got)
			}
		})
	}
}

func TestAttachRecreatesANetworkRemovedUnderIt(t *testing.T) {
	f, _, _ := directFake()
	connect := f.networkConnect
	var removed atomic.Bool
	f.networkConnect = func(ctx context.Context, netID, containerID string) error {
		if removed.Swap(false) {
			return cerrdefs.ErrNotFound.WithMessage("network " + netID + " not found")
		}
		return connect(ctx, netID, containerID)
	}
	d, _ := newFakeDocker(t, f, Options{ConfigID: testNetConfig})
	fakeDial(d, nil)
	a := runWeb(t, d, "a")
	if _, err := d.Attach(context.Background(), a.ID, a.Ports); err != nil {
		t.Fatal(err)
	}
	removed.Store(true)
	b := runWeb(t, d, "b")
	if direct, err := d.Attach(context.Background(), b.ID, b.Ports); err != nil || direct[8080] == "" {
		t.Errorf("Attach after the network was removed = %v, %v", direct, err)
	}
	if got := f.called("networkCreate"); len(got) != 2 {
		t.Errorf("network creates = %v, want the network created again", got)
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

// A bridge created a moment ago can drop the first SYN while its link comes
// up (seen on the real engine: the first dial timed out, the host routes
// fine). One lost dial must not turn direct dial off for good.
func TestReachabilityProbeRetriesAFirstTimeout(t *testing.T) {
	f, _, _ := directFake()
	d, _ := newFakeDocker(t, f, Options{ConfigID: testNetConfig})
	var n atomic.Int32
	d.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if n.Add(1) == 1 {
			return nil, context.DeadlineExceeded
		}
		client, server := net.Pipe()
		_ = server.Close()
		return client, nil
	}
	r := runWeb(t, d, "a")
	direct, err := d.Attach(context.Background(), r.ID, r.Ports)
	if err != nil || len(direct) == 0 {
		t.Fatalf("Attach = %v, %v; want a direct address after the retried probe", direct, err)
	}
	if got := n.Load(); got != 2 {
		t.Errorf("dialled %d times, want 2", got)
	}
}

// ListOwned runs where requests wait (adoption), so it never probes: a
// restarted daemon lists an attached container without its direct address
// until an Attach in the background has found the route.
func TestListOwnedNeverProbesReachability(t *testing.T) {
	f, _, _ := directFake()
	d, _ := newFakeDocker(t, f, Options{ConfigID: testNetConfig})
	fakeDial(d, nil)
	r := runWeb(t, d, "a")
	ctx := context.Background()
	if _, err := d.Attach(ctx, r.ID, r.Ports); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	f.containerList = func(ctx context.Context, o container.ListOptions) ([]container.Summary, error) {
		return []container.Summary{{ID: r.ID}}, nil
	}

	restarted, _ := newFakeDocker(t, f, Options{ConfigID: testNetConfig})
	dials := fakeDial(restarted, nil)
	list, err := restarted.ListOwned(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("ListOwned = %+v, %v", list, err)
	}
	if list[0].Direct != nil || dials.Load() != 0 {
		t.Errorf("before any Attach: Direct = %v after %d dials, want none and no probe", list[0].Direct, dials.Load())
	}
	if _, err := restarted.Attach(ctx, r.ID, r.Ports); err != nil {
		t.Fatalf("Attach after the restart: %v", err)
	}
	list, err = restarted.ListOwned(ctx)
	if err != nil || len(list) != 1 || list[0].Direct[8080] != "10.99.0.2:8080" {
		t.Fatalf("after Attach: ListOwned = %+v, %v; want the direct address", list, err)
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d probes, want the Attach's one", n)
	}
}
