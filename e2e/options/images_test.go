package options_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
)

// argsDockerfile bakes a build argument into the image's environment; its
// default shows whether buildArgs overrode it.
const argsDockerfile = `FROM scratch
ARG GREETING=from-dockerfile-default
ENV GREETING=$GREETING
COPY testserver /testserver
EXPOSE 8080
ENTRYPOINT ["/testserver"]
`

func TestImageKindsAndBuildArgs(t *testing.T) {
	// A registry image present on the engine. Its registry is 127.0.0.1:1,
	// where nothing listens: any pull attempt fails (and stays on loopback),
	// so a working instance proves the local image was used as is.
	suffix := uniqueSuffix(t)
	present := "127.0.0.1:1/lunorad-e2e/options-" + suffix + ":local"
	// The label makes the image this test's own. Unlabelled, it is the
	// build cache's last layer of imageDir, which a parallel test's build
	// (lunorad adds its labels as a last step) runs an intermediate
	// container from, and that container blocks removing the tag.
	if _, err := dockerCLI("build", "-q", "--label", "sh.lunora.e2e-test="+suffix, "-t", present, imageDir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// --no-prune: the untagged parents are the build cache's layers of
		// imageDir, which a parallel test's build may be using this moment.
		if _, err := dockerCLI("image", "rm", "--no-prune", present); err != nil {
			t.Errorf("removing the test tag: %v", err)
		}
	})
	presentID, err := dockerCLI("image", "inspect", "--format", "{{.Id}}", present)
	if err != nil {
		t.Fatal(err)
	}
	missing := "127.0.0.1:1/lunorad-e2e/missing-" + suffix + ":v1"

	argsDir := t.TempDir()
	bin, err := os.ReadFile(filepath.Join(imageDir, "testserver"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(argsDir, "testserver"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(argsDir, "Dockerfile"), []byte(argsDockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	railpackSrc := t.TempDir()

	h := daemontest.Start(t, imageDir, `
containers:
  fromRegistry:
    image: {registry: "`+present+`"}
    defaultPort: 8080
  notPulled:
    image: {registry: "`+missing+`"}
    defaultPort: 8080
  railpack:
    image: {build: "`+railpackSrc+`"}
    defaultPort: 8080
  withArgs:
    image: `+argsDir+`
    defaultPort: 8080
    buildArgs: {GREETING: "from buildArgs"}
`, daemontest.Options{})

	t.Run("registry image present locally", func(t *testing.T) {
		resp, body := h.Get(t, fetchPath("fromRegistry", "a", "/greet"))
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "hello from ") {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		if info, raw := instanceInfo(t, h, "fromRegistry", "a"); info.Image != strings.TrimSpace(presentID) {
			t.Errorf("instance runs image %q, want the local %s (%s): %s", info.Image, present, strings.TrimSpace(presentID), raw)
		}
	})

	t.Run("registry image missing and not pullable", func(t *testing.T) {
		resp, body := h.Get(t, fetchPath("notPulled", "a", "/greet"))
		if resp.StatusCode != http.StatusInternalServerError || !strings.HasPrefix(body, "Failed to start container: ") {
			t.Fatalf("%d %q, want 500 Failed to start container: ...", resp.StatusCode, body)
		}
		for _, want := range []string{
			`image "` + missing + `" is not present on the Docker Engine and could not be pulled`,
			"docker build -t " + missing,
			"docker load",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("body %q lacks %q", body, want)
			}
		}
		if _, err := dockerCLI("image", "inspect", missing); err == nil {
			t.Errorf("image %s exists after the failed pull", missing)
		}
	})

	t.Run("railpack build not supported yet", func(t *testing.T) {
		resp, body := h.Get(t, fetchPath("railpack", "a", "/greet"))
		const want = "Failed to start container: building image for container \"railpack\" failed: " +
			"`image: {build: ...}` (Railpack) is not supported by lunorad yet; use a Dockerfile path or directory"
		if resp.StatusCode != http.StatusInternalServerError || body != want {
			t.Errorf("%d %q\nwant 500 %q", resp.StatusCode, body, want)
		}
	})

	t.Run("buildArgs reach the build", func(t *testing.T) {
		env := containerEnv(t, h, "withArgs", "a")
		if env["GREETING"] != "from buildArgs" {
			t.Errorf("GREETING = %q, want the build argument's value %q", env["GREETING"], "from buildArgs")
		}
	})

	for _, name := range []string{"notPulled", "railpack"} {
		for _, c := range daemontest.Owned(t, h.Config) {
			if c.Container == name {
				t.Errorf("a container was created for %s: %+v", name, c)
			}
		}
	}
}
