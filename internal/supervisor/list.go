package supervisor

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"golang.org/x/sync/errgroup"

	"github.com/lunora/lunorad/internal/lifecycle"
)

// ListOwned returns every container of this config, running or not, sorted
// by name. Each is inspected for what the list lacks (start time, exit code,
// port bindings, network address); one removed in between is left out.
func (d *Docker) ListOwned(ctx context.Context) ([]lifecycle.Running, error) {
	list, err := d.listOwned(ctx)
	if err != nil {
		return nil, err
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

// ListOwnedStates returns every container of this config, running or not,
// sorted by name, for reconcile: one ContainerList call, and an inspect only
// for a container that is not running (rare), for its exit code and exact
// times. A running one is mapped from the list alone: no ports, direct
// addresses or start time, and Created in whole seconds. One removed in
// between is left out. Unlike ListOwned, its cost does not grow with an
// inspect per running container.
func (d *Docker) ListOwnedStates(ctx context.Context) ([]lifecycle.Running, error) {
	list, err := d.listOwned(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]lifecycle.Running, 0, len(list))
	for _, c := range list {
		if c.State == container.StateRunning {
			out = append(out, runningFromSummary(c))
			continue
		}
		// Inspected rather than mapped: the list has no exit code, and
		// inspect calls a paused or restarting container running, as
		// ListOwned does.
		ictx, cancel := d.callCtx(ctx)
		insp, err := d.api.ContainerInspect(ictx, c.ID)
		cancel()
		if cerrdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("inspecting owned container %s: %w", shortID(c.ID), err)
		}
		r := runningFromInspect(insp)
		r.Ports = nil // as for the listed ones: ports are ListOwned's
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// runningFromSummary maps a list entry, which has no exit code, start time
// or ports. Its Created is Unix seconds (rounded down), and its Names carry
// the leading "/" (plus "/other/alias" entries for legacy links, skipped).
func runningFromSummary(c container.Summary) lifecycle.Running {
	r := lifecycle.Running{ID: c.ID, Running: c.State == container.StateRunning}
	for _, n := range c.Names {
		if n = strings.TrimPrefix(n, "/"); !strings.Contains(n, "/") {
			r.Name = n
			break
		}
	}
	r.Container, r.Instance, r.ConfigHash, r.Generation = ownerLabels(c.Labels)
	if c.Created > 0 {
		r.Created = time.Unix(c.Created, 0)
	}
	return r
}

// listOwned is the engine's list of this config's containers, running or not.
func (d *Docker) listOwned(ctx context.Context) ([]container.Summary, error) {
	lctx, cancel := d.callCtx(ctx)
	defer cancel()
	list, err := d.api.ContainerList(lctx, container.ListOptions{All: true, Filters: ownedFilter(d.configID)})
	if err != nil {
		return nil, fmt.Errorf("listing owned containers: %w", err)
	}
	return list, nil
}
