package supervisor

import (
	"context"
	"errors"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
)

func TestRemoveImagesRemovesOnlyThisConfigsImages(t *testing.T) {
	f := &fakeEngine{}
	var gotFilter string
	f.imageList = func(_ context.Context, o image.ListOptions) ([]image.Summary, error) {
		gotFilter = strings.Join(o.Filters.Get("label"), ",")
		return []image.Summary{{ID: "sha256:a"}, {ID: "sha256:gone"}, {ID: "sha256:busy"}}, nil
	}
	f.imageRemove = func(_ context.Context, id string, o image.RemoveOptions) error {
		if !o.Force || !o.PruneChildren {
			return errors.New("fake: remove must force (shared tag) and prune children")
		}
		switch id {
		case "sha256:gone":
			return cerrdefs.ErrNotFound
		case "sha256:busy":
			return cerrdefs.ErrConflict
		}
		return nil
	}
	d, _ := newFakeDocker(t, f, Options{ConfigID: "cfg1"})
	n, err := d.RemoveImages(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("RemoveImages = %d, %v; want 1 removed and no error (gone and in-use images are not failures)", n, err)
	}
	for _, want := range []string{LabelManaged + "=true", LabelConfig + "=cfg1"} {
		if !strings.Contains(gotFilter, want) {
			t.Errorf("image filter %q lacks %q: it could touch other configs' images", gotFilter, want)
		}
	}

	f.imageRemove = func(context.Context, string, image.RemoveOptions) error { return errors.New("engine on fire") }
	if _, err := d.RemoveImages(context.Background()); err == nil || !strings.Contains(err.Error(), "engine on fire") {
		t.Errorf("a failed removal must be reported, got %v", err)
	}
}
