package lifecycle

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/events"
)

func TestStopAndDestroyOnStoppedInstanceAreNoops(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	ctx := context.Background()
	if err := h.m.Stop(ctx, "web", "never", ""); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Destroy(ctx, "web", "never"); err != nil {
		t.Fatal(err)
	}
	if s := h.state("web", "never"); s.Status != StatusStopped || s.LastChange != 0 || s.ExitCode != nil {
		t.Fatalf("state = %+v", s)
	}
	h.acquire("web", "a").Release()
	if err := h.m.Stop(ctx, "web", "a", "SIGINT"); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Stop(ctx, "web", "a", ""); err != nil {
		t.Fatal(err)
	}
	if n := len(h.rt.stopCalls()); n != 1 {
		t.Fatalf("Runtime.Stop calls = %d, want 1", n)
	}
}

func TestStopHealthy(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	l := h.acquire("web", "a")
	id := h.containerID("web", "a")
	h.clk.Advance(time.Second)
	if err := h.m.Stop(context.Background(), "web", "a", "2"); err != nil {
		t.Fatal(err)
	}
	s := h.state("web", "a")
	if s.Status != StatusStopped || s.LastChange != t0.Add(time.Second).UnixMilli() {
		t.Fatalf("state = %+v", s)
	}
	if stops := h.rt.stopCalls(); len(stops) != 1 || stops[0] != (stopCall{id, "SIGINT", defaultStopGrace}) {
		t.Fatalf("stops = %+v", stops)
	}
	if h.rt.isOwned(id) {
		t.Fatal("container not removed")
	}
	if e := h.waitEvent("a", events.Stop); e.Message != "stop requested (SIGINT)" {
		t.Fatalf("stop message = %q", e.Message)
	}
	select {
	case <-l.Done():
	default:
		t.Fatal("lease Done not closed")
	}
	l.Release() // a release after the run ended is harmless
	if err := h.m.Stop(context.Background(), "web", "a", "SIGWHAT"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad signal: %v", err)
	}
}

func TestStopDuringStartBeforeTheContainerRuns(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	entered := make(chan struct{})
	h.rt.set(func(f *fakeRuntime) {
		f.runHook = func(ctx context.Context, _ RunSpec) error {
			close(entered)
			<-ctx.Done() // a create that only ends when cancelled
			return ctx.Err()
		}
	})
	errc := make(chan error, 1)
	go func() {
		_, err := h.m.Acquire(context.Background(), "web", "a")
		errc <- err
	}()
	<-entered
	if err := h.m.Stop(context.Background(), "web", "a", ""); err != nil {
		t.Fatal(err)
	}
	var se *StartError
	if err := <-errc; !errors.As(err, &se) || se.Retryable || !errors.Is(err, errStoppedWhileStarting) {
		t.Fatalf("waiter got %v, want a final StartError", err)
	}
	if s := h.status("web", "a"); s != StatusStopped {
		t.Fatalf("status = %q", s)
	}
	h.noEvent("a", events.Error) // a cancelled start did not fail
}

func TestStopAndDestroyDuringTheGate(t *testing.T) {
	for _, destroy := range []bool{false, true} {
		name := map[bool]string{false: "stop", true: "destroy"}[destroy]
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{}, testContainer("web"))
			h.pr.gate(make(chan struct{}))
			errc := make(chan error, 1)
			go func() {
				_, err := h.m.Acquire(context.Background(), "web", "a")
				errc <- err
			}()
			eventually(t, "container registered", func() bool { return h.containerID("web", "a") != "" })
			id := h.containerID("web", "a")
			var err error
			if destroy {
				err = h.m.Destroy(context.Background(), "web", "a")
			} else {
				err = h.m.Stop(context.Background(), "web", "a", "SIGTERM")
			}
			if err != nil {
				t.Fatal(err)
			}
			var se *StartError
			if err := <-errc; !errors.As(err, &se) || se.Retryable {
				t.Fatalf("waiter got %v, want a final StartError", err)
			}
			if s := h.status("web", "a"); s != StatusStopped {
				t.Fatalf("status = %q", s)
			}
			if h.rt.isOwned(id) {
				t.Fatal("container left behind")
			}
			stops, removed := h.rt.stopCalls(), h.rt.removedIDs()
			if destroy && (len(stops) != 0 || !slices.Contains(removed, id)) {
				t.Fatalf("destroy: stops %v, removed %v; want a kill", stops, removed)
			}
			if !destroy && (len(stops) != 1 || stops[0].signal != "SIGTERM") {
				t.Fatalf("stop: stops %v; want SIGTERM", stops)
			}
			// The instance is usable again.
			h.pr.set(nil)
			h.acquire("web", "a").Release()
		})
	}
}

func TestConcurrentStopsCoalesceAndAcquireWaits(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	h.acquire("web", "a").Release()
	first := h.containerID("web", "a")
	unblock := make(chan struct{})
	h.rt.set(func(f *fakeRuntime) {
		f.stopHook = func(ctx context.Context, _ string) error {
			<-unblock
			return nil
		}
	})
	stopErrs := make(chan error, 2)
	go func() { stopErrs <- h.m.Stop(context.Background(), "web", "a", "") }()
	eventually(t, "stopping", func() bool { return h.status("web", "a") == StatusStopping })
	go func() { stopErrs <- h.m.Stop(context.Background(), "web", "a", "") }()
	leases := make(chan *Lease, 1)
	go func() {
		l, err := h.m.Acquire(context.Background(), "web", "a")
		if err != nil {
			t.Error(err)
		}
		leases <- l
	}()
	// Start during a stop waits too, then joins the fresh run.
	startErr := make(chan error, 1)
	go func() { startErr <- h.m.Start(context.Background(), "web", "a", StartOptions{WaitHealthy: true}) }()
	eventually(t, "Stop, Acquire and Start to join the stop", func() bool {
		h.m.mu.Lock()
		defer h.m.mu.Unlock()
		return h.m.lookupLocked("web", "a").stopping.waiters == 3
	})
	close(unblock)
	for range 2 {
		if err := <-stopErrs; err != nil {
			t.Fatal(err)
		}
	}
	if err := <-startErr; err != nil {
		t.Fatal(err)
	}
	l := <-leases
	if l == nil {
		t.FailNow()
	}
	defer l.Release()
	if n := len(h.rt.stopCalls()); n != 1 {
		t.Fatalf("Runtime.Stop calls = %d, want 1", n)
	}
	if h.rt.runCount() != 2 || h.containerID("web", "a") == first {
		t.Fatal("Acquire after the stop did not get a fresh container")
	}
}

func TestDestroyEscalatesAGracefulStop(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	h.acquire("web", "a").Release()
	id := h.containerID("web", "a")
	h.rt.set(func(f *fakeRuntime) {
		// A container that ignores SIGTERM: Stop returns once it is killed.
		f.stopHook = func(ctx context.Context, id string) error {
			for f.isOwnedAfterKill(id) {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Millisecond):
				}
			}
			return nil
		}
	})
	stopErr := make(chan error, 1)
	go func() { stopErr <- h.m.Stop(context.Background(), "web", "a", "") }()
	eventually(t, "stopping", func() bool { return h.status("web", "a") == StatusStopping })
	if err := h.m.Destroy(context.Background(), "web", "a"); err != nil {
		t.Fatal(err)
	}
	if err := <-stopErr; err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(h.rt.removedIDs(), id) || h.status("web", "a") != StatusStopped {
		t.Fatalf("removed %v, status %q", h.rt.removedIDs(), h.status("web", "a"))
	}
}

// isOwnedAfterKill reports whether id has not been removed yet.
func (f *fakeRuntime) isOwnedAfterKill(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !slices.Contains(f.removed, id)
}

func TestStopFailureFallsBackToRemove(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	h.acquire("web", "a").Release()
	id := h.containerID("web", "a")
	h.rt.set(func(f *fakeRuntime) {
		f.stopHook = func(context.Context, string) error { return errors.New("engine hiccup") }
	})
	if err := h.m.Stop(context.Background(), "web", "a", ""); err != nil {
		t.Fatalf("Stop with a working fallback: %v", err)
	}
	if !slices.Contains(h.rt.removedIDs(), id) || h.status("web", "a") != StatusStopped {
		t.Fatal("not removed after a failed stop")
	}
}

func TestStartWithoutAndWithWait(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	release := make(chan struct{})
	h.pr.gate(release)
	// Without wait: returns once the container runs, state running.
	if err := h.m.Start(context.Background(), "web", "a", StartOptions{}); err != nil {
		t.Fatal(err)
	}
	if s := h.status("web", "a"); s != StatusRunning {
		t.Fatalf("status = %q, want running", s)
	}
	// With wait on a start in progress: joins it and waits for healthy.
	done := make(chan error, 1)
	go func() { done <- h.m.Start(context.Background(), "web", "a", StartOptions{WaitHealthy: true}) }()
	eventually(t, "the second Start to join", func() bool { return h.waiters("web", "a") == 2 })
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("status = %q", s)
	}
	// On a healthy instance: nothing new.
	if err := h.m.Start(context.Background(), "web", "a", StartOptions{WaitHealthy: true}); err != nil {
		t.Fatal(err)
	}
	if n := h.rt.runCount(); n != 1 {
		t.Fatalf("runs = %d", n)
	}
}

func TestStartReportsEarlyFailures(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	h.rt.set(func(f *fakeRuntime) { f.runErr = errors.New("no such image") })
	err := h.m.Start(context.Background(), "web", "a", StartOptions{})
	var se *StartError
	if !errors.As(err, &se) || !se.Retryable {
		t.Fatalf("err = %v, want a retryable StartError", err)
	}
	if s := h.status("web", "a"); s != StatusStopped {
		t.Fatalf("status = %q", s)
	}
}

func TestCrashThenFreshStart(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	l := h.acquire("web", "a")
	old := h.containerID("web", "a")
	h.clk.Advance(time.Minute) // up long enough: not a crash loop
	h.m.handleExit(h.rt.exit(old, 3, false))

	s := h.state("web", "a")
	if s.Status != StatusStoppedWithCode || s.ExitCode == nil || *s.ExitCode != 3 {
		t.Fatalf("state = %+v, want stopped_with_code 3", s)
	}
	if e := h.waitEvent("a", events.Stop); e.Message != "container exited (exit 3)" {
		t.Fatalf("stop message = %q", e.Message)
	}
	select {
	case <-l.Done():
	default:
		t.Fatal("lease Done not closed on crash")
	}
	l.Release()
	// Kept for inspection until the next start, then removed before it.
	if slices.Contains(h.rt.removedIDs(), old) {
		t.Fatal("crashed container removed at once")
	}
	l2 := h.acquire("web", "a")
	defer l2.Release()
	if !slices.Contains(h.rt.removedIDs(), old) {
		t.Fatal("crashed container not removed by the next start")
	}
	if h.containerID("web", "a") == old || l2.Generation() != 2 {
		t.Fatal("next Acquire did not start a fresh container")
	}
	if s := h.state("web", "a"); s.Status != StatusHealthy || s.ExitCode != nil {
		t.Fatalf("state = %+v", s)
	}
}

func TestOOMKillMessage(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	h.acquire("web", "a").Release()
	h.clk.Advance(time.Minute)
	h.m.handleExit(h.rt.exit(h.containerID("web", "a"), 137, true))
	if e := h.waitEvent("a", events.Stop); e.Message != "out of memory: killed (exit 137)" {
		t.Fatalf("message = %q", e.Message)
	}
}

func TestCrashBackoff(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	crash := func() {
		t.Helper()
		h.acquire("web", "a").Release()
		h.m.handleExit(h.rt.exit(h.containerID("web", "a"), 1, false))
	}
	crash() // 1st quick crash: 1s
	_, err := h.m.Acquire(context.Background(), "web", "a")
	var se *StartError
	if !errors.As(err, &se) || !se.Retryable || !contains(err.Error(), "crashed 1 times") {
		t.Fatalf("err = %v, want a retryable backoff StartError", err)
	}
	runs := h.rt.runCount()
	h.clk.Advance(time.Second)
	crash() // 2nd: 2s
	h.clk.Advance(time.Second)
	if _, err := h.m.Acquire(context.Background(), "web", "a"); !errors.As(err, &se) || !contains(err.Error(), "crashed 2 times") {
		t.Fatalf("err = %v, want backoff after 2 crashes", err)
	}
	h.clk.Advance(time.Second)
	crash() // 3rd: 4s
	h.clk.Advance(3 * time.Second)
	if _, err := h.m.Acquire(context.Background(), "web", "a"); !errors.As(err, &se) {
		t.Fatalf("err = %v, want still in backoff after 3s of 4s", err)
	}
	if got := h.rt.runCount(); got != runs+2 {
		t.Fatalf("runs = %d, want %d: backoff must not start containers", got, runs+2)
	}
	h.clk.Advance(time.Second)
	// Up past the crash window: the count resets.
	h.acquire("web", "a").Release()
	h.clk.Advance(crashWindow)
	h.m.handleExit(h.rt.exit(h.containerID("web", "a"), 1, false))
	h.acquire("web", "a").Release()
	// An explicit Start is not held back by the backoff.
	h.m.handleExit(h.rt.exit(h.containerID("web", "a"), 1, false))
	if err := h.m.Start(context.Background(), "web", "a", StartOptions{WaitHealthy: true}); err != nil {
		t.Fatalf("Start during backoff: %v", err)
	}
}

func TestCrashBackoffDoubling(t *testing.T) {
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := crashBackoff(i + 1); got != w {
			t.Errorf("crashBackoff(%d) = %v, want %v", i+1, got, w)
		}
	}
}

func TestExitDuringTheGate(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	h.pr.gate(make(chan struct{}))
	errc := make(chan error, 1)
	go func() {
		_, err := h.m.Acquire(context.Background(), "web", "a")
		errc <- err
	}()
	eventually(t, "container registered", func() bool { return h.containerID("web", "a") != "" })
	h.m.handleExit(h.rt.exit(h.containerID("web", "a"), 3, false))
	err := <-errc
	var se *StartError
	if !errors.As(err, &se) || se.Retryable || !errors.Is(err, ErrExited) {
		t.Fatalf("err = %v, want a final StartError wrapping ErrExited", err)
	}
	if err.Error() != "Container exited before we could determine the container health, exit code: 3" {
		t.Fatalf("text = %q", err.Error())
	}
	if s := h.state("web", "a"); s.Status != StatusStoppedWithCode || *s.ExitCode != 3 {
		t.Fatalf("state = %+v", s)
	}
	evts := h.waitEvents("a", events.Stop, events.Error)
	if e := evts[events.Error]; e.Message != err.Error() || e.Level != events.LevelError {
		t.Fatalf("error event = %+v", e)
	}
	if e := evts[events.Stop]; e.Message != "container exited (exit 3)" {
		t.Fatalf("stop event = %+v", e)
	}
}

func TestExitOvertakingRunIsApplied(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	// The engine reports the exit of ctr01 before Run returns it.
	h.rt.set(func(f *fakeRuntime) {
		f.runHook = func(context.Context, RunSpec) error {
			h.m.handleExit(Exit{ContainerID: "ctr01", ExitCode: 2})
			return nil
		}
	})
	h.pr.gate(make(chan struct{}))
	_, err := h.m.Acquire(context.Background(), "web", "a")
	if !errors.Is(err, ErrExited) {
		t.Fatalf("err = %v, want the early exit applied", err)
	}
	if s := h.state("web", "a"); s.Status != StatusStoppedWithCode || *s.ExitCode != 2 {
		t.Fatalf("state = %+v", s)
	}
}

func TestDestroyStoppedWithCode(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	h.acquire("web", "a").Release()
	id := h.containerID("web", "a")
	h.m.handleExit(h.rt.exit(id, 1, false)) // quick crash: backoff armed
	// Stop leaves the kept container and the state alone.
	if err := h.m.Stop(context.Background(), "web", "a", ""); err != nil {
		t.Fatal(err)
	}
	if s := h.status("web", "a"); s != StatusStoppedWithCode {
		t.Fatalf("status after Stop = %q", s)
	}
	if err := h.m.Destroy(context.Background(), "web", "a"); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(h.rt.removedIDs(), id) || h.status("web", "a") != StatusStopped {
		t.Fatal("Destroy did not remove the exited container")
	}
	// The backoff is forgotten: traffic starts it at once.
	h.acquire("web", "a").Release()
}

func TestShutdown(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"), testContainer("api"))
	h.acquire("web", "a").Release()
	held := h.acquire("api", "b")
	h.acquire("web", "crashed").Release()
	crashed := h.containerID("web", "crashed")
	h.m.handleExit(h.rt.exit(crashed, 1, false))

	release := make(chan struct{})
	h.pr.gate(release)
	startErr := make(chan error, 1)
	go func() {
		_, err := h.m.Acquire(context.Background(), "web", "starting")
		startErr <- err
	}()
	eventually(t, "a start in its gate", func() bool { return h.containerID("web", "starting") != "" })

	if err := h.m.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-startErr; !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("waiter got %v, want ErrShuttingDown", err)
	}
	select {
	case <-held.Done():
	default:
		t.Fatal("held lease not ended")
	}
	held.Release()
	if owned, _ := h.rt.ListOwned(context.Background()); len(owned) != 0 {
		t.Fatalf("containers left: %+v", owned)
	}
	for _, id := range []string{"a", "crashed", "starting"} {
		if s := h.status("web", id); s != StatusStopped && s != StatusStoppedWithCode {
			t.Fatalf("web/%s status = %q", id, s)
		}
	}
	if _, err := h.m.Acquire(context.Background(), "web", "a"); !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("Acquire after Shutdown: %v", err)
	}
	if err := h.m.Start(context.Background(), "web", "a", StartOptions{}); !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("Start after Shutdown: %v", err)
	}
	if e := h.waitEvent("b", events.Stop); e.Message != "lunorad shutting down" {
		t.Fatalf("stop message = %q", e.Message)
	}
	// Stop still answers, and a second Shutdown is harmless.
	if err := h.m.Stop(context.Background(), "web", "a", ""); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]string{
		"": "SIGTERM", "15": "SIGTERM", "SIGTERM": "SIGTERM", "term": "SIGTERM",
		"9": "SIGKILL", "sigkill": "SIGKILL", "2": "SIGINT", " SIGUSR1 ": "SIGUSR1",
	} {
		got, err := ParseSignal(in)
		if err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"0", "64", "-1", "SIGFOO", "TERMINATE"} {
		if _, err := ParseSignal(bad); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ParseSignal(%q) err = %v, want ErrInvalidArgument", bad, err)
		}
	}
}
