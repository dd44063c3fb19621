package lifecycle

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/events"
)

// runManager runs m.Run until the test ends.
func runManager(t *testing.T, h *harness) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	eventually(t, "adoption to finish", func() bool {
		h.m.mu.Lock()
		ch := h.m.adoptDone
		h.m.mu.Unlock()
		if ch == nil {
			return false
		}
		select {
		case <-ch:
			return true
		default:
			return false
		}
	})
}

func TestAdoption(t *testing.T) {
	web := testContainer("web")
	web.HardTimeout = time.Hour
	h := newHarness(t, harnessOptions{}, web)
	hash := web.Hash()
	old := t0.Add(-time.Hour)
	h.rt.add(Running{ID: "adopt-me", Container: "web", Instance: "a", ConfigHash: hash, Generation: 7,
		Running: true, Created: old, StartedAt: t0.Add(-50 * time.Minute), Ports: map[int]string{8080: "127.0.0.1:41000"}})
	h.rt.add(Running{ID: "changed", Container: "web", Instance: "b", ConfigHash: "other", Running: true, Created: old})
	h.rt.add(Running{ID: "exited", Container: "web", Instance: "c", ConfigHash: hash, Running: false, Created: old})
	h.rt.add(Running{ID: "gone-config", Container: "removed", Instance: "x", ConfigHash: hash, Running: true, Created: old})
	h.rt.add(Running{ID: "young", Container: "web", Instance: "d", ConfigHash: "other", Running: true, Created: t0.Add(-5 * time.Second)})

	runManager(t, h)

	l := h.acquire("web", "a")
	if h.rt.runCount() != 0 {
		t.Fatal("an adoptable container was started again")
	}
	if addr, _ := l.Addr(8080); addr != "127.0.0.1:41000" {
		t.Fatalf("Addr = %q, want the adopted port", addr)
	}
	if l.Generation() != 8 {
		t.Fatalf("generation = %d, want 8 (past the label's 7)", l.Generation())
	}
	l.Release()
	if e := h.waitEvent("a", events.Start); e.Message != "adopted running container adopt-me" {
		t.Fatalf("start event = %q", e.Message)
	}
	removed := h.rt.removedIDs()
	slices.Sort(removed)
	if !slices.Equal(removed, []string{"changed", "exited", "gone-config"}) {
		t.Fatalf("removed = %v, want the mismatched, exited and unknown ones", removed)
	}
	if !h.rt.isOwned("young") {
		t.Fatal("a container younger than AdoptGrace was removed")
	}
	// The hard timeout is measured from the adopted container's own start.
	h.clk.Advance(10 * time.Minute)
	if s := h.status("web", "a"); s != StatusStopped {
		t.Fatalf("adopted run not stopped at its hard timeout: %q", s)
	}
}

func TestAdoptedContainerIsProbedAgain(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	h.rt.add(Running{ID: "c1", Container: "web", Instance: "a", ConfigHash: testContainer("web").Hash(),
		Running: true, Created: t0.Add(-time.Hour), Ports: map[int]string{8080: "127.0.0.1:41000"}})
	h.pr.set(func(context.Context, ProbeTarget) error {
		return &NotReadyError{Container: "web", Port: 8080, TimeoutMs: 30000}
	})
	runManager(t, h)
	var nre *NotReadyError
	if _, err := h.m.Acquire(context.Background(), "web", "a"); !errors.As(err, &nre) {
		t.Fatalf("err = %v, want the readiness failure of the adopted container", err)
	}
	if h.rt.isOwned("c1") {
		t.Fatal("an adopted container that failed its gate was kept")
	}
}

func TestExitStreamAndReconcile(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	runManager(t, h)

	// The loop reconciles every interval (ListOwned is adoption's alone).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(reconcileInterval)
	eventually(t, "a reconcile", func() bool { return h.rt.stateListCount() >= 1 })

	// An exit through the Exits stream.
	h.acquire("web", "a").Release()
	h.clk.Advance(time.Minute)
	h.rt.exits <- h.rt.exit(h.containerID("web", "a"), 4, false)
	eventually(t, "the exit to be applied", func() bool { return h.status("web", "a") == StatusStoppedWithCode })

	// An exit the stream missed, a container removed behind lunorad's back,
	// an orphan nobody accounts for, and a healthy run to leave alone.
	h.acquire("web", "b").Release()
	h.clk.Advance(time.Minute)
	h.rt.exit(h.containerID("web", "b"), 5, false)
	h.acquire("web", "c").Release()
	gone := h.containerID("web", "c")
	h.rt.set(func(f *fakeRuntime) { delete(f.owned, gone) })
	h.rt.add(Running{ID: "orphan", Container: "web", Instance: "zz", Running: true, Created: t0})
	h.rt.add(Running{ID: "young-orphan", Container: "web", Instance: "zy", Running: true, Created: h.clk.Now()})
	h.acquire("web", "d").Release()

	if err := h.m.reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := h.state("web", "b"); s.Status != StatusStoppedWithCode || *s.ExitCode != 5 {
		t.Fatalf("b = %+v, want stopped_with_code 5", s)
	}
	if s := h.status("web", "c"); s != StatusStopped {
		t.Fatalf("c = %q", s)
	}
	if e := h.waitEvent("c", events.Stop); e.Message != "container removed outside lunorad" {
		t.Fatalf("message = %q", e.Message)
	}
	if h.rt.isOwned("orphan") || !h.rt.isOwned("young-orphan") {
		t.Fatal("orphan handling: want the old one removed and the young one kept")
	}
	if s := h.status("web", "d"); s != StatusHealthy || !h.rt.isOwned(h.containerID("web", "d")) {
		t.Fatalf("reconcile disturbed a healthy run: %q", s)
	}
	// The exited container b is kept for inspection, not treated as an orphan.
	if slices.Contains(h.rt.removedIDs(), "ctr02") {
		t.Fatal("kept exited container removed by reconcile")
	}
}

// Reconcile works from ListOwnedStates alone (no inspect of every running
// container): it still ends a run whose container stopped, with its exit
// code, or vanished, and removes an old orphan but not a young one whose
// listed Created, rounded down to the second, makes it look old.
func TestReconcileUsesTheStatesListing(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	h.acquire("web", "stopped").Release()
	h.acquire("web", "vanished").Release()
	h.acquire("web", "healthy").Release()
	h.clk.Advance(time.Minute)
	h.rt.exit(h.containerID("web", "stopped"), 7, false)
	vanished := h.containerID("web", "vanished")
	h.rt.set(func(f *fakeRuntime) { delete(f.owned, vanished) })
	now := h.clk.Now() // whole seconds
	h.rt.add(Running{ID: "old-orphan", Container: "web", Instance: "zz", Running: true,
		Created: now.Add(-h.m.adoptGrace - time.Second)})
	// 300 ms short of the grace, but listed as created a whole grace ago.
	h.rt.add(Running{ID: "young-orphan", Container: "web", Instance: "zy", Running: true,
		Created: now.Add(-h.m.adoptGrace + 300*time.Millisecond)})

	if err := h.m.reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if lists, states := h.rt.listCount(), h.rt.stateListCount(); lists != 0 || states != 1 {
		t.Fatalf("reconcile called ListOwned %d times and ListOwnedStates %d, want 0 and 1", lists, states)
	}
	// Reconcile emits the two stop events in map order: wait for both.
	stops := h.waitStops("stopped", "vanished")
	if e := stops["stopped"]; e.Message != "container exited (exit 7)" {
		t.Errorf("stop event = %q, want the exit code", e.Message)
	}
	if s := h.state("web", "stopped"); s.Status != StatusStoppedWithCode || s.ExitCode == nil || *s.ExitCode != 7 {
		t.Errorf("stopped = %+v, want stopped_with_code 7", s)
	}
	if e := stops["vanished"]; e.Message != "container removed outside lunorad" {
		t.Errorf("stop event = %q", e.Message)
	}
	if s := h.status("web", "vanished"); s != StatusStopped {
		t.Errorf("vanished = %q, want stopped", s)
	}
	if h.rt.isOwned("old-orphan") {
		t.Error("an orphan older than AdoptGrace was kept")
	}
	if !h.rt.isOwned("young-orphan") {
		t.Error("an orphan younger than AdoptGrace was removed: its listed Created is rounded down")
	}
	if s := h.status("web", "healthy"); s != StatusHealthy || !h.rt.isOwned(h.containerID("web", "healthy")) {
		t.Errorf("reconcile disturbed a healthy run: %q", s)
	}
}

func TestRunBuildsImagesInBackground(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"), testContainer("api"))
	h.rt.set(func(f *fakeRuntime) { f.imageErr = errors.New("build failed") })
	runManager(t, h)
	eventually(t, "both images requested", func() bool {
		h.rt.mu.Lock()
		defer h.rt.mu.Unlock()
		return slices.Equal(h.rt.ensured, []string{"api", "web"})
	})
}

func TestRunTwiceFails(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	runManager(t, h)
	if err := h.m.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}
}
