package supervisor

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// readTar returns the regular files of a tar stream with their contents,
// and every entry name in names.
func readTar(t *testing.T, r io.Reader) (files map[string]string, names []string) {
	t.Helper()
	files = map[string]string{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			sort.Strings(names)
			return files, names
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		names = append(names, strings.TrimSuffix(hdr.Name, "/"))
		if hdr.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("reading %s: %v", hdr.Name, err)
			}
			files[hdr.Name] = string(b)
		}
	}
}

func contextFiles(t *testing.T, bc *buildContext) (map[string]string, []string) {
	t.Helper()
	if _, err := bc.file.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	return readTar(t, bc.file)
}

// copyDir copies the fixture dir into a fresh temporary directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func fixture(t *testing.T, parts ...string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(append([]string{"testdata"}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrepareBuildContextHonoursDockerignore(t *testing.T) {
	dir := fixture(t, "buildctx")
	for _, tc := range []struct {
		dockerfile      string
		present, absent []string
	}{
		{"Dockerfile", []string{"Dockerfile", ".dockerignore", "kept.txt", "sub/nested.txt"}, []string{"secret.txt", "logs", "logs/app.log", "Dockerfile.alt"}},
		{"Dockerfile.alt", []string{"Dockerfile.alt", ".dockerignore", "kept.txt"}, []string{"secret.txt", "logs/app.log", "Dockerfile"}},
	} {
		t.Run(tc.dockerfile, func(t *testing.T) {
			bc, err := prepareBuildContext(dir, filepath.Join(dir, tc.dockerfile))
			if err != nil {
				t.Fatalf("prepareBuildContext: %v", err)
			}
			defer bc.Close()
			if bc.dockerfile != tc.dockerfile {
				t.Errorf("dockerfile = %q, want %q", bc.dockerfile, tc.dockerfile)
			}
			_, names := contextFiles(t, bc)
			has := map[string]bool{}
			for _, n := range names {
				has[n] = true
			}
			for _, p := range tc.present {
				if !has[p] {
					t.Errorf("%s missing from the context %v", p, names)
				}
			}
			for _, p := range tc.absent {
				if has[p] {
					t.Errorf("%s must be excluded from the context %v", p, names)
				}
			}
		})
	}
}

func TestTestServerDockerignoreKeepsSourcesOut(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "testdata", "testserver"))
	if err != nil {
		t.Fatal(err)
	}
	bc, err := prepareBuildContext(dir, filepath.Join(dir, "Dockerfile"))
	if err != nil {
		t.Fatalf("prepareBuildContext: %v", err)
	}
	defer bc.Close()
	files, _ := contextFiles(t, bc)
	if _, ok := files["main.go"]; ok {
		t.Error("main.go was sent although the testserver .dockerignore excludes *.go")
	}
	if _, ok := files["Dockerfile"]; !ok {
		t.Error("the Dockerfile must always be sent")
	}
}

func TestPrepareBuildContextDigestFollowsIncludedFilesOnly(t *testing.T) {
	dir := copyDir(t, fixture(t, "buildctx"))
	digest := func() string {
		t.Helper()
		bc, err := prepareBuildContext(dir, filepath.Join(dir, "Dockerfile"))
		if err != nil {
			t.Fatalf("prepareBuildContext: %v", err)
		}
		defer bc.Close()
		return bc.digest
	}
	first := digest()
	if again := digest(); again != first {
		t.Fatalf("digest not stable: %s then %s", first, again)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("changed but ignored"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := digest(); got != first {
		t.Errorf("an ignored file changed the digest")
	}
	if err := os.WriteFile(filepath.Join(dir, "kept.txt"), []byte("changed!"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := digest(); got == first {
		t.Errorf("a changed context file did not change the digest")
	}
}

func TestPrepareBuildContextDockerfileOutside(t *testing.T) {
	dir, df := fixture(t, "buildctx"), fixture(t, "outside", "Dockerfile.outside")
	bc, err := prepareBuildContext(dir, df)
	if err != nil {
		t.Fatalf("prepareBuildContext: %v", err)
	}
	defer bc.Close()
	if !strings.HasPrefix(bc.dockerfile, ".dockerfile.") || len(bc.dockerfile) != len(".dockerfile.")+12 {
		t.Fatalf("dockerfile = %q, want .dockerfile.<12 hex>", bc.dockerfile)
	}
	files, _ := contextFiles(t, bc)
	want, _ := os.ReadFile(df)
	if files[bc.dockerfile] != string(want) {
		t.Errorf("the outside Dockerfile is not in the context under %s", bc.dockerfile)
	}
	ignore := files[".dockerignore"]
	if !strings.Contains(ignore, "secret.txt") || !strings.HasSuffix(ignore, "\n"+bc.dockerfile+"\n.dockerignore\n") {
		t.Errorf(".dockerignore sent = %q; want the original plus the added Dockerfile and itself", ignore)
	}
	if _, ok := files["secret.txt"]; ok {
		t.Error("secret.txt must stay excluded")
	}
	bc2, err := prepareBuildContext(dir, df)
	if err != nil {
		t.Fatal(err)
	}
	defer bc2.Close()
	if bc2.digest != bc.digest {
		t.Error("digest with an outside Dockerfile is not stable")
	}
}

func TestPrepareBuildContextErrors(t *testing.T) {
	dir := fixture(t, "buildctx")
	if _, err := prepareBuildContext(filepath.Join(dir, "nope"), filepath.Join(dir, "Dockerfile")); err == nil {
		t.Error("a missing context must fail")
	}
	if _, err := prepareBuildContext(filepath.Join(dir, "kept.txt"), filepath.Join(dir, "Dockerfile")); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file as context: err = %v", err)
	}
	if _, err := prepareBuildContext(dir, filepath.Join(dir, "Dockerfile.missing")); err == nil || !strings.Contains(err.Error(), "Dockerfile.missing") {
		t.Errorf("a missing Dockerfile: err = %v", err)
	}
}

func TestReadBuildStream(t *testing.T) {
	var logged []string
	logLine := func(s string) { logged = append(logged, s) }
	id, step, err := readBuildStream(jsonStream(
		`{"stream":"Step 1/3 : ARG BASE\n"}`,
		`{"stream":"Step 2/3 : FROM ${BASE}\n ---\u003e 0123456789ab\n"}`,
		`{"aux":{"ID":"sha256:abc"}}`,
		`{"stream":"Successfully built abc\n"}`,
	), logLine)
	if err != nil || id != "sha256:abc" || step != "Step 2/3 : FROM ${BASE}" {
		t.Errorf("success: id=%q step=%q err=%v", id, step, err)
	}
	if len(logged) != 4 || logged[2] != "---> 0123456789ab" {
		t.Errorf("logged lines = %q", logged)
	}

	msg := "COPY failed: file not found in build context or excluded by .dockerignore: stat nope.txt: file does not exist"
	_, step, err = readBuildStream(jsonStream(
		`{"stream":"Step 1/3 : FROM scratch\n"}`,
		`{"stream":"Step 2/3 : COPY nope.txt /x\n"}`,
		fmt.Sprintf(`{"errorDetail":{"message":%q},"error":%q}`, msg, msg),
		`{"stream":"never read\n"}`,
	), logLine)
	if err == nil || err.Error() != msg || step != "Step 2/3 : COPY nope.txt /x" {
		t.Errorf("failure: step=%q err=%v", step, err)
	}

	if _, _, err = readBuildStream(strings.NewReader(`{"stream":"Step 1/2`), logLine); err == nil || !strings.Contains(err.Error(), "reading the build output") {
		t.Errorf("truncated stream: err = %v", err)
	}
}

// buildingFake answers ImageBuild with a successful stream whose image ID
// counts the builds, after recording the request and its context.
type buildingFake struct {
	fakeEngine
	// mu guards opts, contexts and builds.
	mu       sync.Mutex
	opts     []build.ImageBuildOptions
	contexts []map[string]string
	builds   int
	// gate, when set, is received from before each build answers.
	gate chan struct{}
	// started receives once per build, after its context has been read.
	started chan struct{}
}

func newBuildingFake(t *testing.T) *buildingFake {
	f := &buildingFake{started: make(chan struct{}, 16)}
	f.imageBuild = func(ctx context.Context, r io.Reader, o build.ImageBuildOptions) (build.ImageBuildResponse, error) {
		files, _ := readTar(t, r)
		f.mu.Lock()
		f.builds++
		n := f.builds
		f.opts = append(f.opts, o)
		f.contexts = append(f.contexts, files)
		gate := f.gate
		f.mu.Unlock()
		f.started <- struct{}{}
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				return build.ImageBuildResponse{}, ctx.Err()
			}
		}
		return build.ImageBuildResponse{Body: jsonStream(
			`{"stream":"Step 1/2 : FROM scratch\n"}`,
			fmt.Sprintf(`{"aux":{"ID":"sha256:img%d"}}`, n),
		)}, nil
	}
	return f
}

func (f *buildingFake) buildCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.builds
}

func dockerfileContainer(name, dir, dockerfile string) *config.Container {
	return &config.Container{Name: name, Image: config.Image{
		Kind: config.ImageDockerfile, BuildContext: dir, DockerfilePath: filepath.Join(dir, dockerfile),
	}, BuildArgs: map[string]string{"BASE": "scratch"}}
}

func TestEnsureImageBuildsOnceAndCachesByContent(t *testing.T) {
	f := newBuildingFake(t)
	d, _ := newFakeDocker(t, &f.fakeEngine, Options{ConfigID: "abcdef0123"})
	dir := copyDir(t, fixture(t, "buildctx"))
	c := dockerfileContainer("imageResizer", dir, "Dockerfile")
	ctx := context.Background()

	id, err := d.EnsureImage(ctx, c)
	if err != nil || id != "sha256:img1" {
		t.Fatalf("EnsureImage = %q, %v", id, err)
	}
	o := f.opts[0]
	if o.Version != build.BuilderV1 || !o.Remove || !o.ForceRemove || o.Dockerfile != "Dockerfile" {
		t.Errorf("build options = %+v", o)
	}
	if len(o.Tags) != 2 || o.Tags[0] != "lunora-image-resizer:build" || o.Tags[1] != "lunorad-abcdef01-image-resizer:build" {
		t.Errorf("tags = %v", o.Tags)
	}
	if o.Labels[LabelManaged] != "true" || o.Labels[LabelConfig] != "abcdef0123" || o.Labels[LabelContainer] != "imageResizer" {
		t.Errorf("image labels = %v", o.Labels)
	}
	if v := o.BuildArgs["BASE"]; v == nil || *v != "scratch" {
		t.Errorf("build args = %v", o.BuildArgs)
	}
	if _, ok := f.contexts[0]["kept.txt"]; !ok {
		t.Error("kept.txt was not sent")
	}
	if _, ok := f.contexts[0]["secret.txt"]; ok {
		t.Error("secret.txt was sent despite .dockerignore")
	}

	if id, err := d.EnsureImage(ctx, c); err != nil || id != "sha256:img1" || f.buildCount() != 1 {
		t.Fatalf("unchanged context: id=%q err=%v builds=%d; want the cached image and no build", id, err, f.buildCount())
	}
	c.BuildArgs = map[string]string{"BASE": "other"}
	if id, err := d.EnsureImage(ctx, c); err != nil || id != "sha256:img2" {
		t.Fatalf("changed build arg: id=%q err=%v; want a rebuild", id, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kept.txt"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if id, err := d.EnsureImage(ctx, c); err != nil || id != "sha256:img3" {
		t.Fatalf("changed file: id=%q err=%v; want a rebuild", id, err)
	}
	// The cached image disappearing from the engine forces a rebuild too.
	f.imageInspect = func(ctx context.Context, ref string) (image.InspectResponse, error) {
		return image.InspectResponse{}, cerrdefs.ErrNotFound
	}
	if id, err := d.EnsureImage(ctx, c); err != nil || id != "sha256:img4" {
		t.Fatalf("removed image: id=%q err=%v; want a rebuild", id, err)
	}
}

func TestEnsureImageConcurrentCallsShareOneBuild(t *testing.T) {
	f := newBuildingFake(t)
	f.gate = make(chan struct{})
	d, _ := newFakeDocker(t, &f.fakeEngine, Options{})
	c := dockerfileContainer("web", copyDir(t, fixture(t, "buildctx")), "Dockerfile")

	const callers = 6
	ids, errs := make([]string, callers), make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], errs[i] = d.EnsureImage(context.Background(), c)
		}()
	}
	close(f.gate)
	wg.Wait()
	for i := range callers {
		if errs[i] != nil || ids[i] != "sha256:img1" {
			t.Errorf("caller %d: %q, %v", i, ids[i], errs[i])
		}
	}
	if n := f.buildCount(); n != 1 {
		t.Errorf("%d builds for one unchanged context, want 1", n)
	}
}

func TestEnsureImageJoinerOfAStaleBuildGetsTheNewFiles(t *testing.T) {
	f := newBuildingFake(t)
	f.gate = make(chan struct{}, 2)
	d, _ := newFakeDocker(t, &f.fakeEngine, Options{})
	dir := copyDir(t, fixture(t, "buildctx"))
	c := dockerfileContainer("web", dir, "Dockerfile")

	first := make(chan string, 1)
	go func() {
		id, _ := d.EnsureImage(context.Background(), c)
		first <- id
	}()
	// Wait until the first build has its (old) context in hand.
	<-f.started
	if err := os.WriteFile(filepath.Join(dir, "kept.txt"), []byte("edited during the build"), 0o644); err != nil {
		t.Fatal(err)
	}
	second := make(chan string, 1)
	go func() {
		id, _ := d.EnsureImage(context.Background(), c)
		second <- id
	}()
	f.gate <- struct{}{}
	f.gate <- struct{}{}
	if id := <-first; id != "sha256:img1" {
		t.Errorf("first caller got %q, want sha256:img1", id)
	}
	if id := <-second; id != "sha256:img2" {
		t.Errorf("second caller got %q, want the rebuild sha256:img2", id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.contexts) != 2 || f.contexts[1]["kept.txt"] != "edited during the build" {
		t.Errorf("the rebuild did not send the edited file")
	}
}

func TestEnsureImageCallerCancelDoesNotCancelTheBuild(t *testing.T) {
	f := newBuildingFake(t)
	f.gate = make(chan struct{})
	d, _ := newFakeDocker(t, &f.fakeEngine, Options{})
	c := dockerfileContainer("web", copyDir(t, fixture(t, "buildctx")), "Dockerfile")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := d.EnsureImage(ctx, c)
		done <- err
	}()
	<-f.started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: err = %v", err)
	}
	close(f.gate) // the build finishes on its own and is cached
	id, err := d.EnsureImage(context.Background(), c)
	if err != nil || id != "sha256:img1" || f.buildCount() != 1 {
		t.Errorf("after the cancelled caller: id=%q err=%v builds=%d; want the first build's image", id, err, f.buildCount())
	}
}

func TestEnsureImageBuildFailures(t *testing.T) {
	dir := fixture(t, "buildctx")
	msg := "COPY failed: file not found in build context or excluded by .dockerignore: stat nope.txt: file does not exist"
	f := &fakeEngine{imageBuild: func(ctx context.Context, r io.Reader, o build.ImageBuildOptions) (build.ImageBuildResponse, error) {
		_, _ = io.Copy(io.Discard, r)
		if o.Dockerfile == "Dockerfile.alt" {
			return build.ImageBuildResponse{}, errors.New("Error response from daemon: dockerfile parse error line 2: unknown instruction: FOO")
		}
		return build.ImageBuildResponse{Body: jsonStream(
			`{"stream":"Step 1/3 : FROM scratch\n"}`,
			`{"stream":"Step 2/3 : COPY nope.txt /x\n"}`,
			fmt.Sprintf(`{"errorDetail":{"message":%q},"error":%q}`, msg, msg),
		)}, nil
	}}
	d, _ := newFakeDocker(t, f, Options{})

	_, err := d.EnsureImage(context.Background(), dockerfileContainer("web", dir, "Dockerfile"))
	var be *lifecycle.BuildError
	if !errors.As(err, &be) || be.Container != "web" || be.Step != "Step 2/3 : COPY nope.txt /x" || be.Err.Error() != msg {
		t.Fatalf("failing step: err = %#v", err)
	}
	if want := `building image for container "web" failed at Step 2/3 : COPY nope.txt /x: ` + msg; err.Error() != want {
		t.Errorf("message = %q\nwant      %q", err.Error(), want)
	}

	_, err = d.EnsureImage(context.Background(), dockerfileContainer("web", dir, "Dockerfile.alt"))
	if !errors.As(err, &be) || be.Step != "" || !strings.Contains(err.Error(), "unknown instruction: FOO") {
		t.Errorf("parse error: err = %v", err)
	}

	_, err = d.EnsureImage(context.Background(), dockerfileContainer("web", dir, "Dockerfile.missing"))
	if !errors.As(err, &be) || !strings.Contains(err.Error(), "Dockerfile.missing") {
		t.Errorf("missing Dockerfile: err = %v", err)
	}
	if n := len(f.called("build")); n != 2 {
		t.Errorf("%d builds, want 2 (none for the missing Dockerfile)", n)
	}
}

func TestEnsureImageRegistryAndUnsupportedKinds(t *testing.T) {
	f := &fakeEngine{imageInspect: func(ctx context.Context, ref string) (image.InspectResponse, error) {
		if ref == "present:1" {
			return image.InspectResponse{ID: "sha256:present"}, nil
		}
		return image.InspectResponse{}, cerrdefs.ErrNotFound
	}}
	d, _ := newFakeDocker(t, f, Options{})
	reg := func(ref string) *config.Container {
		return &config.Container{Name: "web", Image: config.Image{Kind: config.ImageRegistry, Reference: ref}}
	}
	if id, err := d.EnsureImage(context.Background(), reg("present:1")); err != nil || id != "sha256:present" {
		t.Errorf("present image: %q, %v", id, err)
	}
	if n := len(f.called("pull")); n != 0 {
		t.Errorf("a present image was pulled %d times", n)
	}

	_, err := d.EnsureImage(context.Background(), reg("registry.example/missing:2"))
	var be *lifecycle.BuildError
	if !errors.As(err, &be) {
		t.Fatalf("missing image: err = %v, want a BuildError", err)
	}
	for _, want := range []string{`image "registry.example/missing:2" is not present`, "could not be pulled", "fake: no registry",
		"docker build -t registry.example/missing:2 .", "docker load"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing image message lacks %q: %s", want, err)
		}
	}
	if !be.Registry || strings.HasPrefix(err.Error(), "building image") {
		t.Errorf("a missing registry image must not read as a failed build: %s", err)
	}
	if n := len(f.called("pull registry.example/missing:2")); n != 1 {
		t.Errorf("pulled %d times, want once", n)
	}

	_, err = d.EnsureImage(context.Background(), &config.Container{Name: "rp", Image: config.Image{Kind: config.ImageBuild, BuildDir: "/x"}})
	if !errors.As(err, &be) || !strings.Contains(err.Error(), "`image: {build: ...}` (Railpack) is not supported by lunorad yet; use a Dockerfile path or directory") {
		t.Errorf("railpack: err = %v", err)
	}
}

// A build whose cached layer is deleted under it (another config's image
// removal pruning shared parents) is built once more; other failures are not.
func TestEnsureImageRebuildsWhenACachedLayerVanishes(t *testing.T) {
	const vanished = `failed to get digest sha256:04be94b8254c8a0935f2a3128f1af3fdcac1274c7f389baf062b6aeed8e4ff89: open /var/lib/docker/image/overlay2/imagedb/content/sha256/04be94b8254c8a0935f2a3128f1af3fdcac1274c7f389baf062b6aeed8e4ff89: no such file or directory`
	for _, tc := range []struct {
		name       string
		firstError string
		wantBuilds int
		wantErr    bool
	}{
		{"vanished layer", vanished, 2, false},
		{"a real failure", `COPY failed: file not found in build context or excluded by .dockerignore: stat nope.txt: file does not exist`, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeEngine{}
			var mu sync.Mutex
			builds := 0
			f.imageBuild = func(ctx context.Context, r io.Reader, o build.ImageBuildOptions) (build.ImageBuildResponse, error) {
				files, _ := readTar(t, r)
				if _, ok := files["Dockerfile"]; !ok {
					t.Errorf("build %d got a context without its Dockerfile: %v", builds+1, files)
				}
				mu.Lock()
				builds++
				n := builds
				mu.Unlock()
				if n == 1 {
					msg, _ := json.Marshal(tc.firstError)
					return build.ImageBuildResponse{Body: jsonStream(
						`{"stream":"Step 5/7 : LABEL sh.lunora.config=cfg\n"}`,
						`{"errorDetail":{"message":`+string(msg)+`},"error":`+string(msg)+`}`,
					)}, nil
				}
				return build.ImageBuildResponse{Body: jsonStream(`{"aux":{"ID":"sha256:rebuilt"}}`)}, nil
			}
			d, _ := newFakeDocker(t, f, Options{ConfigID: "cfg"})
			dir := copyDir(t, fixture(t, "buildctx"))
			id, err := d.EnsureImage(context.Background(), dockerfileContainer("web", dir, "Dockerfile"))
			if builds != tc.wantBuilds {
				t.Errorf("%d builds, want %d", builds, tc.wantBuilds)
			}
			switch {
			case tc.wantErr && err == nil:
				t.Fatalf("EnsureImage = %q, want the build's error", id)
			case !tc.wantErr && (err != nil || id != "sha256:rebuilt"):
				t.Fatalf("EnsureImage = %q, %v; want the second build's image", id, err)
			}
		})
	}
}
