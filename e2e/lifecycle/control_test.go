package lifecycle_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
	"github.com/lunora/lunorad/internal/events"
	"github.com/lunora/lunorad/internal/lifecycle"
)

const controlConfig = `
containers:
  web:
    image: %[1]s
    defaultPort: 8080
    env: {FROM_CONFIG: "yes"}
  stubborn:
    image: %[1]s
    defaultPort: 8080
    env: {IGNORE_SIGTERM: "1"}
  slow:
    image: %[1]s
    defaultPort: 8080
    env: {START_DELAY_MS: "4000"}
`

// controlGrace is the daemon's SIGTERM→SIGKILL grace in these tests.
const controlGrace = 3 * time.Second

func startControlDaemon(t *testing.T) *daemontest.Harness {
	t.Helper()
	return daemontest.Start(t, imageDir, controlConfig, daemontest.Options{StopGrace: controlGrace})
}

// envOf fetches the instance's environment through the data plane.
func envOf(t *testing.T, h *daemontest.Harness, container, id string) map[string]string {
	t.Helper()
	resp, body := h.Get(t, instancePath(container, id)+"/fetch/env")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("env of %s/%s: %d %s", container, id, resp.StatusCode, body)
	}
	env := map[string]string{}
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatalf("env of %s/%s: %v in %q", container, id, err, body)
	}
	return env
}

// inspect reads one field of a container with the docker CLI (Go template).
func inspect(t *testing.T, containerID, format string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "inspect", "-f", format, containerID).CombinedOutput()
	if err != nil {
		t.Fatalf("docker inspect %s: %v: %s", shortID(containerID), err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestStartStopDestroyOnAHealthyInstance(t *testing.T) {
	t.Parallel()
	h := startControlDaemon(t)
	evs := daemontest.FollowEvents(t, h.Base)

	if s := state(t, h, "web", "s"); s.Status != lifecycle.StatusStopped || s.LastChange != 0 || s.ExitCode != nil {
		t.Errorf("never-started instance = %+v, want stopped with lastChange 0", s)
	}

	// envVars replaces the configured env wholesale; CLOUDFLARE_* stay.
	before := time.Now().UnixMilli()
	s := controlState(t, h, "web", "s", "start?wait=healthy",
		`{"envVars":{"ONLY":"this"},"labels":{"team":"e2e"},"entrypoint":["/testserver"],"enableInternet":false}`)
	if s.Status != lifecycle.StatusHealthy || s.LastChange < before || s.LastChange > time.Now().UnixMilli() {
		t.Fatalf("start?wait=healthy answered %+v (sent at %d)", s, before)
	}
	env := envOf(t, h, "web", "s")
	if env["ONLY"] != "this" || env["CLOUDFLARE_LOCATION"] != "loc01" || len(env["CLOUDFLARE_DURABLE_OBJECT_ID"]) != 64 {
		t.Errorf("env after start with envVars: %v", env)
	}
	if v, ok := env["FROM_CONFIG"]; ok {
		t.Errorf("configured env FROM_CONFIG=%q survived envVars, which must replace it", v)
	}
	owned := ownedByInstance(t, h.Config)["s"]
	if got := inspect(t, owned.ID, `{{index .Config.Labels "team"}}`); got != "e2e" {
		t.Errorf("label team = %q, want e2e", got)
	}
	if got := inspect(t, owned.ID, `{{json .Config.Entrypoint}}`); got != `["/testserver"]` {
		t.Errorf("entrypoint = %s", got)
	}
	resp, body := h.Get(t, instancePath("web", "s"))
	var info lifecycle.InstanceInfo
	if err := json.Unmarshal([]byte(body), &info); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET instance: %d %s", resp.StatusCode, body)
	}
	if info.EnableInternet || info.ContainerID != owned.ID || info.State.Status != lifecycle.StatusHealthy {
		t.Errorf("instance after start: %+v", info)
	}

	// Start on a healthy instance joins it: same container, options ignored.
	if s := controlState(t, h, "web", "s", "start", `{"envVars":{"OTHER":"1"}}`); s.Status != lifecycle.StatusHealthy {
		t.Errorf("second start answered %+v, want healthy", s)
	}
	if now := ownedByInstance(t, h.Config)["s"].ID; now != owned.ID {
		t.Errorf("second start replaced the container: %s, then %s", shortID(owned.ID), shortID(now))
	}

	// stop with a signal name; then stop and destroy on a stopped instance.
	if s := controlState(t, h, "web", "s", "stop", `{"signal":"SIGTERM"}`); s.Status != lifecycle.StatusStopped {
		t.Errorf("stop answered %+v, want stopped", s)
	}
	evs.WaitFor(t, wait, "stop event", func(e events.Event) bool {
		return is("web", "s", "stop")(e) && e.Message == "stop requested (SIGTERM)"
	})
	if owned := daemontest.Owned(t, h.Config); len(owned) != 0 {
		t.Errorf("stop left containers: %+v", owned)
	}
	for _, verb := range []string{"stop", "destroy"} {
		if s := controlState(t, h, "web", "s", verb, ""); s.Status != lifecycle.StatusStopped {
			t.Errorf("%s on a stopped instance answered %+v", verb, s)
		}
	}

	// start without wait returns once the container runs; without envVars
	// the configured env is back.
	s = controlState(t, h, "web", "s", "start", "")
	if s.Status != lifecycle.StatusRunning && s.Status != lifecycle.StatusHealthy {
		t.Errorf("start answered %+v, want running or healthy", s)
	}
	daemontest.Eventually(t, wait, "healthy after start", func() bool {
		return state(t, h, "web", "s").Status == lifecycle.StatusHealthy
	})
	if env := envOf(t, h, "web", "s"); env["FROM_CONFIG"] != "yes" || env["ONLY"] != "" {
		t.Errorf("env after a plain start: %v", env)
	}

	// stop with a signal number.
	if s := controlState(t, h, "web", "s", "stop", `{"signal":15}`); s.Status != lifecycle.StatusStopped {
		t.Errorf("stop 15 answered %+v", s)
	}
	if n := len(evs.Matching(func(e events.Event) bool {
		return is("web", "s", "stop")(e) && e.Message == "stop requested (SIGTERM)"
	})); n != 2 {
		t.Errorf("stop events for SIGTERM and 15 = %d, want 2", n)
	}
	code, body := control(t, h, "web", "s", "stop", `{"signal":"SIGBOGUS"}`)
	if code != http.StatusBadRequest || !strings.Contains(body, `"code":"bad_request"`) {
		t.Errorf("stop with an unknown signal: %d %s", code, body)
	}

	// destroy on a healthy instance kills and removes it.
	greet(t, h, "web", "s")
	if s := controlState(t, h, "web", "s", "destroy", ""); s.Status != lifecycle.StatusStopped {
		t.Errorf("destroy answered %+v", s)
	}
	evs.WaitFor(t, wait, "destroy event", func(e events.Event) bool {
		return is("web", "s", "stop")(e) && e.Message == "destroyed (SIGKILL)"
	})
	if owned := daemontest.Owned(t, h.Config); len(owned) != 0 {
		t.Errorf("destroy left containers: %+v", owned)
	}

	// Unknown names answer 404 on every verb.
	for _, verb := range []string{"start", "stop", "destroy", "renew-activity-timeout"} {
		resp, body := h.Do(t, http.MethodPost, instancePath("nope", "s")+"/"+verb, nil, nil)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, `"code":"not_found"`) {
			t.Errorf("%s on an unknown container: %d %s", verb, resp.StatusCode, body)
		}
	}
}

// A container that ignores SIGTERM is seen stopping for the grace, then
// killed; destroy during that stop kills it at once.
func TestStopOfAContainerThatIgnoresSIGTERM(t *testing.T) {
	t.Parallel()
	h := startControlDaemon(t)

	stopInBackground := func(verb string) (<-chan string, time.Time) {
		done := make(chan string, 1)
		began := time.Now()
		go func() {
			resp, err := http.Post(h.Base+instancePath("stubborn", "x")+"/"+verb, "application/json", nil)
			if err != nil {
				done <- err.Error()
				return
			}
			defer resp.Body.Close()
			var s lifecycle.State
			_ = json.NewDecoder(resp.Body).Decode(&s)
			done <- resp.Status + " " + s.Status
		}()
		return done, began
	}
	awaitStopping := func() {
		t.Helper()
		daemontest.Eventually(t, wait, "state stopping", func() bool {
			return state(t, h, "stubborn", "x").Status == lifecycle.StatusStopping
		})
	}

	greet(t, h, "stubborn", "x")
	stopped, began := stopInBackground("stop")
	awaitStopping()
	if got := <-stopped; got != "200 OK stopped" {
		t.Errorf("stop of a SIGTERM-ignoring container: %s", got)
	}
	if took := time.Since(began); took < controlGrace {
		t.Errorf("stop returned after %s, before the %s grace: SIGKILL came early", took, controlGrace)
	}
	if owned := daemontest.Owned(t, h.Config); len(owned) != 0 {
		t.Errorf("stop left containers: %+v", owned)
	}

	greet(t, h, "stubborn", "x")
	stopped, _ = stopInBackground("stop")
	awaitStopping()
	destroyed, _ := stopInBackground("destroy")
	for _, c := range []<-chan string{destroyed, stopped} {
		if got := <-c; got != "200 OK stopped" {
			t.Errorf("destroy during a stop: %s", got)
		}
	}
	if owned := daemontest.Owned(t, h.Config); len(owned) != 0 {
		t.Errorf("destroy left containers: %+v", owned)
	}
}

// During a cold start the state reads running; stop and destroy cancel the
// start (its waiting callers get a final error) and leave no container;
// concurrent starts coalesce into one container.
func TestControlCallsDuringAStart(t *testing.T) {
	t.Parallel()
	h := startControlDaemon(t)
	evs := daemontest.FollowEvents(t, h.Base)
	slowOwned := func() int {
		n := 0
		for _, c := range daemontest.Owned(t, h.Config) {
			if c.Container == "slow" {
				n++
			}
		}
		return n
	}

	for _, verb := range []string{"stop", "destroy"} {
		if s := controlState(t, h, "slow", "y", "start", ""); s.Status != lifecycle.StatusRunning {
			t.Fatalf("start of a slow app answered %+v, want running (not ready for 4s)", s)
		}
		if s := state(t, h, "slow", "y"); s.Status != lifecycle.StatusRunning {
			t.Fatalf("state during the cold start = %+v, want running", s)
		}
		held := make(chan string, 1)
		go func() {
			req, _ := http.NewRequest(http.MethodGet, h.Base+instancePath("slow", "y")+"/fetch/greet", nil)
			req.Header.Set("Lunora-Attempts", "1")
			resp, err := (&http.Client{Timeout: wait}).Do(req)
			if err != nil {
				held <- err.Error()
				return
			}
			defer resp.Body.Close()
			b := make([]byte, 512)
			n, _ := resp.Body.Read(b)
			held <- resp.Status + " " + string(b[:n])
		}()
		time.Sleep(300 * time.Millisecond) // let the request join the start
		if s := controlState(t, h, "slow", "y", verb, ""); s.Status != lifecycle.StatusStopped {
			t.Errorf("%s during a start answered %+v, want stopped", verb, s)
		}
		if got := <-held; got != "500 Internal Server Error Failed to start container: instance was stopped while starting" {
			t.Errorf("request held in a start that %s cancelled: %s", verb, got)
		}
		if n := slowOwned(); n != 0 {
			t.Errorf("%s during a start left %d containers", verb, n)
		}
	}
	if errs := evs.Matching(is("slow", "y", "error")); len(errs) != 0 {
		t.Errorf("a start cancelled on purpose reported errors: %+v", errs)
	}

	const n = 5
	var wg sync.WaitGroup
	answers := make([]string, n)
	for i := range n {
		wg.Go(func() {
			resp, err := http.Post(h.Base+instancePath("slow", "z")+"/start?wait=healthy", "application/json", nil)
			if err != nil {
				answers[i] = err.Error()
				return
			}
			defer resp.Body.Close()
			var s lifecycle.State
			_ = json.NewDecoder(resp.Body).Decode(&s)
			answers[i] = resp.Status + " " + s.Status
		})
	}
	wg.Wait()
	for i, a := range answers {
		if a != "200 OK healthy" {
			t.Errorf("concurrent start %d: %s", i, a)
		}
	}
	if c := slowOwned(); c != 1 {
		t.Errorf("%d concurrent starts made %d containers, want 1", n, c)
	}
	if starts := evs.Matching(is("slow", "z", "start")); len(starts) != 1 {
		t.Errorf("start events = %d, want 1: %+v", len(starts), starts)
	}
}
