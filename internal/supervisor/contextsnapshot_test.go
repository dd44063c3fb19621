package supervisor

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"

	"github.com/lunora/lunorad/internal/config"
)

// backdate gives every file under dir an mtime of an hour ago, so that the
// snapshot is not "racy" by mtime.
func backdate(t *testing.T, dir string) time.Time {
	t.Helper()
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
	return old
}

func TestSnapshotContextSeesEveryChange(t *testing.T) {
	dir := copyDir(t, fixture(t, "buildctx"))
	dockerfile := filepath.Join(dir, "Dockerfile")
	old := backdate(t, dir)
	snap := func() string {
		t.Helper()
		s, ok := snapshotContext(dir, dockerfile, 0)
		if !ok {
			t.Fatal("snapshot of a quiet context is not trusted")
		}
		return s
	}
	first := snap()
	if again := snap(); again != first {
		t.Fatal("two snapshots of an untouched context differ")
	}

	// Same size, mtime put back: only the ctime tells (what `cp -p` does).
	kept := filepath.Join(dir, "kept.txt")
	if err := os.WriteFile(kept, []byte("KEPT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(kept, old, old); err != nil {
		t.Fatal(err)
	}
	second := snap()
	if second == first {
		t.Error("a same-size rewrite with its mtime put back was not noticed")
	}

	// A new file, even one .dockerignore excludes, changes the snapshot: the
	// full hash then decides whether the context really changed.
	if err := os.WriteFile(filepath.Join(dir, "logs", "new.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if snap() == second {
		t.Error("an added file was not noticed")
	}
}

func TestSnapshotContextDistrustsFreshFiles(t *testing.T) {
	dir := copyDir(t, fixture(t, "buildctx"))
	// Just written: within the default window, stamps may not tell two writes apart.
	if _, ok := snapshotContext(dir, filepath.Join(dir, "Dockerfile"), defaultRacyWindow); ok {
		t.Error("a context written a moment ago must not be trusted")
	}
	if _, ok := snapshotContext(filepath.Join(dir, "missing"), filepath.Join(dir, "Dockerfile"), 0); ok {
		t.Error("a context that cannot be walked must not be trusted")
	}
}

// A cold start must not tar and hash an untouched context again. The proof:
// with no temp dir to spool a tar into, EnsureImage still answers from the
// snapshot; once a file changes, it has to tar (and fails without a temp dir).
func TestEnsureImageSkipsTheTarWhenNothingChanged(t *testing.T) {
	f := newBuildingFake(t)
	d, _ := newFakeDocker(t, &f.fakeEngine, Options{})
	d.racyWindow = 0
	dir := copyDir(t, fixture(t, "buildctx"))
	old := backdate(t, dir)
	c := dockerfileContainer("web", dir, "Dockerfile")
	ctx := context.Background()

	if id, err := d.EnsureImage(ctx, c); err != nil || id != "sha256:img1" {
		t.Fatalf("first EnsureImage = %q, %v", id, err)
	}
	tmp := os.Getenv("TMPDIR")
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "gone"))
	if id, err := d.EnsureImage(ctx, c); err != nil || id != "sha256:img1" || f.buildCount() != 1 {
		t.Fatalf("untouched context: id=%q err=%v builds=%d; want the cached image without a tar", id, err, f.buildCount())
	}

	t.Setenv("TMPDIR", tmp)

	// A changed build arg is not a file: the snapshot holds, the digest does not.
	c.BuildArgs = map[string]string{"BASE": "other"}
	if id, err := d.EnsureImage(ctx, c); err != nil || id != "sha256:img2" {
		t.Fatalf("changed build arg: id=%q err=%v; want a rebuild", id, err)
	}

	kept := filepath.Join(dir, "kept.txt")
	if err := os.WriteFile(kept, []byte("KEPT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(kept, old, old); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "gone"))
	if _, err := d.EnsureImage(ctx, c); err == nil {
		t.Fatal("a changed file was served from the snapshot; want a fresh tar (which fails here)")
	}
	t.Setenv("TMPDIR", tmp)
	if id, err := d.EnsureImage(ctx, c); err != nil || id != "sha256:img3" {
		t.Fatalf("changed file: id=%q err=%v; want a rebuild", id, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if got := f.contexts[len(f.contexts)-1]["kept.txt"]; got != "KEPT\n" {
		t.Errorf("the rebuild sent kept.txt = %q, want the new content", got)
	}
}

// BenchmarkEnsureImageUnchanged is the cost a cold start pays in EnsureImage
// for an unchanged context holding an 8 MiB binary (like the test image):
// "tar+hash" is the path before snapshots (forced by distrusting every
// snapshot), "snapshot" the path now.
func BenchmarkEnsureImageUnchanged(b *testing.B) {
	for _, bc := range []struct {
		name       string
		racyWindow time.Duration
	}{{"tar+hash", 1 << 62}, {"snapshot", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			dir := b.TempDir()
			bin := make([]byte, 8<<20)
			for i := range bin {
				bin[i] = byte(i * 7)
			}
			files := map[string][]byte{"Dockerfile": []byte("FROM scratch\nCOPY app /app\n"), "app": bin}
			for name, data := range files {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
					b.Fatal(err)
				}
				old := time.Now().Add(-time.Hour)
				if err := os.Chtimes(filepath.Join(dir, name), old, old); err != nil {
					b.Fatal(err)
				}
			}
			f := &fakeEngine{}
			f.imageBuild = func(ctx context.Context, r io.Reader, o build.ImageBuildOptions) (build.ImageBuildResponse, error) {
				_, _ = io.Copy(io.Discard, r)
				return build.ImageBuildResponse{Body: jsonStream(`{"aux":{"ID":"sha256:img"}}`)}, nil
			}
			d, err := newDocker(context.Background(), f, Options{ConfigID: "bench0123456"})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			d.racyWindow = bc.racyWindow
			c := &config.Container{Name: "web", Image: config.Image{
				Kind: config.ImageDockerfile, BuildContext: dir, DockerfilePath: filepath.Join(dir, "Dockerfile"),
			}}
			ctx := context.Background()
			if _, err := d.EnsureImage(ctx, c); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := d.EnsureImage(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
