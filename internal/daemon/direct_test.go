package daemon_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
)

// TestRequestsReachTheContainerOnLunoradsOwnNetwork checks that the daemon
// dials the container's address on the bridge network it created (not the
// docker-proxy behind the published port) and removes that network when it
// shuts down.
func TestRequestsReachTheContainerOnLunoradsOwnNetwork(t *testing.T) {
	h := startDaemon(t, webConfig)
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

	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	netName := "lunorad-" + h.Config.ID()
	insp, err := cli.ContainerInspect(ctx, info.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	ep := insp.NetworkSettings.Networks[netName]
	if ep == nil || ep.IPAddress == "" {
		t.Fatalf("container networks = %v, want %s", insp.NetworkSettings.Networks, netName)
	}
	if want := ep.IPAddress + ":8080"; info.Direct["8080"] != want {
		t.Errorf("the daemon dials %q, want the container's network address %s", info.Direct["8080"], want)
	}
	if !strings.HasPrefix(info.Ports["8080"], "127.0.0.1:") {
		t.Errorf("published ports = %v, want 8080 still on 127.0.0.1", info.Ports)
	}

	h.Stop(t)
	if _, err := cli.NetworkInspect(ctx, netName, network.InspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("network %s after shutdown: %v, want it removed", netName, err)
	}
	if left := daemontest.Owned(t, h.Config); len(left) != 0 {
		t.Errorf("containers left after shutdown: %+v", left)
	}
}
