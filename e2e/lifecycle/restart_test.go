package lifecycle_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/daemon/daemontest"
	"github.com/lunora/lunorad/internal/events"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// cli runs one short lunorad command and returns its combined output.
func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, daemontest.Binary(t), args...).CombinedOutput()
	return string(out), err
}

// daemonProcess is one `lunorad up` child process.
type daemonProcess struct {
	cmd    *exec.Cmd
	logs   *daemontest.LockedBuffer
	exited chan struct{}
	err    error // Wait's result, set before exited closes
}

// up starts `lunorad up` on cfgPath and waits until it serves on addr. The
// process is killed at cleanup if the test left it running.
func up(t *testing.T, cfgPath, addr string) *daemonProcess {
	t.Helper()
	p := &daemonProcess{logs: &daemontest.LockedBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(daemontest.Binary(t), "up", "-c", cfgPath, "--listen", addr,
		"--log-format", "json", "--stop-grace", "2s", "--no-limits")
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(wait):
				_ = p.cmd.Process.Kill()
				<-p.exited
			}
		}
		if t.Failed() {
			t.Logf("lunorad up log:\n%s", p.logs.String())
		}
	})
	client := &http.Client{Timeout: 2 * time.Second}
	daemontest.Eventually(t, wait, "lunorad up to serve /healthz", func() bool {
		select {
		case <-p.exited:
			t.Fatalf("lunorad up exited early: %v\n%s", p.err, p.logs.String())
		default:
		}
		resp, err := client.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// kill9 ends the process with SIGKILL: no cleanup of any kind.
func (p *daemonProcess) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// terminate sends SIGTERM and returns the exit code.
func (p *daemonProcess) terminate(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(2 * wait):
		t.Fatal("lunorad up did not exit within 2m of SIGTERM")
	}
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		return exit.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("waiting for lunorad up: %v", p.err)
	}
	return 0
}

// writeConfig writes the config and loads it as the daemon will (same path,
// hence the same config id and ownership labels).
func writeConfig(t *testing.T, path, yaml string) *config.Config {
	t.Helper()
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(path, config.LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// After kill -9 a new `up` on the same config serves the same ids from the
// same containers; a changed config replaces them; SIGTERM exits 0 and
// leaves nothing; `lunorad down` cleans up after a kill -9; `lunorad ps`
// lists the instances.
func TestDaemonRestartReadoptsItsContainers(t *testing.T) {
	t.Parallel()
	daemontest.RequireDocker(t)
	daemontest.Binary(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "lunorad.yaml")
	addr := daemontest.FreeAddr(t)
	yaml := func(v string) string {
		return fmt.Sprintf("listen: %s\ncontainers:\n  web:\n    image: %s\n    defaultPort: 8080\n    env: {V: %q}\n", addr, imageDir, v)
	}
	cfg := writeConfig(t, cfgPath, yaml("1"))
	h := &daemontest.Harness{Base: "http://" + addr, Config: cfg}
	t.Cleanup(func() {
		// Whatever happened, leave no container behind.
		if len(daemontest.Owned(t, cfg)) > 0 {
			out, err := cli(t, "down", "-c", cfgPath)
			t.Logf("cleanup: lunorad down: %v: %s", err, out)
		}
		daemontest.RemoveImages(t, cfg.ID())
	})

	first := up(t, cfgPath, addr)
	ids := map[string]string{"a": greet(t, h, "web", "a"), "b": greet(t, h, "web", "b")}
	owned := ownedByInstance(t, cfg)
	if len(owned) != 2 || shortID(owned["a"].ID) != ids["a"] || shortID(owned["b"].ID) != ids["b"] {
		t.Fatalf("owned %+v, greeted by %v", owned, ids)
	}
	genBefore := instanceInfo(t, h, "a").Generation

	t.Run("ps lists the instances", func(t *testing.T) {
		out, err := cli(t, "ps", "-c", cfgPath)
		if err != nil {
			t.Fatalf("lunorad ps: %v: %s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "CONTAINER") {
			t.Fatalf("lunorad ps printed %d lines, want a header and 2 instances:\n%s", len(lines), out)
		}
		for i, id := range []string{"a", "b"} {
			fields := strings.Fields(lines[i+1])
			if len(fields) < 4 || fields[0] != "web" || fields[1] != id || fields[2] != "healthy" ||
				!strings.Contains(lines[i+1], ids[id]) || !strings.Contains(lines[i+1], "127.0.0.1:") {
				t.Errorf("ps line for %s: %q", id, lines[i+1])
			}
		}
	})

	first.kill9(t)
	for id, c := range ownedByInstance(t, cfg) {
		if !c.Running {
			t.Fatalf("container of %s stopped with the daemon's kill -9: %+v", id, c)
		}
	}

	second := up(t, cfgPath, addr)
	evs := daemontest.FollowEvents(t, h.Base)
	for _, id := range []string{"a", "b"} {
		e := evs.WaitFor(t, wait, "adoption of "+id, is("web", id, "start"))
		if e.Message != "adopted running container "+ids[id] {
			t.Errorf("start event of %s after restart: %+v", id, e)
		}
		if got := greet(t, h, "web", id); got != ids[id] {
			t.Errorf("after kill -9 and up, %s is served by %s, want its old container %s", id, got, ids[id])
		}
	}
	after := ownedByInstance(t, cfg)
	if len(after) != 2 || after["a"].ID != owned["a"].ID || after["b"].ID != owned["b"].ID {
		t.Errorf("after re-adoption the engine has %+v, want exactly the old containers", after)
	}
	if info := instanceInfo(t, h, "a"); info.Generation <= genBefore || info.State.Status != lifecycle.StatusHealthy {
		t.Errorf("adopted instance: generation %d (before %d), state %+v", info.Generation, genBefore, info.State)
	}
	// Adopted on their published ports, they get their address on
	// lunorad's network back from the background attach (this host routes
	// to Docker networks): adoption itself never waits for that probe.
	daemontest.Eventually(t, wait, "the adopted instance's direct address", func() bool {
		return len(instanceInfo(t, h, "a").Direct) > 0
	})
	if logs := second.logs.String(); !strings.Contains(logs, `"msg":"container event"`) ||
		!strings.Contains(logs, `"message":"adopted running container `+ids["a"]+`"`) {
		t.Errorf("the JSON log lacks the adoption event:\n%s", logs)
	}

	// A changed config: the old containers are not adopted; a request gets a
	// new one with the new env, and the one nobody asks for goes too.
	second.kill9(t)
	cfg2 := writeConfig(t, cfgPath, yaml("2"))
	if cfg2.ID() != cfg.ID() || cfg2.Containers["web"].Hash() == cfg.Containers["web"].Hash() {
		t.Fatal("test setup: the edit must keep the config id and change the container's hash")
	}
	third := up(t, cfgPath, addr)
	evs = daemontest.FollowEvents(t, h.Base)
	newA := greet(t, h, "web", "a")
	if newA == ids["a"] {
		t.Fatalf("after a config change, a is still served by its old container %s", newA)
	}
	if env := envOf(t, h, "web", "a"); env["V"] != "2" {
		t.Errorf("V = %q in the new container, want 2", env["V"])
	}
	daemontest.Eventually(t, 2*wait, "the stale container of b to be removed", func() bool {
		now := ownedByInstance(t, cfg)
		return len(now) == 1 && shortID(now["a"].ID) == newA
	})
	if adopted := evs.Matching(func(e events.Event) bool {
		return e.Event == "start" && strings.HasPrefix(e.Message, "adopted")
	}); len(adopted) != 0 {
		t.Errorf("containers of the old config were adopted: %+v", adopted)
	}

	if code := third.terminate(t); code != 0 {
		t.Errorf("lunorad up exited %d after SIGTERM, want 0\n%s", code, third.logs.String())
	}
	if left := daemontest.Owned(t, cfg); len(left) != 0 {
		t.Errorf("containers left after SIGTERM: %+v", left)
	}

	// `lunorad down` removes what a kill -9 left.
	fourth := up(t, cfgPath, addr)
	greet(t, h, "web", "a")
	greet(t, h, "web", "b")
	fourth.kill9(t)
	if n := len(daemontest.Owned(t, cfg)); n != 2 {
		t.Fatalf("after kill -9, %d containers, want 2", n)
	}
	out, err := cli(t, "down", "-c", cfgPath)
	if err != nil || strings.TrimSpace(out) != fmt.Sprintf("removed 2 container(s) owned by %s", cfg.Path) {
		t.Errorf("lunorad down: %v: %q", err, out)
	}
	if left := daemontest.Owned(t, cfg); len(left) != 0 {
		t.Errorf("containers left after lunorad down: %+v", left)
	}
}

func instanceInfo(t *testing.T, h *daemontest.Harness, id string) lifecycle.InstanceInfo {
	t.Helper()
	resp, body := h.Get(t, instancePath("web", id))
	var info lifecycle.InstanceInfo
	if err := json.Unmarshal([]byte(body), &info); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET instance %s: %d %s (%v)", id, resp.StatusCode, body, err)
	}
	return info
}
