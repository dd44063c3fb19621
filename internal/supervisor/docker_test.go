package supervisor

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"

	"github.com/lunora/lunorad/internal/clock"
	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// Integration tests against the real engine. They share suite (main_test.go).

func TestNewReportsAnUnreachableEngineInOneLine(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/lunorad-test/docker.sock")
	_, err := New(context.Background(), Options{ConfigID: "x"})
	var ue *EngineUnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want *EngineUnreachableError", err)
	}
	msg := err.Error()
	for _, want := range []string{"cannot reach the Docker Engine at unix:///nonexistent/lunorad-test/docker.sock: ", "Start Docker", "set DOCKER_HOST"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("message is not one line: %q", msg)
	}
	t.Log(msg)
}

func TestEngineVersions(t *testing.T) {
	requireDocker(t)
	v, api := suite.d.Engine()
	if v == "" || api == "" || api == "1.51" {
		t.Errorf("Engine() = %q, %q; want the engine's version and the negotiated API version", v, api)
	}
}

func TestTestServerImageIsTaggedAndLabelled(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	insp, err := suite.cli.ImageInspect(ctx, suite.tag)
	if err != nil {
		t.Fatalf("inspect %s: %v", suite.tag, err)
	}
	if insp.ID != suite.image {
		t.Errorf("%s is %s, want the built image %s", suite.tag, insp.ID, suite.image)
	}
	if l := insp.Config.Labels; l[LabelManaged] != "true" || l[LabelConfig] != suite.configID || l[LabelContainer] == "" {
		t.Errorf("image labels = %v", l)
	}
	if _, ok := insp.Config.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("EXPOSE 8080 missing: %v", insp.Config.ExposedPorts)
	}
}

// ctxFiles lists the files under dir in a container.
func ctxFiles(t *testing.T, id, dir string) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, _, err := suite.cli.CopyFromContainer(ctx, id, dir)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		t.Fatalf("copy %s: %v", dir, err)
	}
	defer rc.Close()
	files := map[string]bool{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("reading %s: %v", dir, err)
		}
		files[strings.TrimSuffix(hdr.Name, "/")] = true
	}
}

func TestBuildHonoursDockerignoreAndDockerfilePaths(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	buildctx := fixture(t, "buildctx")
	cases := []struct {
		name, dockerfile string
		dir              string
		present, absent  []string
	}{
		{"dir", filepath.Join(buildctx, "Dockerfile"), "/ctx",
			[]string{"ctx/kept.txt", "ctx/sub/nested.txt"},
			[]string{"ctx/secret.txt", "ctx/logs", "ctx/logs/app.log", "ctx/Dockerfile", "ctx/Dockerfile.alt"}},
		{"alt", filepath.Join(buildctx, "Dockerfile.alt"), "/alt",
			[]string{"alt/kept.txt"}, []string{"alt/secret.txt"}},
		{"outside", fixture(t, "outside", "Dockerfile.outside"), "/out",
			[]string{"out/kept.txt", "out/sub/nested.txt"},
			[]string{"out/secret.txt", "out/logs", "out/.dockerignore"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &config.Container{
				Name:      "build-" + tc.name + "-" + suite.configID,
				Image:     config.Image{Kind: config.ImageDockerfile, BuildContext: buildctx, DockerfilePath: tc.dockerfile},
				BuildArgs: map[string]string{"BASE": suite.tag},
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			img, err := suite.d.EnsureImage(ctx, c)
			if err != nil {
				t.Fatalf("EnsureImage: %v", err)
			}
			r := runTestServer(t, suite.d, lifecycle.RunSpec{Container: c.Name, Image: img})
			files := ctxFiles(t, r.ID, tc.dir)
			for _, p := range tc.present {
				if !files[p] {
					t.Errorf("%s missing from the image: %v", p, files)
				}
			}
			for _, p := range tc.absent {
				if files[p] {
					t.Errorf("%s must not be in the image", p)
				}
			}
			for f := range files {
				if strings.Contains(f, ".dockerfile.") {
					t.Errorf("the added Dockerfile leaked into the image: %s", f)
				}
			}
			if tc.name == "alt" && ctxFiles(t, r.ID, "/ctx") != nil {
				t.Error("Dockerfile.alt was not the one used: /ctx exists")
			}
		})
	}
}

func TestBuildFailuresAreBuildErrors(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dockerfile := func(name string) *config.Container {
		dir := fixture(t, name)
		return &config.Container{Name: name, Image: config.Image{Kind: config.ImageDockerfile, BuildContext: dir, DockerfilePath: filepath.Join(dir, "Dockerfile")}}
	}

	_, err := suite.d.EnsureImage(ctx, dockerfile("badcopy"))
	be, ok := isBuildError(err)
	if !ok {
		t.Fatalf("failing COPY: err = %v, want a BuildError", err)
	}
	if !strings.HasPrefix(be.Step, "Step 2/") || !strings.HasSuffix(be.Step, " : COPY nope.txt /x") {
		t.Errorf("Step = %q, want the COPY step", be.Step)
	}
	if want := "COPY failed: file not found in build context or excluded by .dockerignore: stat nope.txt: file does not exist"; be.Err == nil || be.Err.Error() != want {
		t.Errorf("Err = %v, want the daemon's %q", be.Err, want)
	}
	t.Logf("failing step: %v", err)

	_, err = suite.d.EnsureImage(ctx, dockerfile("badparse"))
	if be, ok := isBuildError(err); !ok || !strings.Contains(err.Error(), "dockerfile parse error line 2: unknown instruction: FOO") || be.Container != "badparse" {
		t.Errorf("parse error: err = %v", err)
	}
}

func TestRegistryImages(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	reg := func(ref string) *config.Container {
		return &config.Container{Name: "reg", Image: config.Image{Kind: config.ImageRegistry, Reference: ref}}
	}
	if id, err := suite.d.EnsureImage(ctx, reg(suite.tag)); err != nil || id != suite.image {
		t.Errorf("present image: %q, %v; want %s", id, err, suite.image)
	}
	// A loopback registry that is not there: the pull fails at once and no
	// traffic leaves the machine.
	ref := "127.0.0.1:1/lunorad-test/missing:1"
	_, err := suite.d.EnsureImage(ctx, reg(ref))
	if _, ok := isBuildError(err); !ok || !strings.Contains(err.Error(), "is not present on the Docker Engine and could not be pulled") || !strings.Contains(err.Error(), "docker load") {
		t.Errorf("missing image: err = %v", err)
	}
}

func TestRunPublishesOnLoopbackWithLabelsAndName(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	instance := "user/42 ünï"
	began := time.Now()
	r := runTestServer(t, suite.d, lifecycle.RunSpec{
		Instance: instance,
		Env:      map[string]string{"SECOND_PORT": "9090", "GREETING_SECRET": "s3cr3t"},
		Labels:   map[string]string{"team": "media"},
		// 8080 comes from the image's EXPOSE.
		Ports:      []int{9090},
		ConfigHash: "hash-1", Generation: 4,
	})
	body := waitHTTP(t, r.Ports[8080], "/greet")
	t.Logf("Run to first 200: %v", time.Since(began).Round(time.Millisecond))

	if want := containerName(suite.configID, "testserver", instance); r.Name != want {
		t.Errorf("name = %q, want %q", r.Name, want)
	}
	for _, p := range []int{8080, 9090} {
		host, port, err := net.SplitHostPort(r.Ports[p])
		if err != nil || host != "127.0.0.1" || port == "" || port == "0" {
			t.Errorf("port %d published at %q, want 127.0.0.1:<ephemeral>", p, r.Ports[p])
		}
	}
	if !strings.HasPrefix(body, "hello from ") {
		t.Errorf("/greet = %q", body)
	}
	waitHTTP(t, r.Ports[9090], "/live")

	var env map[string]string
	if err := json.Unmarshal([]byte(waitHTTP(t, r.Ports[8080], "/env")), &env); err != nil {
		t.Fatal(err)
	}
	if env["GREETING_SECRET"] != "s3cr3t" {
		t.Errorf("env not passed: %v", env)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	insp, err := suite.cli.ContainerInspect(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	l := insp.Config.Labels
	if l[LabelManaged] != "true" || l[LabelConfig] != suite.configID || l[LabelContainer] != "testserver" ||
		l[LabelInstance] != instance || l[LabelConfigHash] != "hash-1" || l[LabelGeneration] != "4" || l["team"] != "media" {
		t.Errorf("labels = %v", l)
	}
	if r.Instance != instance || r.ConfigHash != "hash-1" || r.Generation != 4 || !r.Running {
		t.Errorf("running = %+v", r)
	}
	if !strings.Contains(strings.Join(insp.HostConfig.ExtraHosts, ","), "host.docker.internal:host-gateway") {
		t.Errorf("extra hosts = %v", insp.HostConfig.ExtraHosts)
	}
}

func TestRunReplacesALeftoverContainer(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	first := runTestServer(t, suite.d, lifecycle.RunSpec{})
	second := runTestServer(t, suite.d, lifecycle.RunSpec{}) // same instance: same name
	if first.ID == second.ID || first.Name != second.Name {
		t.Fatalf("first %s %s, second %s %s", first.ID, first.Name, second.ID, second.Name)
	}
	assertGone(t, first.ID)
	waitHTTP(t, second.Ports[8080], "/live")
}

func TestRunRefusesANameTakenByAForeignContainer(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	name := containerName(suite.configID, "testserver", t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	foreign, err := suite.cli.ContainerCreate(ctx, &container.Config{Image: suite.image, Labels: map[string]string{"other-tool": "yes"}}, nil, nil, nil, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = suite.cli.ContainerRemove(context.Background(), foreign.ID, container.RemoveOptions{Force: true})
	})
	_, err = suite.d.Run(ctx, lifecycle.RunSpec{Container: "testserver", Instance: t.Name(), Image: suite.image})
	if err == nil || !strings.Contains(err.Error(), "lunorad does not own") {
		t.Fatalf("Run over a foreign container: err = %v", err)
	}
	if _, err := suite.cli.ContainerInspect(ctx, foreign.ID); err != nil {
		t.Errorf("the foreign container was touched: %v", err)
	}
}

func TestStopHonoursSIGTERM(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	exits := exitsFor(t, suite.d)
	r := runTestServer(t, suite.d, lifecycle.RunSpec{})
	waitHTTP(t, r.Ports[8080], "/live")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	began := time.Now()
	if err := suite.d.Stop(ctx, r.ID, "SIGTERM", 20*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	took := time.Since(began)
	t.Logf("Stop with a SIGTERM-honouring app: %v", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("Stop took %v: the app's graceful exit was not noticed", took)
	}
	if e := waitExitOf(t, exits, r.ID); e.ExitCode != 0 || e.Instance != t.Name() {
		t.Errorf("exit = %+v, want a clean exit 0", e)
	}
	assertGone(t, r.ID)
}

func TestStopKillsAnAppIgnoringSIGTERMAfterGrace(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	fc := clock.NewFake(time.Now())
	d := newTestDocker(t, Options{Clock: fc})
	exits := exitsFor(t, suite.d)
	r := runTestServer(t, d, lifecycle.RunSpec{Env: map[string]string{"IGNORE_SIGTERM": "1"}})
	waitHTTP(t, r.Ports[8080], "/live")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		done <- d.Stop(ctx, r.ID, "TERM", 5*time.Second)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fc.BlockUntil(ctx, 1); err != nil {
		t.Fatalf("Stop never started its grace timer: %v", err)
	}
	insp, err := suite.cli.ContainerInspect(ctx, r.ID)
	if err != nil || !insp.State.Running {
		t.Fatalf("the app should still be running after SIGTERM: %v", err)
	}
	fc.Advance(5 * time.Second)
	if err := <-done; err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if e := waitExitOf(t, exits, r.ID); e.ExitCode != 137 || e.OOMKilled {
		t.Errorf("exit = %+v, want 137 (SIGKILL)", e)
	}
	assertGone(t, r.ID)
}

func TestExitsReportsACrash(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	exits := exitsFor(t, suite.d)
	r := runTestServer(t, suite.d, lifecycle.RunSpec{Instance: "crash/1"})
	waitHTTP(t, r.Ports[8080], "/live")
	_, _ = httpClient.Get("http://" + r.Ports[8080] + "/crash") // dies mid-request
	e := waitExitOf(t, exits, r.ID)
	if e.ExitCode != 3 || e.OOMKilled || e.Container != "testserver" || e.Instance != "crash/1" || e.At.IsZero() {
		t.Errorf("exit = %+v, want code 3 for testserver/crash/1", e)
	}
}

func TestExitsReportsOOM(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	exits := exitsFor(t, suite.d)
	r := runTestServer(t, suite.d, lifecycle.RunSpec{MemoryBytes: 16 << 20}) // suite.d has limits on
	waitHTTP(t, r.Ports[8080], "/live")
	_, _ = httpClient.Get("http://" + r.Ports[8080] + "/oom")
	if e := waitExitOf(t, exits, r.ID); !e.OOMKilled || e.ExitCode != 137 {
		t.Errorf("exit = %+v, want OOMKilled with 137", e)
	}
}

func TestListOwnedAndRemoveAllOwned(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	// Its own config, so that the other tests' containers are not in the way.
	d := newTestDocker(t, Options{ConfigID: suite.configID + "-list"})
	exits := exitsFor(t, d)
	a := runTestServer(t, d, lifecycle.RunSpec{Instance: "a", ConfigHash: "h", Generation: 2})
	b := runTestServer(t, d, lifecycle.RunSpec{Instance: "b"})
	waitHTTP(t, b.Ports[8080], "/live")
	_, _ = httpClient.Get("http://" + b.Ports[8080] + "/crash?code=5")
	waitExitOf(t, exits, b.ID)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := d.ListOwned(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]lifecycle.Running{}
	for _, r := range list {
		byID[r.ID] = r
	}
	if len(list) != 2 {
		t.Fatalf("ListOwned = %+v, want exactly a and b", list)
	}
	if ra := byID[a.ID]; !ra.Running || ra.Instance != "a" || ra.ConfigHash != "h" || ra.Generation != 2 || ra.Ports[8080] != a.Ports[8080] || ra.StartedAt.IsZero() {
		t.Errorf("a = %+v", ra)
	}
	if rb := byID[b.ID]; rb.Running || rb.ExitCode != 5 || rb.Instance != "b" {
		t.Errorf("b = %+v, want exited with 5", rb)
	}
	// Reconcile's cheaper listing agrees on everything it fills; Created is
	// the list's whole seconds for a running container.
	states, err := d.ListOwnedStates(ctx)
	if err != nil || len(states) != 2 {
		t.Fatalf("ListOwnedStates = %+v, %v; want a and b", states, err)
	}
	for _, s := range states {
		r := byID[s.ID]
		created := r.Created
		if r.Running {
			created = created.Truncate(time.Second)
		}
		if s.Name != r.Name || s.Container != r.Container || s.Instance != r.Instance || s.ConfigHash != r.ConfigHash ||
			s.Generation != r.Generation || s.Running != r.Running || s.ExitCode != r.ExitCode || !s.Created.Equal(created) {
			t.Errorf("ListOwnedStates has %+v\nListOwned has %+v", s, r)
		}
	}
	// The suite's config sees none of them.
	others, err := suite.d.ListOwned(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range others {
		if r.ID == a.ID || r.ID == b.ID {
			t.Errorf("another config lists %s", r.Name)
		}
	}

	if err := d.RemoveAllOwned(ctx); err != nil {
		t.Fatalf("RemoveAllOwned: %v", err)
	}
	if list, err := d.ListOwned(ctx); err != nil || len(list) != 0 {
		t.Errorf("after RemoveAllOwned: %+v, %v", list, err)
	}
	assertGone(t, a.ID)
}
