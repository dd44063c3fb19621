package options_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/daemon/daemontest"
)

// runCLI runs the lunorad binary and returns its stdout, stderr and exit code.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, daemontest.Binary(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("lunorad %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lunorad.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// badConfig has problems in two containers, several of them per container,
// in @lunora/container's check order.
const badConfig = `containers:
  web:
    image: ""
    defaultPort: 70000
    sleepAfter: 1d
    secrets: [bad-name]
  api:
    image: "nginx:latest"
    instanceType: huge
    labels: {averyveryverylongkey: x}
    readyOn:
      - {path: /ready, status: 99}
`

var badConfigProblems = []config.Problem{
	{Path: "containers.web.image", Line: 3, Message: "`image` must be a non-empty path or a { registry } reference"},
	{Path: "containers.web.defaultPort", Line: 4, Message: "`defaultPort` must be an integer in 1–65535 (got 70000)"},
	{Path: "containers.web.sleepAfter", Line: 5, Message: "`sleepAfter` string \"1d\" must be a number of seconds followed by a unit, e.g. \"30s\", \"5m\", or \"1h\""},
	{Path: "containers.web.secrets[0]", Line: 6, Message: "secret name \"bad-name\" is not a valid environment variable name"},
	{Path: "containers.api.image", Line: 8, Message: "`image` string \"nginx:latest\" looks like a registry reference — pass it as { registry: \"nginx:latest\" } instead. Plain strings are local Dockerfile paths."},
	{Path: "containers.api.instanceType", Line: 9, Message: "unknown `instanceType` \"huge\" — use one of basic, lite, standard-1, standard-2, standard-3, standard-4, or a custom { vcpu, memoryMib, diskMb } object"},
	{Path: "containers.api.labels.averyveryverylongkey", Line: 10, Message: "`labels` key \"averyveryverylongkey\" is 20 bytes long; Cloudflare allows at most 16"},
	{Path: "containers.api.readyOn[0].status", Line: 12, Message: "`readyOn[].status` must be an HTTP status code in 100–599 (got 99)"},
	{Path: "containers.api.readyOn[0]", Line: 12, Message: "readyOn check \"/ready\" has no port — set the check's `port` or the container `defaultPort`."},
}

func TestValidateListsEveryProblemAndExits1(t *testing.T) {
	path := writeConfig(t, badConfig)

	stdout, stderr, code := runCLI(t, "validate", "-c", path)
	if code != 1 {
		t.Errorf("exit code %d, want 1 (stderr %q)", code, stderr)
	}
	var want []string
	for _, p := range badConfigProblems {
		want = append(want, p.Path+": "+p.Message+" (line "+strconv.Itoa(p.Line)+")")
	}
	want = append(want, path+": 9 problem(s)")
	if got := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("validate printed:\n%s\nwant:\n%s", stdout, strings.Join(want, "\n"))
	}

	stdout, stderr, code = runCLI(t, "validate", "--json", "-c", path)
	if code != 1 {
		t.Errorf("--json: exit code %d, want 1 (stderr %q)", code, stderr)
	}
	var report struct {
		Config   string           `json:"config"`
		Valid    *bool            `json:"valid"`
		Problems []config.Problem `json:"problems"`
		Warnings []config.Warning `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(stdout), &report); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, stdout)
	}
	if report.Config != path || report.Valid == nil || *report.Valid || report.Warnings == nil || len(report.Warnings) != 0 {
		t.Errorf("--json report header: %s", stdout)
	}
	if len(report.Problems) != len(badConfigProblems) {
		t.Fatalf("--json lists %d problems, want %d:\n%s", len(report.Problems), len(badConfigProblems), stdout)
	}
	for i, p := range report.Problems {
		if p != badConfigProblems[i] {
			t.Errorf("--json problem %d = %+v, want %+v", i, p, badConfigProblems[i])
		}
	}
}

func TestValidateAcceptsAGoodFileWithWarnings(t *testing.T) {
	path := writeConfig(t, `containers:
  cache:
    image: {registry: "docker.io/library/redis:7-alpine"}
    defaultPort: 6379
    buildArgs: {VERSION: "7"}
    rollout: {stepPercentage: 25, gracePeriodSeconds: 30}
    name: my-cache
    pingEndpoint: health
    schedulingPolicy: default
`)
	stdout, stderr, code := runCLI(t, "validate", "-c", path)
	want := "warning: containers.cache.buildArgs: ignored for a { registry } image (wrangler ignores image_vars there too) (line 5)\n" +
		path + ": ok (1 container(s): [cache])\n"
	if code != 0 || stdout != want {
		t.Errorf("exit %d, stdout:\n%s\nwant exit 0 and:\n%s\n(stderr %q)", code, stdout, want, stderr)
	}

	stdout, _, code = runCLI(t, "validate", "--json", "-c", path)
	var report struct {
		Valid    bool             `json:"valid"`
		Problems []config.Problem `json:"problems"`
		Warnings []config.Warning `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(stdout), &report); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout)
	}
	wantWarning := config.Warning{Path: "containers.cache.buildArgs", Line: 5, Message: "ignored for a { registry } image (wrangler ignores image_vars there too)"}
	if code != 0 || !report.Valid || report.Problems == nil || len(report.Problems) != 0 ||
		len(report.Warnings) != 1 || report.Warnings[0] != wantWarning {
		t.Errorf("--json: exit %d, report %s", code, stdout)
	}
}

// TestUpNoLimitsAndSecretsFromTheProcessEnvironment runs `lunorad up` as a
// user does: secrets come from the real process environment, --no-limits
// drops instanceType's limits, direct dial is on by default, and Ctrl-C
// removes the containers and lunorad's network.
func TestUpNoLimitsAndSecretsFromTheProcessEnvironment(t *testing.T) {
	daemontest.RequireDocker(t)
	const secret = "process-env-S3CRET-41c9e7"
	path := writeConfig(t, `containers:
  cli:
    image: `+imageDir+`
    defaultPort: 8080
    instanceType: lite
    secrets: [CLI_SECRET]
`)
	addr := daemontest.FreeAddr(t)
	var stderr daemontest.LockedBuffer
	cmd := exec.Command(daemontest.Binary(t), "up", "-c", path, "--listen", addr, "--no-limits",
		"--log-level", "debug", "--stop-grace", "2s")
	cmd.Env = append(os.Environ(), "CLI_SECRET="+secret)
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped { // a failed test still stops the daemon and its containers
			_ = cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-exited:
			case <-time.After(90 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		if out, _, code := runCLI(t, "down", "--images", "-c", path); code != 0 {
			t.Errorf("lunorad down: exit %d: %s", code, out)
		}
	})

	base := "http://" + addr
	client := &http.Client{Timeout: 90 * time.Second}
	daemontest.Eventually(t, 60*time.Second, "lunorad up to serve /healthz", func() bool {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	resp, err := client.Get(base + fetchPath("cli", "a", "/env"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var env map[string]string
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &env) != nil {
		t.Fatalf("/env: %d %q", resp.StatusCode, body)
	}
	if env["CLI_SECRET"] != secret {
		t.Errorf("CLI_SECRET = %q, want the value from lunorad's environment", env["CLI_SECRET"])
	}

	resp, err = client.Get(base + "/v1/containers/cli/instances/a")
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		ContainerID string `json:"containerId"`
	}
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil || info.ContainerID == "" {
		t.Fatalf("instance info: %v, %+v", err, info)
	}
	if hc := inspectContainer(t, info.ContainerID).HostConfig; hc.NanoCpus != 0 || hc.Memory != 0 || hc.MemorySwap != 0 {
		t.Errorf("--no-limits: NanoCpus %d, Memory %d, MemorySwap %d, want all 0", hc.NanoCpus, hc.Memory, hc.MemorySwap)
	}

	// Direct dial is the default: the ready container gets attached to
	// lunorad's network in the background, and is still served.
	var direct string
	daemontest.Eventually(t, 30*time.Second, "the instance's direct address", func() bool {
		resp, err := client.Get(base + "/v1/containers/cli/instances/a")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var d struct {
			Direct map[string]string `json:"direct"`
		}
		if json.NewDecoder(resp.Body).Decode(&d) != nil {
			return false
		}
		direct = d.Direct["8080"]
		return direct != ""
	})
	netName := ""
	for name, ep := range inspectContainer(t, info.ContainerID).NetworkSettings.Networks {
		if strings.HasPrefix(name, "lunorad-") {
			netName = name
			if want := ep.IPAddress + ":8080"; direct != want {
				t.Errorf("direct = %q, want %s on %s", direct, want, name)
			}
		}
	}
	if netName == "" {
		t.Errorf("container %s is not on a lunorad network", info.ContainerID)
	}
	if resp, err := client.Get(base + fetchPath("cli", "a", "/env")); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("request once attached: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("lunorad up after Ctrl-C: %v, want exit 0\n%s", err, stderr.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatal("lunorad up did not exit within 90s of SIGINT")
	}
	if _, err := dockerCLI("container", "inspect", info.ContainerID); err == nil {
		t.Errorf("container %s is still there after lunorad up exited", info.ContainerID)
	}
	if netName != "" {
		if _, err := dockerCLI("network", "inspect", netName); err == nil {
			t.Errorf("network %s is still there after lunorad up exited", netName)
		}
	}
	log := stderr.String()
	if !strings.Contains(log, "lunorad is serving") {
		t.Fatalf("the daemon's log was not captured:\n%s", log)
	}
	if strings.Contains(log, secret) {
		t.Errorf("the secret's value appears in lunorad up's log:\n%s", log)
	}
}
