package lifecycle_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
	"github.com/lunora/lunorad/internal/events"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// A container that exits on its own makes its instance stopped_with_code
// with the exit code; the next request, or a start, gets a fresh container,
// and destroy clears the exit.
func TestCrashBecomesStoppedWithCodeAndTheNextStartIsFresh(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, `
containers:
  web:
    image: %[1]s
    defaultPort: 8080
`, daemontest.Options{})
	evs := daemontest.FollowEvents(t, h.Base)
	first := greet(t, h, "web", "c")

	crash := func() time.Time {
		t.Helper()
		at := time.Now()
		// One attempt: a retry would reach the next container and crash it too.
		resp, body := h.Do(t, http.MethodGet, instancePath("web", "c")+"/fetch/crash?code=3", nil, noRetry)
		if resp.StatusCode != http.StatusInternalServerError || body != "Container suddenly disconnected, try again" {
			t.Fatalf("request that crashed the container: %d %q", resp.StatusCode, body)
		}
		return at
	}
	crashedAt := crash()
	exit := evs.WaitFor(t, wait, "stop event of the crash", is("web", "c", "stop"))
	if exit.Message != "container exited (exit 3)" || exit.Level != events.LevelInfo {
		t.Errorf("crash event = %+v", exit)
	}
	s := state(t, h, "web", "c")
	if s.Status != lifecycle.StatusStoppedWithCode || s.ExitCode == nil || *s.ExitCode != 3 {
		t.Fatalf("state after exit 3 = %+v, want stopped_with_code with exitCode 3", s)
	}
	if s.LastChange < crashedAt.UnixMilli() {
		t.Errorf("lastChange %d predates the crash request %d", s.LastChange, crashedAt.UnixMilli())
	}
	for _, c := range daemontest.Owned(t, h.Config) {
		if c.Running {
			t.Errorf("a container still runs after the crash: %+v", c)
		}
	}

	// The next request (with the default retries, which outlast the 1s
	// crash backoff) is served by a fresh container, and the exited one is gone.
	second := greet(t, h, "web", "c")
	if second == first {
		t.Fatalf("after the crash, c was served by the crashed container %s", first)
	}
	owned := daemontest.Owned(t, h.Config)
	if len(owned) != 1 || shortID(owned[0].ID) != second || !owned[0].Running {
		t.Errorf("after the restart: owned %+v, want only the new container %s", owned, second)
	}
	if s := state(t, h, "web", "c"); s.Status != lifecycle.StatusHealthy || s.ExitCode != nil {
		t.Errorf("state after the restart = %+v, want healthy", s)
	}

	// Crash again; destroy clears stopped_with_code and the exited container.
	crash()
	daemontest.Eventually(t, wait, "stopped_with_code after the second crash", func() bool {
		return state(t, h, "web", "c").Status == lifecycle.StatusStoppedWithCode
	})
	if s := controlState(t, h, "web", "c", "destroy", ""); s.Status != lifecycle.StatusStopped || s.ExitCode != nil {
		t.Errorf("destroy after a crash answered %+v, want stopped", s)
	}
	if owned := daemontest.Owned(t, h.Config); len(owned) != 0 {
		t.Errorf("destroy left the exited container: %+v", owned)
	}

	// An explicit start after a crash ignores the crash backoff.
	crash()
	daemontest.Eventually(t, wait, "stopped_with_code after the third crash", func() bool {
		return state(t, h, "web", "c").Status == lifecycle.StatusStoppedWithCode
	})
	if s := controlState(t, h, "web", "c", "start?wait=healthy", ""); s.Status != lifecycle.StatusHealthy {
		t.Fatalf("start after a crash answered %+v, want healthy", s)
	}
	owned = daemontest.Owned(t, h.Config)
	if len(owned) != 1 || !owned[0].Running {
		t.Errorf("after start: owned %+v, want one running container", owned)
	}
}

// A container that dies on every start is not restarted in a hot loop:
// starts triggered by traffic wait 1s, then 2s, then 4s... after each quick
// crash, and requests in between are refused at once.
func TestCrashLoopIsBackedOff(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, `
containers:
  crashy:
    image: %[1]s
    defaultPort: 8080
    env: {PORT: "not-a-port"}
`, daemontest.Options{})
	evs := daemontest.FollowEvents(t, h.Base)
	const window = 6 * time.Second

	refused := 0
	for end := time.Now().Add(window); time.Now().Before(end); {
		resp, body := h.Do(t, http.MethodGet, instancePath("crashy", "x")+"/fetch/", nil, noRetry)
		if resp.StatusCode != http.StatusInternalServerError || !strings.HasPrefix(body, "Failed to start container: ") {
			t.Fatalf("request to a crash-looping instance: %d %q", resp.StatusCode, body)
		}
		if strings.Contains(body, "crashed") && strings.Contains(body, "next start allowed in") {
			refused++
		}
		time.Sleep(50 * time.Millisecond)
	}

	failed := evs.Matching(func(e events.Event) bool {
		return is("crashy", "x", "error")(e) && strings.Contains(e.Message, "Container exited before we could determine the container health, exit code: 1")
	})
	// 1s + 2s of backoff fit in the window, 1s + 2s + 4s do not: at most 3
	// starts (a hot loop would make one every few hundred ms).
	if len(failed) < 2 || len(failed) > 3 {
		t.Fatalf("%d starts crashed within %s, want 2 or 3 (backoff 1s, 2s, 4s): %+v", len(failed), window, failed)
	}
	if refused == 0 {
		t.Error("no request was refused during the crash backoff")
	}
	// Each exit sets the backoff for the next start, so successive exits are
	// at least that far apart (1ms for the timestamps' truncation to ms).
	exits := evs.Matching(func(e events.Event) bool {
		return is("crashy", "x", "stop")(e) && e.Message == "container exited (exit 1)"
	})
	if len(exits) != len(failed) {
		t.Errorf("%d exit events for %d crashed starts: %+v", len(exits), len(failed), exits)
	}
	for i := 1; i < len(exits); i++ {
		backoff := time.Second << (i - 1)
		if gap := time.Duration(exits[i].TS-exits[i-1].TS+1) * time.Millisecond; gap < backoff {
			t.Errorf("exit %d came %s after exit %d; the backoff is %s", i+1, gap, i, backoff)
		}
	}
	if s := state(t, h, "crashy", "x"); s.Status != lifecycle.StatusStoppedWithCode || s.ExitCode == nil || *s.ExitCode != 1 {
		t.Errorf("state of a crash-looping instance = %+v, want stopped_with_code exitCode 1", s)
	}
	if owned := daemontest.Owned(t, h.Config); len(owned) > 1 {
		t.Errorf("crashed containers pile up: %+v", owned)
	}
}

// With instanceType limits on, an app that outgrows lite's 256 MiB is
// OOM-killed; the stop event says so and the state carries exit 137.
func TestOOMKillIsReported(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, `
containers:
  hog:
    image: %[1]s
    defaultPort: 8080
    instanceType: lite
`, daemontest.Options{Limits: true})
	evs := daemontest.FollowEvents(t, h.Base)
	first := greet(t, h, "hog", "m")

	resp, body := h.Do(t, http.MethodGet, instancePath("hog", "m")+"/fetch/oom", nil, noRetry)
	if resp.StatusCode != http.StatusInternalServerError || body != "Container suddenly disconnected, try again" {
		t.Fatalf("request that ran out of memory: %d %q", resp.StatusCode, body)
	}
	stop := evs.WaitFor(t, wait, "stop event of the OOM kill", is("hog", "m", "stop"))
	if stop.Message != "out of memory: killed (exit 137)" {
		t.Errorf("OOM stop event = %+v", stop)
	}
	if s := state(t, h, "hog", "m"); s.Status != lifecycle.StatusStoppedWithCode || s.ExitCode == nil || *s.ExitCode != 137 {
		t.Errorf("state after the OOM kill = %+v, want stopped_with_code 137", s)
	}
	if again := greet(t, h, "hog", "m"); again == first {
		t.Errorf("after the OOM kill, m was served by the killed container %s", first)
	}
}
