package supervisor

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"

	"github.com/lunora/lunorad/internal/lifecycle"
)

// A container that exits before its ports are read back is reported as a
// lifecycle.RunExitedError with its exit code (not as an unpublished port),
// and removed.
func TestRunReportsAContainerThatExitedAtOnce(t *testing.T) {
	f, _, _ := runFake()
	inspect := f.containerInspect
	f.containerInspect = func(ctx context.Context, id string) (container.InspectResponse, error) {
		r, err := inspect(ctx, id)
		r.State = &container.State{Status: container.StateExited, Running: false, ExitCode: 1}
		r.NetworkSettings.Ports = nat.PortMap{} // an exited container publishes nothing
		return r, err
	}
	d, _ := newFakeDocker(t, f, Options{})
	_, err := d.Run(context.Background(), lifecycle.RunSpec{Container: "web", Image: "img"})
	var exited *lifecycle.RunExitedError
	if !errors.As(err, &exited) || exited.ContainerID != "c1" || exited.ExitCode != 1 || !errors.Is(err, lifecycle.ErrExited) {
		t.Fatalf("err = %v, want a RunExitedError for c1 with exit code 1", err)
	}
	if got := f.called("remove"); !slices.Equal(got, []string{"remove c1"}) {
		t.Errorf("removes = %v, want the exited container", got)
	}
}
