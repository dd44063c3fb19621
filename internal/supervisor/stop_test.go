package supervisor

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/go-connections/nat"

	"github.com/lunora/lunorad/internal/lifecycle"
)

// exitOnSignal makes the fake container exit when it receives exitOn.
func exitOnSignal(f *fakeEngine, exitOn string) {
	exited := make(chan container.WaitResponse, 1)
	f.containerWait = func(ctx context.Context, id string) (<-chan container.WaitResponse, <-chan error) {
		return exited, make(chan error)
	}
	f.containerKill = func(ctx context.Context, id, signal string) error {
		if signal == exitOn {
			exited <- container.WaitResponse{StatusCode: 0}
		}
		return nil
	}
}

func TestStopHonouredSignalNeedsNoKill(t *testing.T) {
	f := &fakeEngine{}
	exitOnSignal(f, "SIGINT")
	d, _ := newFakeDocker(t, f, Options{})
	if err := d.Stop(context.Background(), "c1", "2", time.Minute); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	want := []string{"wait c1", "kill c1 SIGINT", "remove c1"}
	if got := f.called(""); !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
}

func TestStopKillsAfterGrace(t *testing.T) {
	f := &fakeEngine{}
	exitOnSignal(f, "SIGKILL") // SIGTERM is ignored
	d, fc := newFakeDocker(t, f, Options{StopGrace: 3 * time.Second})
	done := make(chan error, 1)
	go func() { done <- d.Stop(context.Background(), "c1", "", 0) }() // 0: the configured grace
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fc.BlockUntil(ctx, 1); err != nil {
		t.Fatalf("Stop never armed its grace timer: %v", err)
	}
	fc.Advance(2900 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Stop returned before the grace passed: %v", err)
	default:
	}
	if got := f.called("kill"); !slices.Equal(got, []string{"kill c1 SIGTERM"}) {
		t.Errorf("kills before grace = %v", got)
	}
	fc.Advance(100 * time.Millisecond)
	if err := <-done; err != nil {
		t.Fatalf("Stop: %v", err)
	}
	want := []string{"wait c1", "kill c1 SIGTERM", "kill c1 SIGKILL", "remove c1"}
	if got := f.called(""); !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
}

func TestStopContainerAlreadyGoneOrStopped(t *testing.T) {
	f := &fakeEngine{containerKill: func(ctx context.Context, id, signal string) error {
		if id == "gone" {
			return cerrdefs.ErrNotFound.WithMessage("No such container: gone")
		}
		return cerrdefs.ErrConflict.WithMessage("Container stopped is not running")
	}}
	d, _ := newFakeDocker(t, f, Options{})
	if err := d.Stop(context.Background(), "gone", "SIGTERM", time.Hour); err != nil {
		t.Errorf("Stop(gone) = %v, want nil", err)
	}
	if err := d.Stop(context.Background(), "stopped", "SIGTERM", time.Hour); err != nil {
		t.Errorf("Stop(stopped) = %v, want nil", err)
	}
	if got := f.called("remove"); !slices.Equal(got, []string{"remove stopped"}) {
		t.Errorf("removes = %v, want only the stopped container", got)
	}
}

func TestStopRejectsUnknownSignal(t *testing.T) {
	f := &fakeEngine{}
	d, _ := newFakeDocker(t, f, Options{})
	if err := d.Stop(context.Background(), "c1", "SIGBOGUS", time.Second); err == nil || !strings.Contains(err.Error(), "unknown signal") {
		t.Errorf("err = %v", err)
	}
	if got := f.called(""); len(got) != 0 {
		t.Errorf("calls = %v, want none", got)
	}
}

func TestStopStillRemovesWhenCallerGivesUp(t *testing.T) {
	f := &fakeEngine{}
	d, fc := newFakeDocker(t, f, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Stop(ctx, "c1", "TERM", time.Minute) }()
	bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer bcancel()
	if err := fc.BlockUntil(bctx, 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if got := f.called("remove"); !slices.Equal(got, []string{"remove c1"}) {
		t.Errorf("removes = %v: the container must be removed even when the caller gave up", got)
	}
}

func TestRemove(t *testing.T) {
	f := &fakeEngine{containerRemove: func(ctx context.Context, id string) error {
		switch id {
		case "gone":
			return cerrdefs.ErrNotFound
		case "busy":
			return cerrdefs.ErrConflict.WithMessage("removal of container busy is already in progress")
		case "broken":
			return errors.New("driver failed")
		}
		return nil
	}}
	// "busy" is being removed by another call, which finishes: Remove waits
	// for it and then finds the container gone.
	f.containerWait = func(ctx context.Context, id string) (<-chan container.WaitResponse, <-chan error) {
		removed := make(chan container.WaitResponse, 1)
		removed <- container.WaitResponse{}
		return removed, make(chan error)
	}
	f.containerInspect = func(ctx context.Context, id string) (container.InspectResponse, error) {
		return container.InspectResponse{}, cerrdefs.ErrNotFound
	}
	d, _ := newFakeDocker(t, f, Options{})
	for _, id := range []string{"ok", "gone", "busy"} {
		if err := d.Remove(context.Background(), id); err != nil {
			t.Errorf("Remove(%s) = %v", id, err)
		}
	}
	if err := d.Remove(context.Background(), "broken"); err == nil || !strings.Contains(err.Error(), "driver failed") {
		t.Errorf("Remove(broken) = %v", err)
	}
}

func TestRemoveAllOwnedTriesEveryContainer(t *testing.T) {
	var filter filters.Args
	f := &fakeEngine{
		containerList: func(ctx context.Context, o container.ListOptions) ([]container.Summary, error) {
			filter = o.Filters
			if !o.All {
				t.Error("RemoveAllOwned must list stopped containers too")
			}
			return []container.Summary{{ID: "a"}, {ID: "b"}, {ID: "c"}}, nil
		},
		containerRemove: func(ctx context.Context, id string) error {
			if id == "b" {
				return errors.New("device busy")
			}
			return nil
		},
	}
	d, _ := newFakeDocker(t, f, Options{ConfigID: "cfgX"})
	err := d.RemoveAllOwned(context.Background())
	if err == nil || !strings.Contains(err.Error(), "removing container b: device busy") {
		t.Errorf("err = %v", err)
	}
	got := f.called("remove")
	slices.Sort(got)
	if !slices.Equal(got, []string{"remove a", "remove b", "remove c"}) {
		t.Errorf("removes = %v", got)
	}
	if !filter.ExactMatch("label", LabelManaged+"=true") || !filter.ExactMatch("label", LabelConfig+"=cfgX") || !filter.ExactMatch("label", LabelInstance) {
		t.Errorf("list filter = %v, want the ownership labels", filter)
	}
}

func TestListOwnedMapsAndSkipsVanished(t *testing.T) {
	f := &fakeEngine{
		containerList: func(ctx context.Context, o container.ListOptions) ([]container.Summary, error) {
			return []container.Summary{{ID: "b"}, {ID: "vanished"}, {ID: "a"}}, nil
		},
		containerInspect: func(ctx context.Context, id string) (container.InspectResponse, error) {
			if id == "vanished" {
				return container.InspectResponse{}, cerrdefs.ErrNotFound
			}
			return container.InspectResponse{
				ContainerJSONBase: &container.ContainerJSONBase{ID: id, Name: "/lunorad-" + id,
					State: &container.State{Running: id == "a", ExitCode: map[string]int{"a": 0, "b": 3}[id]}},
				Config: &container.Config{Labels: map[string]string{LabelContainer: "web", LabelInstance: "i-" + id, LabelGeneration: "9"}},
			}, nil
		},
	}
	d, _ := newFakeDocker(t, f, Options{})
	got, err := d.ListOwned(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "lunorad-a" || got[1].Name != "lunorad-b" {
		t.Fatalf("ListOwned = %+v", got)
	}
	if !got[0].Running || got[1].Running || got[1].ExitCode != 3 || got[1].Instance != "i-b" || got[1].Generation != 9 {
		t.Errorf("mapping = %+v", got)
	}
}

// ListOwnedStates is reconcile's listing, every interval: one list call,
// and an inspect only for a container that is not running.
func TestListOwnedStatesInspectsOnlyTheNotRunning(t *testing.T) {
	labels := func(id string) map[string]string {
		return map[string]string{LabelContainer: "web", LabelInstance: "i-" + id, LabelConfigHash: "h", LabelGeneration: "9"}
	}
	const created = 1_700_000_000
	f := &fakeEngine{
		containerList: func(ctx context.Context, o container.ListOptions) ([]container.Summary, error) {
			if !o.All || !o.Filters.ExactMatch("label", LabelConfig+"=cfgS") || !o.Filters.ExactMatch("label", LabelInstance) {
				t.Errorf("list options = %+v, want every owned container of cfgS", o)
			}
			return []container.Summary{
				{ID: "b", Names: []string{"/lunorad-b"}, State: container.StateExited, Created: created, Labels: labels("b")},
				{ID: "vanished", Names: []string{"/lunorad-vanished"}, State: container.StateExited, Created: created, Labels: labels("vanished")},
				{ID: "p", Names: []string{"/lunorad-p"}, State: container.StatePaused, Created: created, Labels: labels("p")},
				{ID: "a", Names: []string{"/other/alias", "/lunorad-a"}, State: container.StateRunning, Created: created, Labels: labels("a")},
			}, nil
		},
		containerInspect: func(ctx context.Context, id string) (container.InspectResponse, error) {
			if id == "vanished" {
				return container.InspectResponse{}, cerrdefs.ErrNotFound
			}
			return container.InspectResponse{
				ContainerJSONBase: &container.ContainerJSONBase{ID: id, Name: "/lunorad-" + id, Created: "2023-11-14T22:13:20.75Z",
					State: &container.State{Running: id == "p", Paused: id == "p", ExitCode: map[string]int{"b": 3}[id],
						StartedAt: "2023-11-14T22:13:21Z"}},
				Config: &container.Config{Labels: labels(id)},
				// Ports are not filled, though inspect has them for p.
				NetworkSettings: &container.NetworkSettings{NetworkSettingsBase: container.NetworkSettingsBase{
					Ports: nat.PortMap{"8080/tcp": {{HostIP: publishHostIP, HostPort: "41000"}}}}},
			}, nil
		},
	}
	d, _ := newFakeDocker(t, f, Options{ConfigID: "cfgS"})
	got, err := d.ListOwnedStates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.called("list")); n != 1 {
		t.Errorf("%d list calls, want 1", n)
	}
	inspected := f.called("inspect")
	slices.Sort(inspected)
	if !slices.Equal(inspected, []string{"inspect b", "inspect p", "inspect vanished"}) {
		t.Errorf("inspects = %v, want only the containers not running", inspected)
	}
	if len(got) != 3 || got[0].ID != "a" || got[1].ID != "b" || got[2].ID != "p" {
		t.Fatalf("ListOwnedStates = %+v, want a, b and p (vanished left out)", got)
	}
	want := lifecycle.Running{ID: "a", Name: "lunorad-a", Container: "web", Instance: "i-a", ConfigHash: "h", Generation: 9,
		Running: true, Created: time.Unix(created, 0)}
	if a := got[0]; !reflect.DeepEqual(a, want) {
		t.Errorf("a = %+v\nwant %+v (from the list alone)", a, want)
	}
	exact := time.Date(2023, 11, 14, 22, 13, 20, 750_000_000, time.UTC)
	if b := got[1]; b.Running || b.ExitCode != 3 || !b.Created.Equal(exact) || b.StartedAt.IsZero() || b.Instance != "i-b" || b.Generation != 9 {
		t.Errorf("b = %+v, want exited with 3 and the exact times", b)
	}
	if p := got[2]; !p.Running || p.Ports != nil {
		t.Errorf("p = %+v, want a paused container running, as inspect says, and no ports", p)
	}
}
