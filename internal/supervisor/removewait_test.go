package supervisor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"

	"github.com/lunora/lunorad/internal/lifecycle"
)

// A removal that meets another one in progress returns only once the
// container is gone, and fails if it is not.
func TestRemoveWaitsForARemovalInProgress(t *testing.T) {
	released, waiting := make(chan struct{}), make(chan struct{})
	var waitOnce sync.Once
	stillThere := false
	f := &fakeEngine{
		containerRemove: func(ctx context.Context, id string) error {
			return cerrdefs.ErrConflict.WithMessage("removal of container " + id + " is already in progress")
		},
		containerWait: func(ctx context.Context, id string) (<-chan container.WaitResponse, <-chan error) {
			removed := make(chan container.WaitResponse, 1)
			waitOnce.Do(func() { close(waiting) })
			go func() {
				<-released
				removed <- container.WaitResponse{}
			}()
			return removed, make(chan error)
		},
		containerInspect: func(ctx context.Context, id string) (container.InspectResponse, error) {
			if stillThere {
				return container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{ID: id}}, nil
			}
			return container.InspectResponse{}, cerrdefs.ErrNotFound
		},
	}
	d, _ := newFakeDocker(t, f, Options{})
	done := make(chan error, 1)
	go func() { done <- d.Remove(context.Background(), "c1") }()
	<-waiting
	select {
	case err := <-done:
		t.Fatalf("Remove returned %v while the other removal was still in progress", err)
	default:
	}
	close(released)
	if err := <-done; err != nil {
		t.Fatalf("Remove after the other removal finished = %v", err)
	}
	if got := f.called("wait"); !slices.Equal(got, []string{"wait c1"}) {
		t.Errorf("waits = %v", got)
	}

	stillThere = true // the other removal failed
	if err := d.Remove(context.Background(), "c1"); err == nil || !strings.Contains(err.Error(), "still exists") {
		t.Errorf("Remove when the other removal failed = %v", err)
	}
}

// On the real engine, concurrent removals of one running container (a
// Destroy racing a Stop) each return only once the container is gone.
func TestConcurrentRemovesReturnOnceTheContainerIsGone(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	r := runTestServer(t, suite.d, lifecycle.RunSpec{Env: map[string]string{"IGNORE_SIGTERM": "1"}})
	waitHTTP(t, r.Ports[8080], "/live")
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			err := suite.d.Remove(ctx, r.ID)
			if err == nil {
				// Checked by each caller on return, not after all are done.
				if _, ierr := suite.cli.ContainerInspect(ctx, r.ID); !cerrdefs.IsNotFound(ierr) {
					err = fmt.Errorf("Remove returned while the container still exists (inspect: %v)", ierr)
				}
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
