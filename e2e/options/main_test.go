// Package options_test shows, inside real containers, the effect of every
// defineContainer option that has one locally (issue 6): env and the
// CLOUDFLARE_* variables, secrets and the Secrets Store, labels, instanceType
// limits, entrypoint, the image kinds and buildArgs, and the CLI's validate
// and up --no-limits. Each test runs a real daemon (daemontest) against the
// Docker Engine.
package options_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
	"github.com/lunora/lunorad/internal/events"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// imageDir is the testserver build context, made once for the package.
var imageDir string

func TestMain(m *testing.M) { daemontest.Main(m, &imageDir) }

// observedLogger tees the daemon's log into the test log and into an
// observer that keeps every entry, debug included, for assertions.
func observedLogger(t *testing.T) (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), core)), logs
}

// renderedLogs renders every observed entry as one JSON line, fields and
// errors included, so that a test can search the whole log for a value.
func renderedLogs(t *testing.T, logs *observer.ObservedLogs) []string {
	t.Helper()
	enc := zapcore.NewJSONEncoder(zap.NewDevelopmentEncoderConfig())
	var lines []string
	for _, e := range logs.AllUntimed() {
		buf, err := enc.EncodeEntry(e.Entry, e.Context)
		if err != nil {
			t.Fatalf("encoding log entry %q: %v", e.Message, err)
		}
		lines = append(lines, buf.String())
		buf.Free()
	}
	return lines
}

// hasLog reports whether an entry at level has message msg.
func hasLog(logs *observer.ObservedLogs, level zapcore.Level, msg string) bool {
	for _, e := range logs.AllUntimed() {
		if e.Level == level && e.Message == msg {
			return true
		}
	}
	return false
}

// fetchPath is the data-plane path of a get(id).fetch(path) call.
func fetchPath(container, id, path string) string {
	return "/v1/containers/" + container + "/instances/" + url.PathEscape(id) + "/fetch" + path
}

// containerEnv reads the environment of instance id through the
// testserver's /env route (starting the instance if needed).
func containerEnv(t *testing.T, h *daemontest.Harness, container, id string) map[string]string {
	t.Helper()
	resp, body := h.Get(t, fetchPath(container, id, "/env"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s/%s /env: %d %q", container, id, resp.StatusCode, body)
	}
	var env map[string]string
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatalf("%s/%s /env: %v in %q", container, id, err, body)
	}
	return env
}

// instanceInfo reads GET /v1/containers/X/instances/{id}.
func instanceInfo(t *testing.T, h *daemontest.Harness, container, id string) (lifecycle.InstanceInfo, string) {
	t.Helper()
	resp, body := h.Get(t, "/v1/containers/"+container+"/instances/"+url.PathEscape(id))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("instance %s/%s: %d %s", container, id, resp.StatusCode, body)
	}
	var info lifecycle.InstanceInfo
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatalf("instance %s/%s: %v in %s", container, id, err, body)
	}
	return info, body
}

// runningContainerID is the Docker id of the running instance's container.
func runningContainerID(t *testing.T, h *daemontest.Harness, container, id string) string {
	t.Helper()
	info, body := instanceInfo(t, h, container, id)
	if info.ContainerID == "" {
		t.Fatalf("instance %s/%s has no container: %s", container, id, body)
	}
	return info.ContainerID
}

// destroy removes the instance's container (POST .../destroy).
func destroy(t *testing.T, h *daemontest.Harness, container, id string) {
	t.Helper()
	resp, body := h.Do(t, http.MethodPost, "/v1/containers/"+container+"/instances/"+url.PathEscape(id)+"/destroy", nil, nil)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		t.Fatalf("destroy %s/%s: %d %s", container, id, resp.StatusCode, body)
	}
}

// recentEvents reads GET /v1/events?replay=1 for a moment and returns the
// events it replayed, decoded and as raw data lines.
func recentEvents(t *testing.T, h *daemontest.Harness) ([]events.Event, []string) {
	t.Helper()
	// Replayed events are written at once; the stream then only sends
	// heartbeats, so a short read collects all of them.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.Base+"/v1/events?replay=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /v1/events: %v", err)
	}
	defer resp.Body.Close()
	var evs []events.Event
	var raw []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		raw = append(raw, data)
		var e events.Event
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		evs = append(evs, e)
	}
	return evs, raw
}

// dockerInspect is the part of `docker inspect` the tests look at.
type dockerInspect struct {
	Config struct {
		Labels     map[string]string
		Entrypoint []string
		Env        []string
	}
	HostConfig struct {
		NanoCpus   int64
		Memory     int64
		MemorySwap int64
	}
	NetworkSettings struct {
		Networks map[string]struct{ IPAddress string }
	}
}

// dockerCLI runs the docker CLI with a deadline and returns its stdout.
func dockerCLI(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// inspectContainer runs `docker inspect` on a container id.
func inspectContainer(t *testing.T, id string) dockerInspect {
	t.Helper()
	out, err := dockerCLI("container", "inspect", id)
	if err != nil {
		t.Fatal(err)
	}
	var list []dockerInspect
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 {
		t.Fatalf("docker inspect %s: %v in %s", id, err, out)
	}
	return list[0]
}

// engineCPUs is the Docker Engine's CPU count, as `docker info` reports it.
func engineCPUs(t *testing.T) int {
	t.Helper()
	out, err := dockerCLI("info", "--format", "{{.NCPU}}")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscan(strings.TrimSpace(out), &n); err != nil || n < 1 {
		t.Fatalf("docker info NCPU = %q: %v", out, err)
	}
	return n
}

// uniqueSuffix makes image references and names no other run uses.
func uniqueSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
