package supervisor

import (
	"context"
	"errors"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"go.uber.org/zap"
)

// RemoveImages removes every image this config's builds produced (labelled
// sh.lunora.managed and sh.lunora.config=<id>) and reports how many. Images
// are kept by default, since a rebuild of an unchanged context is then
// instant; this is for `lunorad down --images` and for tests, which must
// leave the engine as they found it. Each config's images carry its own
// label step, so their ids are never shared with another config's; Force
// only untags the shared lunora-<name>:build tag. An image still used by a
// running container (of this config or not) is left alone and reported;
// Force does delete one that only stopped containers use.
func (d *Docker) RemoveImages(ctx context.Context) (int, error) {
	lctx, cancel := d.callCtx(ctx)
	list, err := d.api.ImageList(lctx, image.ListOptions{Filters: configFilter(d.configID)})
	cancel()
	if err != nil {
		return 0, fmt.Errorf("listing images of config %s: %w", d.configID, err)
	}
	removed := 0
	var errs []error
	for _, img := range list {
		rctx, cancel := d.callCtx(ctx)
		_, err := d.api.ImageRemove(rctx, img.ID, image.RemoveOptions{Force: true, PruneChildren: true})
		cancel()
		switch {
		case err == nil:
			removed++
		case cerrdefs.IsNotFound(err):
		case cerrdefs.IsConflict(err):
			d.log.Info("image still in use; kept", zap.String("image", shortID(img.ID)), zap.Error(err))
		default:
			errs = append(errs, fmt.Errorf("removing image %s: %w", shortID(img.ID), err))
		}
	}
	return removed, errors.Join(errs...)
}
