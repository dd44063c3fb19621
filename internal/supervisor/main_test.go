package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"go.uber.org/zap/zaptest"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// suite is shared by the integration tests: one engine connection, one
// testserver image built once in TestMain, and a config identity unique to
// this run so that nothing left by an earlier run is ever touched.
var suite struct {
	// skip says why the integration tests are skipped ("" = they run).
	skip     string
	configID string
	d        *Docker
	// cli is a raw client for checks the runtime has no method for.
	cli *client.Client
	// image is the testserver image ID, tag one of its tags.
	image, tag string
}

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	ctx := context.Background()
	suffix := make([]byte, 5)
	_, _ = rand.Read(suffix)
	suite.configID = "t" + hex.EncodeToString(suffix)

	d, err := New(ctx, Options{ConfigID: suite.configID, LimitsEnabled: true})
	if err != nil {
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "FAIL: the Docker Engine is required when CI is set:", err)
			return 1
		}
		suite.skip = "skipping Docker integration tests (set CI=1 to make this a failure): " + err.Error()
		return m.Run()
	}
	suite.d = d
	defer d.Close()
	suite.cli, err = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: docker client:", err)
		return 1
	}
	defer suite.cli.Close()
	defer cleanupRun()

	began := time.Now()
	if err := buildTestImage(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: building the testserver image:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "testserver image %s built in %v (config %s)\n", shortID(suite.image), time.Since(began).Round(time.Millisecond), suite.configID)
	return m.Run()
}

// buildTestImage compiles testdata/testserver statically into a temporary
// copy of that folder (so parallel runs never write the shared folder) and
// builds it with EnsureImage.
func buildTestImage(ctx context.Context) error {
	src, err := filepath.Abs("../../testdata/testserver")
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "lunorad-testserver-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, name := range []string{"Dockerfile", ".dockerignore", "main.go"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(dir, "testserver"), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	c := &config.Container{Name: "testserver-" + suite.configID, Image: config.Image{
		Kind: config.ImageDockerfile, BuildContext: dir, DockerfilePath: filepath.Join(dir, "Dockerfile"),
	}}
	id, err := suite.d.EnsureImage(ctx, c)
	if err != nil {
		return err
	}
	suite.image, suite.tag = id, buildTag(c.Name)
	return nil
}

// cleanupRun removes what this run created, by label: containers, then
// images (children first, then the testserver image). Never a prune.
func cleanupRun() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := suite.d.RemoveAllOwned(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "cleanup:", err)
	}
	// Top-level images only: removing one prunes its untagged parents.
	imgs, err := suite.cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelConfig+"="+suite.configID))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cleanup: listing images:", err)
		return
	}
	// Images built FROM the testserver image are its children: remove them first.
	for pass := 0; pass < 2; pass++ {
		for _, img := range imgs {
			if pass == 0 && img.ID == suite.image || pass == 1 && img.ID != suite.image {
				continue
			}
			if _, err := suite.cli.ImageRemove(ctx, img.ID, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !strings.Contains(err.Error(), "No such image") {
				fmt.Fprintln(os.Stderr, "cleanup: removing image", shortID(img.ID)+":", err)
			}
		}
	}
}

func requireDocker(t *testing.T) {
	t.Helper()
	if suite.skip != "" {
		t.Skip(suite.skip)
	}
}

// newTestDocker is a Docker of this run's config with the test's logger and
// the given options.
func newTestDocker(t *testing.T, opts Options) *Docker {
	t.Helper()
	requireDocker(t)
	if opts.ConfigID == "" {
		opts.ConfigID = suite.configID
	}
	opts.Logger = zaptest.NewLogger(t)
	d, err := New(context.Background(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// runTestServer starts a testserver container and removes it when the test ends.
func runTestServer(t *testing.T, d *Docker, spec lifecycle.RunSpec) lifecycle.Running {
	t.Helper()
	if spec.Container == "" {
		spec.Container = "testserver"
	}
	if spec.Instance == "" {
		spec.Instance = t.Name()
	}
	if spec.Image == "" {
		spec.Image = suite.image
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := d.Run(ctx, spec)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.Remove(ctx, r.ID); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return r
}

var httpClient = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// waitHTTP polls http://addr+path every 20 ms until it answers 200 (bound is
// not ready: the engine's proxy accepts connections before the app listens)
// and returns the body.
func waitHTTP(t *testing.T, addr, path string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		resp, err := httpClient.Get("http://" + addr + path)
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && rerr == nil {
				return string(body)
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		time.Sleep(20 * time.Millisecond) // polling a real container, not a timer under test
	}
	t.Fatalf("GET %s%s never answered 200: %v", addr, path, last)
	return ""
}

// waitExitOf returns the first exit of container id from out.
func waitExitOf(t *testing.T, out <-chan lifecycle.Exit, id string) lifecycle.Exit {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e, ok := <-out:
			if !ok {
				t.Fatal("exits channel closed")
			}
			if e.ContainerID == id {
				return e
			}
		case <-timeout:
			t.Fatalf("no exit for container %s", shortID(id))
		}
	}
}

// exitsFor subscribes to exits for the duration of the test.
func exitsFor(t *testing.T, d *Docker) <-chan lifecycle.Exit {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return d.Exits(ctx)
}

// assertGone fails unless the container no longer exists.
func assertGone(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := suite.cli.ContainerInspect(ctx, id)
	if err == nil {
		t.Errorf("container %s still exists", shortID(id))
	} else if !strings.Contains(strings.ToLower(err.Error()), "no such container") {
		t.Errorf("inspect %s: %v", shortID(id), err)
	}
}

func isBuildError(err error) (*lifecycle.BuildError, bool) {
	var be *lifecycle.BuildError
	ok := errors.As(err, &be)
	return be, ok
}
