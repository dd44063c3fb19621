package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
)

// TestRequestsReachTheContainerOnLunoradsOwnNetwork checks that the daemon
// dials the container's address on the bridge network it created (not the
// docker-proxy behind the published port) and removes that network when it
// shuts down.
func TestRequestsReachTheContainerOnLunoradsOwnNetwork(t *testing.T) {
	h := daemontest.Start(t, imageDir, webConfig, daemontest.Options{DirectDial: true})
	if resp, body := h.Get(t, "/v1/containers/web/instances/alice/fetch/greet"); resp.StatusCode != http.StatusOK {
		t.Fatalf("request: %d %q", resp.StatusCode, body)
	}

	resp, body := h.Get(t, "/v1/containers/web/instances/alice")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("instance info: %d %s", resp.StatusCode, body)
	}
	var info struct {
		ContainerID string            `json:"containerId"`
		Ports       map[string]string `json:"ports"`
		Direct      map[string]string `json:"direct"`
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatalf("instance info %s: %v", body, err)
	}

	// The docker CLI, not the client library: only internal/supervisor imports Docker's Go client.
	netName := "lunorad-" + h.Config.ID()
	ip, err := dockerCLI("inspect", "--format", `{{(index .NetworkSettings.Networks "`+netName+`").IPAddress}}`, info.ContainerID)
	if err != nil || ip == "" || ip == "<no value>" {
		t.Fatalf("container %s on network %s: ip %q, %v", info.ContainerID, netName, ip, err)
	}
	if want := ip + ":8080"; info.Direct["8080"] != want {
		t.Errorf("the daemon dials %q, want the container's network address %s", info.Direct["8080"], want)
	}
	if !strings.HasPrefix(info.Ports["8080"], "127.0.0.1:") {
		t.Errorf("published ports = %v, want 8080 still on 127.0.0.1", info.Ports)
	}

	h.Stop(t)
	if out, err := dockerCLI("network", "ls", "--quiet", "--filter", "name=^"+netName+"$"); err != nil || out != "" {
		t.Errorf("network %s after shutdown: %q, %v; want it removed", netName, out, err)
	}
	if left := daemontest.Owned(t, h.Config); len(left) != 0 {
		t.Errorf("containers left after shutdown: %+v", left)
	}
}

// dockerCLI runs the docker command line and returns its trimmed output.
func dockerCLI(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}
