package readiness_test

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/daemon/daemontest"
	"github.com/lunora/lunorad/internal/events"
)

// plainContainer is ready as soon as it listens; the event log's sync uses it.
const plainContainer = `
  plain:
    image: %[1]s
    defaultPort: 8080
`

func TestRequestsAreHeldUntilEveryReadyOnCheckPasses(t *testing.T) {
	const readyDelay = 3 * time.Second
	h := daemontest.Start(t, imageDir, `
containers:
  slowready:
    image: %[1]s
    defaultPort: 8080
    env: {READY_DELAY_MS: "3000"}
    readyOn:
      - {path: /ready}
      - {path: /live}
`, daemontest.Options{})
	log := watchEvents(t, h)
	url := h.Base + fetchPath("slowready", "held", "/greet")

	t0 := time.Now()
	var pending []<-chan result
	for range 4 {
		pending = append(pending, sendAsync(url, nil))
	}

	// Inside the gate: the container runs, late requests join the same
	// start, the instance is not healthy and nothing has been answered. The
	// app's own stats, read last, prove this was still inside the gate.
	addr := ownedAddr(t, h, "held", 8080)
	for range 4 {
		pending = append(pending, sendAsync(url, nil))
	}
	st := stateOf(t, h, "slowready", "held")
	answered := 0
	for _, c := range pending {
		answered += len(c)
	}
	var inside appStats
	daemontest.Eventually(t, waitLong, "the app to answer on its published port", func() bool {
		var err error
		inside, err = statsDirect(addr)
		return err == nil
	})
	if inside.ReadyAt == nil {
		if st.Status != "running" {
			t.Errorf("state during the gate = %q, want running", st.Status)
		}
		if answered != 0 {
			t.Errorf("%d requests were answered before the app was ready", answered)
		}
		if inside.FirstNonProbeAt != nil || inside.path("/greet").Count != 0 {
			t.Errorf("a request reached the app before it was ready: %+v", inside)
		}
	} else {
		t.Logf("machine too slow to look inside the %s gate; checking the outcome only", readyDelay)
	}

	results := collect(pending)
	for i, r := range results {
		if r.err != nil || r.status != http.StatusOK || r.body != results[0].body || !strings.HasPrefix(r.body, "hello from ") {
			t.Errorf("request %d: %s (first: %s)", i, r, results[0])
		}
		// The app cannot be ready sooner than readyDelay after the first
		// request started it.
		if waited := r.doneAt.Sub(t0); waited < readyDelay {
			t.Errorf("request %d answered after %s, before the app could be ready (%s)", i, waited, readyDelay)
		}
	}

	s := statsThroughDaemon(t, h, "slowready", "held")
	if s.ReadyAt == nil || s.FirstNonProbeAt == nil {
		t.Fatalf("stats lack the ready time or the first request: %+v", s)
	}
	if *s.FirstNonProbeAt < *s.ReadyAt {
		t.Errorf("first proxied request reached the app at %.1fms, before /ready first passed at %.1fms", *s.FirstNonProbeAt, *s.ReadyAt)
	}
	greet := s.path("/greet")
	if greet.Count != len(pending) || greet.Probes != 0 || greet.FirstAt < *s.ReadyAt {
		t.Errorf("/greet at the app: %+v, want %d proxied requests, all after ready (%.1fms)", greet, len(pending), *s.ReadyAt)
	}
	ready, live, root := s.path("/ready"), s.path("/live"), s.path("/")
	if ready.Count < 2 || ready.Probes != ready.Count || ready.Hosts["container"] != ready.Count {
		t.Errorf("/ready at the app: %+v, want several probes, all with Host container", ready)
	}
	if live.Count < 1 || live.Probes != live.Count || live.Hosts["container"] != live.Count {
		t.Errorf("/live at the app: %+v, want probes with Host container", live)
	}
	if ready.Count > 1 && live.FirstAt >= *s.ReadyAt {
		t.Errorf("/live was first probed at %.1fms, after /ready passed at %.1fms: the checks did not run in parallel", live.FirstAt, *s.ReadyAt)
	}
	if root.Count < 1 || root.Probes != root.Count || root.Hosts["ping"] != root.Count {
		t.Errorf("port probes (GET / Host ping) at the app: %+v", root)
	}
	if root.Count >= 1 && root.FirstAt > ready.FirstAt {
		t.Errorf("readyOn checks began (%.1fms) before the port answered (%.1fms)", ready.FirstAt, root.FirstAt)
	}
	t.Logf("held requests reached the app %.1fms after /ready first passed (%d /ready probes, %d /live probes)",
		greet.FirstAt-*s.ReadyAt, ready.Count, live.Count)

	if st := stateOf(t, h, "slowready", "held"); st.Status != "healthy" {
		t.Errorf("state after the gate = %q, want healthy", st.Status)
	}
	if n := runningOwned(t, h, "slowready", "held"); n != 1 {
		t.Errorf("%d containers for one instance, want 1", n)
	}
	daemontest.Eventually(t, waitLong, "the start event", func() bool { return len(log.of("slowready", "held", events.Start)) > 0 })
	if errs := log.of("slowready", "held", events.Error); len(errs) != 0 {
		t.Errorf("error events for a start that succeeded: %+v", errs)
	}
}

func TestEveryNewRunIsGatedAgain(t *testing.T) {
	const readyDelay = 1500 * time.Millisecond
	h := daemontest.Start(t, imageDir, `
containers:
  again:
    image: %[1]s
    defaultPort: 8080
    env: {READY_DELAY_MS: "1500"}
    readyOn: [{path: /ready}]
`, daemontest.Options{})
	path := fetchPath("again", "a", "/greet")

	var bodies []string
	for run := 1; run <= 2; run++ {
		t0 := time.Now()
		resp, body := h.Get(t, path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("run %d: %d %q", run, resp.StatusCode, body)
		}
		if waited := time.Since(t0); waited < readyDelay {
			t.Errorf("run %d answered after %s, before its app could be ready (%s)", run, waited, readyDelay)
		}
		s := statsThroughDaemon(t, h, "again", "a")
		if s.ReadyAt == nil || s.FirstNonProbeAt == nil || *s.FirstNonProbeAt < *s.ReadyAt {
			t.Errorf("run %d: first proxied request at %v, ready at %v: want after", run, s.FirstNonProbeAt, s.ReadyAt)
		}
		bodies = append(bodies, body)
		if run == 1 {
			if resp, body := h.Do(t, http.MethodPost, "/v1/containers/again/instances/a/stop", nil, nil); resp.StatusCode >= 300 {
				t.Fatalf("stop: %d %s", resp.StatusCode, body)
			}
			if st := stateOf(t, h, "again", "a"); st.Status != "stopped" {
				t.Fatalf("state after stop = %q, want stopped", st.Status)
			}
		}
	}
	if bodies[0] == bodies[1] {
		t.Errorf("both runs answered from the same container: %q", bodies[0])
	}
}

func TestNeverReadyFailsAtTheDeadlineWithTheReason(t *testing.T) {
	const deadline = 2 * time.Second
	h := daemontest.Start(t, imageDir, `
containers:
  never:
    image: %[1]s
    defaultPort: 8080
    env: {NEVER_READY: "1"}
    readyOn: [{path: /ready}]
`+plainContainer, daemontest.Options{ReadyTimeout: deadline})
	log := watchEvents(t, h)
	const reason = `container "never": readiness check "/ready" (port 8080) did not return 200 within 2000ms`

	t0 := time.Now()
	var pending []<-chan result
	for range 3 {
		pending = append(pending, sendAsync(h.Base+fetchPath("never", "stuck", "/greet"), nil))
	}
	for i, r := range collect(pending) {
		if r.err != nil || r.status != http.StatusInternalServerError || r.body != "Failed to start container: "+reason {
			t.Errorf("request %d: %s, want 500 %q", i, r, "Failed to start container: "+reason)
		}
		if waited := r.doneAt.Sub(t0); waited < deadline {
			t.Errorf("request %d failed after %s, before the %s deadline", i, waited, deadline)
		}
	}

	// The failed start removed its container before answering.
	if n := runningOwned(t, h, "never", "stuck"); n != 0 {
		t.Errorf("%d containers still running for the instance that never became ready", n)
	}
	for _, c := range daemontest.Owned(t, h.Config) {
		if c.Container == "never" && c.Instance == "stuck" {
			t.Errorf("container %s of the failed start was left behind (running %v)", c.Name, c.Running)
		}
	}
	if st := stateOf(t, h, "never", "stuck"); st.Status != "stopped" {
		t.Errorf("state after the deadline = %q, want stopped", st.Status)
	}

	log.sync(t, h, "plain")
	errs := log.of("never", "stuck", events.Error)
	if len(errs) != 1 {
		t.Fatalf("error events = %+v, want exactly one (three requests share one start, and a deadline is not retried)", errs)
	}
	if e := errs[0]; e.Level != events.LevelError || e.Message != reason || e.Type != "container" || e.Source != "lunora" {
		t.Errorf("error event = %+v, want level error and message %q", e, reason)
	}
	if starts := log.of("never", "stuck", events.Start); len(starts) != 0 {
		t.Errorf("start events for an instance that never became ready: %+v", starts)
	}
}

func TestRequiredPortsHoldRequestsUntilTheLatePortAnswers(t *testing.T) {
	const secondPortDelay = 1500 * time.Millisecond
	h := daemontest.Start(t, imageDir, `
containers:
  twoports:
    image: %[1]s
    defaultPort: 8080
    requiredPorts: [8080, 9090]
    env: {SECOND_PORT: "9090", SECOND_PORT_DELAY_MS: "1500"}
    readyOn: [{path: /ready, port: 9090, status: 200}]
`, daemontest.Options{})

	t0 := time.Now()
	var pending []<-chan result
	for range 4 {
		pending = append(pending, sendAsync(h.Base+fetchPath("twoports", "late", "/greet"), nil))
	}
	results := collect(pending)
	for i, r := range results {
		if r.err != nil || r.status != http.StatusOK || r.body != results[0].body {
			t.Errorf("request %d: %s (first: %s)", i, r, results[0])
		}
		if waited := r.doneAt.Sub(t0); waited < secondPortDelay {
			t.Errorf("request %d answered after %s, before port 9090 could listen (%s)", i, waited, secondPortDelay)
		}
	}

	s := statsThroughDaemon(t, h, "twoports", "late")
	opened, ok := s.ListeningAt["9090"]
	if !ok || opened < float64(secondPortDelay.Milliseconds()) {
		t.Fatalf("port 9090 listening at %v (ok %v), want after %s", opened, ok, secondPortDelay)
	}
	if s.FirstNonProbeAt == nil || *s.FirstNonProbeAt < opened {
		t.Errorf("first proxied request reached the app at %v, before port 9090 listened at %.1fms", s.FirstNonProbeAt, opened)
	}
	if s.ReadyAt == nil || *s.FirstNonProbeAt < *s.ReadyAt {
		t.Errorf("first proxied request at %v, /ready on 9090 first passed at %v: want after", s.FirstNonProbeAt, s.ReadyAt)
	}
	ready := s.path("/ready")
	if ready.Count < 1 || ready.Ports["9090"] != ready.Count || ready.Probes != ready.Count {
		t.Errorf("/ready probes by port: %+v, want all on 9090", ready)
	}
	root := s.path("/")
	if root.Ports["8080"] < 1 || root.Ports["9090"] < 1 || root.Hosts["ping"] != root.Count {
		t.Errorf("port probes: %+v, want GET / with Host ping on both 8080 and 9090", root)
	}
	if greet := s.path("/greet"); greet.Ports["8080"] != len(pending) || len(greet.Ports) != 1 {
		t.Errorf("/greet by port: %v, want %d on the defaultPort 8080", greet.Ports, len(pending))
	}

	// The late port is published and reachable once the instance is healthy.
	resp, body := h.Do(t, http.MethodGet, fetchPath("twoports", "late", "/greet"), nil,
		http.Header{"Cf-Container-Target-Port": {"9090"}})
	if resp.StatusCode != http.StatusOK || body != results[0].body {
		t.Fatalf("GET /greet on port 9090: %d %q", resp.StatusCode, body)
	}
	if n := statsThroughDaemon(t, h, "twoports", "late").path("/greet").Ports["9090"]; n != 1 {
		t.Errorf("/greet on 9090 counted %d times at the app, want 1", n)
	}
}

func TestReadyOnCustomStatus(t *testing.T) {
	h := daemontest.Start(t, imageDir, `
containers:
  nocontent:
    image: %[1]s
    defaultPort: 8080
    readyOn: [{path: /status/204, status: 204}]
  wrongstatus:
    image: %[1]s
    defaultPort: 8080
    readyOn: [{path: /status/200, status: 204}]
`, daemontest.Options{ReadyTimeout: 2 * time.Second})

	wrong := sendAsync(h.Base+fetchPath("wrongstatus", "w", "/greet"), nil)

	resp, body := h.Get(t, fetchPath("nocontent", "n", "/greet"))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "hello from ") {
		t.Fatalf("readyOn /status/204 expecting 204: %d %q, want 200 from the app", resp.StatusCode, body)
	}
	s := statsThroughDaemon(t, h, "nocontent", "n")
	check := s.path("/status/204")
	if check.Count < 1 || check.Probes != check.Count || check.Hosts["container"] != check.Count {
		t.Errorf("/status/204 at the app: %+v, want probes with Host container", check)
	}
	if s.FirstNonProbeAt == nil || *s.FirstNonProbeAt < check.LastAt {
		t.Errorf("first proxied request at %v, before the passing probe at %.1fms", s.FirstNonProbeAt, check.LastAt)
	}

	// 200 is not the 204 the check wants: never ready.
	const want = `Failed to start container: container "wrongstatus": readiness check "/status/200" (port 8080) did not return 204 within 2000ms`
	if r := <-wrong; r.err != nil || r.status != http.StatusInternalServerError || r.body != want {
		t.Errorf("readyOn /status/200 expecting 204: %s, want 500 %q", r, want)
	}
}

func TestContainerExitingDuringTheGateFailsAtOnce(t *testing.T) {
	// A gate that waited for the deadline would answer after it, so
	// "sooner than the deadline" needs no margin however slow the machine.
	const deadline = 30 * time.Second
	h := daemontest.Start(t, imageDir, `
containers:
  quits:
    image: %[1]s
    defaultPort: 8080
    env: {NEVER_READY: "1", EXIT_AFTER_MS: "1000", EXIT_CODE: "42"}
    readyOn: [{path: /ready}]
  nolisten:
    image: %[1]s
    defaultPort: 8080
    env: {PORT: notaport}
`+plainContainer, daemontest.Options{ReadyTimeout: deadline})
	log := watchEvents(t, h)

	cases := []struct {
		name, container string
		code            int
		minWait         time.Duration
	}{
		// Exits after 1s while its readyOn check keeps failing.
		{"exits while its check fails", "quits", 42, time.Second},
		// Cannot listen at all: exits at once, possibly before Run returns.
		{"exits before listening", "nolisten", 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const id = "gone"
			reason := "Container exited before we could determine the container health, exit code: " + strconv.Itoa(tc.code)
			t0 := time.Now()
			r := send(h.Base+fetchPath(tc.container, id, "/greet"), nil)
			waited := r.doneAt.Sub(t0)
			if r.err != nil || r.status != http.StatusInternalServerError || r.body != "Failed to start container: "+reason {
				t.Fatalf("%s: %s, want 500 %q", tc.container, r, "Failed to start container: "+reason)
			}
			if waited < tc.minWait || waited >= deadline {
				t.Errorf("failed after %s; want at once after the exit (%s), not at the %s deadline", waited, tc.minWait, deadline)
			}
			t.Logf("failed %s after the request", waited.Round(time.Millisecond))

			st := stateOf(t, h, tc.container, id)
			if st.Status != "stopped_with_code" || st.ExitCode == nil || *st.ExitCode != tc.code {
				t.Errorf("state = %+v, want stopped_with_code with exitCode %d", st, tc.code)
			}
			if n := runningOwned(t, h, tc.container, id); n != 0 {
				t.Errorf("%d running containers for an instance that exited", n)
			}
			log.sync(t, h, "plain")
			errs := log.of(tc.container, id, events.Error)
			if len(errs) != 1 || errs[0].Message != reason || errs[0].Level != events.LevelError {
				t.Errorf("error events = %+v, want exactly one with message %q", errs, reason)
			}
		})
	}
}

func TestReadyOnWithNoPortAndNoDefaultPortIsAConfigError(t *testing.T) {
	load := func(t *testing.T, yaml string) (*config.Config, error) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "lunorad.yaml")
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(yaml, "%[1]s", imageDir)), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := config.Load(path, config.LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }})
		return cfg, err
	}

	_, err := load(t, `
containers:
  noport:
    image: %[1]s
    requiredPorts: [8080]
    readyOn:
      - {path: /live, port: 8080}
      - {path: ready}
`)
	var invalid *config.ValidationError
	if !errors.As(err, &invalid) {
		t.Fatalf("Load = %v, want a *config.ValidationError", err)
	}
	want := []string{"containers.noport.readyOn[1]: readyOn check \"ready\" has no port — set the check's `port` or the container `defaultPort`. (line 8)"}
	var got []string
	for _, p := range invalid.Problems {
		got = append(got, p.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Either port source is enough, and the check's own port wins.
	cfg, err := load(t, `
containers:
  withdefault:
    image: %[1]s
    defaultPort: 8080
    readyOn:
      - {path: ready}
      - {path: /live, port: 9090, status: 204}
`)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	c := cfg.Containers["withdefault"]
	if c == nil {
		t.Fatal("container withdefault missing")
	}
	wantChecks := []config.ReadyCheck{{Path: "/ready", Port: 8080, Status: 200}, {Path: "/live", Port: 9090, Status: 204}}
	if !slices.Equal(c.ReadyOn, wantChecks) {
		t.Errorf("readyOn = %+v, want %+v", c.ReadyOn, wantChecks)
	}
}

// TestColdStartTime measures (and only logs) how long the first request to
// a fresh instance of a ready-at-once container takes, image already built.
func TestColdStartTime(t *testing.T) {
	h := daemontest.Start(t, imageDir, `
containers:
  plain:
    image: %[1]s
    defaultPort: 8080
  gated:
    image: %[1]s
    defaultPort: 8080
    readyOn: [{path: /ready}]
`, daemontest.Options{})
	for _, name := range []string{"plain", "gated"} {
		if resp, body := h.Get(t, fetchPath(name, "warm-up", "/greet")); resp.StatusCode != http.StatusOK {
			t.Fatalf("warm-up of %s: %d %q", name, resp.StatusCode, body)
		}
	}
	const runs = 5
	for _, name := range []string{"plain", "gated"} {
		var took []time.Duration
		for i := range runs {
			id := "cold-" + strconv.Itoa(i)
			t0 := time.Now()
			resp, body := h.Get(t, fetchPath(name, id, "/greet"))
			d := time.Since(t0)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("cold start of %s/%s: %d %q", name, id, resp.StatusCode, body)
			}
			took = append(took, d)
			// One container at a time keeps the machine's load out of the numbers.
			if resp, body := h.Do(t, http.MethodPost, "/v1/containers/"+name+"/instances/"+id+"/destroy", nil, nil); resp.StatusCode >= 300 {
				t.Fatalf("destroy %s/%s: %d %s", name, id, resp.StatusCode, body)
			}
		}
		slices.Sort(took)
		t.Logf("cold start of %q (%d runs, image built): min %s, median %s, max %s", name, runs,
			took[0].Round(time.Millisecond), took[runs/2].Round(time.Millisecond), took[runs-1].Round(time.Millisecond))
	}
}
