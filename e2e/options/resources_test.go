package options_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.uber.org/zap/zapcore"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
	"github.com/lunora/lunorad/internal/supervisor"
)

// cmdImageDockerfile is the testserver image with a CMD, so that a test can
// tell whether the entrypoint option replaced the image's command line.
const cmdImageDockerfile = `FROM scratch
COPY testserver /testserver
EXPOSE 8080
ENTRYPOINT ["/testserver"]
CMD ["--from-image-cmd"]
`

// shapedConfig has one container per option under test: labels with an
// attempt to fake an ownership label, the smallest instance type and a
// replaced entrypoint; the same image without entrypoint; the largest
// instance type; a custom instance type.
func shapedConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin, err := os.ReadFile(filepath.Join(imageDir, "testserver"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "testserver"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(cmdImageDockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	return `
containers:
  tagged:
    image: ` + dir + `
    defaultPort: 8080
    instanceType: lite
    labels: {team: media, empty: "", "sh.lunora.config": forged}
    entrypoint: ["/testserver", "--from-config", "two words"]
  plain:
    image: ` + dir + `
    defaultPort: 8080
  big:
    image: %[1]s
    defaultPort: 8080
    instanceType: standard-4
    # Options with no local effect are accepted and change nothing.
    name: big-app
    pingEndpoint: health
    rollout: {stepPercentage: 25, gracePeriodSeconds: 30}
    schedulingPolicy: default
  custom:
    image: %[1]s
    defaultPort: 8080
    instanceType: {vcpu: 1, memoryMib: 3072, diskMb: 4000}
`
}

const mib = 1 << 20

func TestLabelsLimitsAndEntrypointInsideTheContainer(t *testing.T) {
	logger, logs := observedLogger(t)
	h := daemontest.Start(t, imageDir, shapedConfig(t), daemontest.Options{Limits: true, Logger: logger})

	if resp, body := h.Get(t, fetchPath("tagged", "a", "/greet")); resp.StatusCode != http.StatusOK {
		t.Fatalf("tagged: %d %q", resp.StatusCode, body)
	}
	tagged := inspectContainer(t, runningContainerID(t, h, "tagged", "a"))

	t.Run("labels beside the ownership labels", func(t *testing.T) {
		l := tagged.Config.Labels
		if l["team"] != "media" {
			t.Errorf("label team = %q, want media", l["team"])
		}
		if v, ok := l["empty"]; !ok || v != "" {
			t.Errorf("label empty = %q (set %v), want an empty value", v, ok)
		}
		if l[supervisor.LabelContainer] != "tagged" || l[supervisor.LabelInstance] != "a" || l[supervisor.LabelManaged] != "true" {
			t.Errorf("ownership labels missing: %v", l)
		}
		// A user label cannot forge ownership: the daemon's value wins, with a warning.
		if got := l[supervisor.LabelConfig]; got != h.Config.ID() {
			t.Errorf("label %s = %q, want the daemon's config id %q", supervisor.LabelConfig, got, h.Config.ID())
		}
		if !hasLog(logs, zapcore.WarnLevel, "ignoring user labels in lunorad's reserved namespace") {
			t.Error("no warning about the dropped sh.lunora.config label")
		}
	})

	t.Run("lite limits", func(t *testing.T) {
		hc := tagged.HostConfig
		if hc.NanoCpus != 62_500_000 {
			t.Errorf("NanoCpus = %d, want 62500000 (1/16 vCPU)", hc.NanoCpus)
		}
		if hc.Memory != 256*mib || hc.MemorySwap != 256*mib {
			t.Errorf("Memory %d, MemorySwap %d, want both %d (256 MiB, no swap on top)", hc.Memory, hc.MemorySwap, 256*mib)
		}
	})

	t.Run("entrypoint replaces the image's ENTRYPOINT and CMD", func(t *testing.T) {
		want := []string{"/testserver", "--from-config", "two words"}
		if !slices.Equal(tagged.Config.Entrypoint, want) {
			t.Errorf("docker inspect Entrypoint = %q, want %q", tagged.Config.Entrypoint, want)
		}
		args := func(name string) []string {
			resp, body := h.Get(t, fetchPath(name, "a", "/args"))
			var args []string
			if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &args) != nil {
				t.Fatalf("%s /args: %d %q", name, resp.StatusCode, body)
			}
			return args
		}
		if got := args("tagged"); !slices.Equal(got, want) {
			t.Errorf("the process runs as %q, want %q", got, want)
		}
		// Without the option the same image runs its own command line.
		if got, want := args("plain"), []string{"/testserver", "--from-image-cmd"}; !slices.Equal(got, want) {
			t.Errorf("without entrypoint the process runs as %q, want the image's %q", got, want)
		}
	})

	t.Run("standard-4 clamped to the engine's CPUs", func(t *testing.T) {
		if resp, body := h.Get(t, fetchPath("big", "a", "/greet")); resp.StatusCode != http.StatusOK {
			t.Fatalf("big: %d %q", resp.StatusCode, body)
		}
		hc := inspectContainer(t, runningContainerID(t, h, "big", "a")).HostConfig
		ncpu := engineCPUs(t)
		wantCPU := min(int64(4_000_000_000), int64(ncpu)*1_000_000_000)
		if hc.NanoCpus != wantCPU {
			t.Errorf("NanoCpus = %d, want %d (4 vCPU clamped to %d engine CPUs)", hc.NanoCpus, wantCPU, ncpu)
		}
		if hc.Memory != 12288*mib || hc.MemorySwap != 12288*mib {
			t.Errorf("Memory %d, MemorySwap %d, want both %d (12 GiB)", hc.Memory, hc.MemorySwap, 12288*mib)
		}
		const clampMsg = "instanceType asks for more CPUs than the Docker Engine has; clamping"
		if warned := hasLog(logs, zapcore.WarnLevel, clampMsg); warned != (ncpu < 4) {
			t.Errorf("clamp warning logged = %v with %d engine CPUs", warned, ncpu)
		}
	})

	t.Run("custom instance type", func(t *testing.T) {
		if resp, body := h.Get(t, fetchPath("custom", "a", "/greet")); resp.StatusCode != http.StatusOK {
			t.Fatalf("custom: %d %q", resp.StatusCode, body)
		}
		hc := inspectContainer(t, runningContainerID(t, h, "custom", "a")).HostConfig
		if hc.NanoCpus != 1_000_000_000 || hc.Memory != 3072*mib || hc.MemorySwap != 3072*mib {
			t.Errorf("NanoCpus %d, Memory %d, MemorySwap %d, want 1e9 and 3 GiB", hc.NanoCpus, hc.Memory, hc.MemorySwap)
		}
	})
}

func TestNoLimitsLeavesContainersUnlimited(t *testing.T) {
	h := daemontest.Start(t, imageDir, shapedConfig(t), daemontest.Options{Limits: false})
	for _, name := range []string{"tagged", "big", "custom"} {
		if resp, body := h.Get(t, fetchPath(name, "a", "/greet")); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %q", name, resp.StatusCode, body)
		}
		in := inspectContainer(t, runningContainerID(t, h, name, "a"))
		if hc := in.HostConfig; hc.NanoCpus != 0 || hc.Memory != 0 || hc.MemorySwap != 0 {
			t.Errorf("%s with limits off: NanoCpus %d, Memory %d, MemorySwap %d, want all 0", name, hc.NanoCpus, hc.Memory, hc.MemorySwap)
		}
		if name == "tagged" && in.Config.Labels["team"] != "media" {
			t.Errorf("labels must not depend on limits: %v", in.Config.Labels)
		}
	}
}
