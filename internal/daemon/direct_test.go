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

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
)

// instanceInfo is the part of GET /v1/containers/{c}/instances/{id} these tests read.
type instanceInfo struct {
	ContainerID string            `json:"containerId"`
	Ports       map[string]string `json:"ports"`
	Direct      map[string]string `json:"direct"`
}

func getInstance(t *testing.T, h *daemontest.Harness, path string) instanceInfo {
	t.Helper()
	resp, body := h.Get(t, path)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("instance info: %d %s", resp.StatusCode, body)
	}
	var info instanceInfo
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatalf("instance info %s: %v", body, err)
	}
	return info
}

// observedLogger tees the daemon's log to the test log and to an observer.
func observedLogger(t *testing.T) (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.DebugLevel)
	return zaptest.NewLogger(t, zaptest.WrapOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewTee(c, core)
	}))), logs
}

// TestReadyContainerIsAttachedToLunoradsNetworkInTheBackground checks that
// the cold start is served on the published port without waiting for the
// attach, that the instance then gets its address on lunorad's internal
// network and is served there, and that the network goes at shutdown.
func TestReadyContainerIsAttachedToLunoradsNetworkInTheBackground(t *testing.T) {
	logger, logs := observedLogger(t)
	h := daemontest.Start(t, imageDir, webConfig, daemontest.Options{DirectDial: true, Logger: logger})
	if resp, body := h.Get(t, "/v1/containers/web/instances/alice/fetch/greet"); resp.StatusCode != http.StatusOK {
		t.Fatalf("cold-start request: %d %q", resp.StatusCode, body)
	}
	answered := time.Now()

	var info instanceInfo
	deadline := time.Now().Add(30 * time.Second)
	for info = getInstance(t, h, "/v1/containers/web/instances/alice"); info.Direct["8080"] == ""; info = getInstance(t, h, "/v1/containers/web/instances/alice") {
		if time.Now().After(deadline) {
			t.Fatalf("direct address never recorded: %+v", info)
		}
		time.Sleep(20 * time.Millisecond) // polling a real daemon
	}
	attached := logs.FilterMessage("dialing the container directly").All()
	if len(attached) != 1 {
		t.Fatalf("attach log entries = %d, want 1", len(attached))
	}
	// The attach (network create + connect, 100 ms or more) finished after
	// the cold-start response came back: that request did not wait for it.
	if at := attached[0].Time; !at.After(answered) {
		t.Errorf("attach done at %s, before the cold-start response at %s: the cold start waited for it", at.Format(time.StampMicro), answered.Format(time.StampMicro))
	}
	t.Logf("attach took %v, done %v after the cold-start response", attached[0].ContextMap()["took"], attached[0].Time.Sub(answered))

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
	if internal, err := dockerCLI("network", "inspect", "--format", "{{.Internal}}", netName); err != nil || internal != "true" {
		t.Errorf("network %s internal = %q, %v; want true (no gateway: outbound stays on the default bridge)", netName, internal, err)
	}
	if resp, body := h.Get(t, "/v1/containers/web/instances/alice/fetch/greet"); resp.StatusCode != http.StatusOK {
		t.Fatalf("request on the direct address: %d %q", resp.StatusCode, body)
	}

	h.Stop(t)
	if out, err := dockerCLI("network", "ls", "--quiet", "--filter", "name=^"+netName+"$"); err != nil || out != "" {
		t.Errorf("network %s after shutdown: %q, %v; want it removed", netName, out, err)
	}
	if left := daemontest.Owned(t, h.Config); len(left) != 0 {
		t.Errorf("containers left after shutdown: %+v", left)
	}
}

// TestAFailedAttachKeepsServingOnThePublishedPorts takes the network's name
// with a network lunorad does not own: the attach fails, is logged once, and
// requests are still answered on the published ports.
func TestAFailedAttachKeepsServingOnThePublishedPorts(t *testing.T) {
	logger, logs := observedLogger(t)
	h := daemontest.Start(t, imageDir, webConfig, daemontest.Options{DirectDial: true, Logger: logger})
	netName := "lunorad-" + h.Config.ID()
	if _, err := dockerCLI("network", "create", "--internal", netName); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := dockerCLI("network", "rm", netName); err != nil {
			t.Errorf("removing the test's network: %v", err)
		}
	})

	for _, id := range []string{"alice", "bob"} {
		if resp, body := h.Get(t, "/v1/containers/web/instances/"+id+"/fetch/greet"); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %q", id, resp.StatusCode, body)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for logs.FilterMessage("attach failed; keeping the published ports").Len() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the attaches never failed")
		}
		time.Sleep(20 * time.Millisecond) // polling a real daemon
	}
	if n := logs.FilterLevelExact(zap.WarnLevel).FilterMessageSnippet("cannot attach").Len(); n != 1 {
		t.Errorf("attach warnings = %d, want 1", n)
	}
	if info := getInstance(t, h, "/v1/containers/web/instances/alice"); len(info.Direct) != 0 {
		t.Errorf("Direct = %v, want none", info.Direct)
	}
	if resp, body := h.Get(t, "/v1/containers/web/instances/alice/fetch/greet"); resp.StatusCode != http.StatusOK {
		t.Fatalf("warm request: %d %q", resp.StatusCode, body)
	}
	h.Stop(t) // before the cleanup removes the network: the containers must be gone first
}

// TestWithoutDirectDialNothingIsAttached checks --direct=false: the ready
// container is served on its published port, stays on the default bridge
// alone, and no network is created. The manager logs the outcome of every
// attach it starts (one cut short by the shutdown too) and Stop waits for
// them, so the log after Stop tells whether any attach was started, however
// fast or slow the engine.
func TestWithoutDirectDialNothingIsAttached(t *testing.T) {
	logger, logs := observedLogger(t)
	h := daemontest.Start(t, imageDir, webConfig, daemontest.Options{DirectDial: false, Logger: logger})
	if resp, body := h.Get(t, "/v1/containers/web/instances/alice/fetch/greet"); resp.StatusCode != http.StatusOK {
		t.Fatalf("cold-start request: %d %q", resp.StatusCode, body)
	}
	info := getInstance(t, h, "/v1/containers/web/instances/alice")
	if len(info.Direct) != 0 || !strings.HasPrefix(info.Ports["8080"], "127.0.0.1:") {
		t.Errorf("Direct = %v Ports = %v, want the published port only", info.Direct, info.Ports)
	}
	if nets, err := dockerCLI("inspect", "--format", "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}", info.ContainerID); err != nil || nets != "bridge" {
		t.Errorf("container %s networks = %q, %v; want the default bridge only", info.ContainerID, nets, err)
	}
	netName := "lunorad-" + h.Config.ID()
	if out, err := dockerCLI("network", "ls", "--quiet", "--filter", "name=^"+netName+"$"); err != nil || out != "" {
		t.Errorf("network %s: %q, %v; want none", netName, out, err)
	}

	h.Stop(t)
	for _, snippet := range []string{"attach", "direct", "bridge network"} {
		for _, e := range logs.FilterMessageSnippet(snippet).All() {
			t.Errorf("logged %s %q %v: want no attach, no network", e.LoggerName, e.Message, e.ContextMap())
		}
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
