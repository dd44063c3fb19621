package supervisor

import (
	"context"
	"fmt"
	"sort"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"golang.org/x/sync/errgroup"

	"github.com/lunora/lunorad/internal/lifecycle"
)

// ListOwned returns every container of this config, running or not, sorted
// by name. Each is inspected for what the list lacks (start time, exit code,
// port bindings, network address); one removed in between is left out.
func (d *Docker) ListOwned(ctx context.Context) ([]lifecycle.Running, error) {
	lctx, cancel := d.callCtx(ctx)
	list, err := d.api.ContainerList(lctx, container.ListOptions{All: true, Filters: ownedFilter(d.configID)})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("listing owned containers: %w", err)
	}
	found := make([]*lifecycle.Running, len(list))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, c := range list {
		g.Go(func() error {
			ictx, cancel := d.callCtx(gctx)
			defer cancel()
			insp, err := d.api.ContainerInspect(ictx, c.ID)
			if cerrdefs.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("inspecting owned container %s: %w", shortID(c.ID), err)
			}
			r := runningFromInspect(insp)
			// Only once a probe said yes: the listing is on adoption's
			// path, which requests wait for, and an undecided route is
			// left to the run's background attach.
			if d.routeKnown() {
				r.Direct = d.directAddrs(gctx, insp, r.Ports)
			}
			found[i] = &r
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make([]lifecycle.Running, 0, len(found))
	for _, r := range found {
		if r != nil {
			out = append(out, *r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
