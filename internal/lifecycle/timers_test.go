package lifecycle

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/clock"
	"github.com/lunora/lunorad/internal/events"
)

func TestSleepAfterOnlyWhenIdle(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	l := h.acquire("web", "a")
	h.waitEvent("a", events.Start)

	// A held lease (a long request, an open WebSocket) is never idle.
	h.clk.Advance(30 * time.Minute)
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("slept with a lease held: %q", s)
	}
	l.Release()
	l.Release() // idempotent: must not count twice

	h.clk.Advance(10*time.Minute - time.Second)
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("slept early: %q", s)
	}
	h.clk.Advance(time.Second)
	if s := h.status("web", "a"); s != StatusStopped {
		t.Fatalf("status after sleepAfter = %q, want stopped", s)
	}
	stops := h.rt.stopCalls()
	if len(stops) != 1 || stops[0].signal != "SIGTERM" || stops[0].grace != defaultStopGrace {
		t.Fatalf("stops = %+v, want one SIGTERM with the default grace", stops)
	}
	e := h.waitEvent("a", events.Sleep)
	if e.Message != "idle for 10m0s" {
		t.Fatalf("sleep message = %q", e.Message)
	}
	select {
	case <-l.Done():
	default:
		t.Fatal("lease Done not closed after sleep")
	}
	// The next request starts a fresh container.
	l2 := h.acquire("web", "a")
	defer l2.Release()
	if h.rt.runCount() != 2 || l2.Generation() != 2 {
		t.Fatalf("runs = %d, generation = %d; want a fresh run 2", h.rt.runCount(), l2.Generation())
	}
}

// TestIdleTimerFollowsLatestActivity: requests leave an armed idle timer
// alone; when it fires it waits again for the rest of sleepAfter after the
// latest activity, and a timer that fires during a request is re-armed by
// that request's release.
func TestIdleTimerFollowsLatestActivity(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	h.acquire("web", "a").Release() // armed for 10m
	h.clk.Advance(5 * time.Minute)
	h.acquire("web", "a").Release()
	h.clk.Advance(5 * time.Minute) // fires: 5m since the last request
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("slept 5m after a request: %q", s)
	}
	h.clk.Advance(4 * time.Minute) // 14m
	l := h.acquire("web", "a")
	h.clk.Advance(2 * time.Minute) // fires at 15m with the request in flight
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("slept with a request in flight: %q", s)
	}
	l.Release() // 16m
	h.clk.Advance(10*time.Minute - time.Second)
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("slept early: %q", s)
	}
	h.clk.Advance(time.Second)
	if s := h.status("web", "a"); s != StatusStopped {
		t.Fatalf("did not sleep 10m after the last release: %q", s)
	}
}

func TestTouchRenewsIdleClock(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	l := h.acquire("web", "a")
	l.Release()
	h.clk.Advance(9 * time.Minute)
	l.Touch() // a byte moved on a stream that outlives its request
	h.clk.Advance(2 * time.Minute)
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("Touch did not renew: %q", s)
	}
	h.clk.Advance(8*time.Minute - time.Second)
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("slept before 10m after the touch: %q", s)
	}
	h.clk.Advance(time.Second)
	if s := h.status("web", "a"); s != StatusStopped {
		t.Fatalf("did not sleep 10m after the touch: %q", s)
	}
}

func TestRenewActivityRenewsIdleClock(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	h.acquire("web", "a").Release()
	h.clk.Advance(6 * time.Minute)
	if err := h.m.RenewActivity("web", "a"); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(6 * time.Minute)
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("RenewActivity did not renew: %q", s)
	}
	info, _ := h.m.Instance("web", "a")
	if want := t0.Add(6 * time.Minute); !info.LastActivity.Equal(want) {
		t.Fatalf("LastActivity = %v, want %v", info.LastActivity, want)
	}
	h.clk.Advance(4 * time.Minute)
	if s := h.status("web", "a"); s != StatusStopped {
		t.Fatalf("did not sleep after the renewed period: %q", s)
	}
	// On a stopped instance it is a no-op, not an error.
	if err := h.m.RenewActivity("web", "a"); err != nil {
		t.Fatal(err)
	}
}

func TestHardTimeoutDespiteActivity(t *testing.T) {
	c := testContainer("web")
	c.HardTimeout = time.Hour
	h := newHarness(t, harnessOptions{}, c)
	l := h.acquire("web", "a")
	defer l.Release()
	for range 5 {
		h.clk.Advance(11 * time.Minute)
		l.Touch()
	}
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("stopped before the hard timeout: %q", s)
	}
	h.clk.Advance(5 * time.Minute)
	if s := h.status("web", "a"); s != StatusStopped {
		t.Fatalf("status after hardTimeout = %q, want stopped", s)
	}
	if stops := h.rt.stopCalls(); len(stops) != 1 || stops[0].signal != "SIGTERM" {
		t.Fatalf("stops = %+v, want one SIGTERM (never escalated to destroy)", stops)
	}
	if e := h.waitEvent("a", events.Stop); e.Message != "hard timeout reached" {
		t.Fatalf("stop message = %q", e.Message)
	}
	select {
	case <-l.Done():
	default:
		t.Fatal("lease Done not closed")
	}
}

func TestHardTimeoutMeasuredFromEachStart(t *testing.T) {
	c := testContainer("web")
	c.HardTimeout = time.Hour
	h := newHarness(t, harnessOptions{}, c)
	h.acquire("web", "a").Release()
	h.clk.Advance(30 * time.Minute)
	if err := h.m.Stop(context.Background(), "web", "a", ""); err != nil {
		t.Fatal(err)
	}
	l := h.acquire("web", "a") // run 2 starts at 30m
	defer l.Release()
	h.clk.Advance(45 * time.Minute) // 75m: run 1's deadline has passed
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("run 2 stopped by run 1's hard timeout: %q", s)
	}
	h.clk.Advance(15 * time.Minute)
	if s := h.status("web", "a"); s != StatusStopped {
		t.Fatalf("run 2 not stopped an hour after its start: %q", s)
	}
}

// TestStaleGenerationTimerIgnored fires run 1's timer callbacks by hand
// after run 2 started, as a real timer can when it fires just as the run is
// stopped: run 2 must not notice.
func TestStaleGenerationTimerIgnored(t *testing.T) {
	c := testContainer("web")
	c.HardTimeout = 2 * time.Hour
	rc := &recordingClock{Fake: clock.NewFake(t0)}
	h := newHarness(t, harnessOptions{clock: rc}, c)

	l1 := h.acquire("web", "a")
	l1.Release() // arms run 1's idle timer
	if l1.Generation() != 1 {
		t.Fatalf("generation = %d", l1.Generation())
	}
	if err := h.m.Stop(context.Background(), "web", "a", ""); err != nil {
		t.Fatal(err)
	}
	run1Hard := rc.recorded(2 * time.Hour)
	run1Idle := rc.recorded(10 * time.Minute)
	if len(run1Hard) != 1 || len(run1Idle) != 1 {
		t.Fatalf("recorded %d hard and %d idle timers for run 1", len(run1Hard), len(run1Idle))
	}

	l2 := h.acquire("web", "a")
	l2.Release()
	if l2.Generation() != 2 {
		t.Fatalf("run 2 generation = %d", l2.Generation())
	}
	h.clk.Advance(10 * time.Minute) // run 2 is idle long enough too
	if h.status("web", "a") != StatusStopped {
		t.Fatal("run 2 did not sleep on its own timer")
	}
	l3 := h.acquire("web", "a")
	defer l3.Release()
	stopsBefore := len(h.rt.stopCalls())
	h.drainEvents()

	run1Hard[0]()
	run1Idle[0]()
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("a stale timer stopped run 3: %q", s)
	}
	if n := len(h.rt.stopCalls()); n != stopsBefore {
		t.Fatalf("a stale timer called Runtime.Stop")
	}
	h.noEvent("a", events.Stop)
	if l3.Generation() != 3 {
		t.Fatalf("run 3 generation = %d", l3.Generation())
	}
}

func TestStartTimeoutGivesNoInstanceError(t *testing.T) {
	h := newHarness(t, harnessOptions{tweak: func(o *Options) { o.StartTimeout = time.Minute }}, testContainer("web"))
	h.pr.gate(make(chan struct{})) // never ready
	h.pr.called = make(chan ProbeTarget, 1)
	errc := make(chan error, 1)
	go func() {
		_, err := h.m.Acquire(context.Background(), "web", "a")
		errc <- err
	}()
	<-h.pr.called
	h.clk.Advance(time.Minute)
	err := <-errc
	var nie *NoInstanceError
	if !errors.As(err, &nie) {
		t.Fatalf("err = %v, want NoInstanceError", err)
	}
	if s := h.status("web", "a"); s != StatusStopped {
		t.Fatalf("status = %q", s)
	}
	if ids := h.rt.removedIDs(); len(ids) != 1 || h.rt.isOwned(ids[0]) {
		t.Fatalf("the timed-out container was not removed: %v", ids)
	}
	if e := h.waitEvent("a", events.Error); e.Level != events.LevelError {
		t.Fatalf("error event = %+v", e)
	}
}

// "0s" is a valid sleepAfter (Lunora's grammar): the instance sleeps as soon
// as it is idle, not after the 10m default.
func TestSleepAfterZeroSleepsAsSoonAsIdle(t *testing.T) {
	c := testContainer("web")
	c.SleepAfter = 0
	h := newHarness(t, harnessOptions{}, c)
	l := h.acquire("web", "a")
	h.waitEvent("a", events.Start)

	h.clk.Advance(time.Hour)
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("slept with a lease held: %q", s)
	}
	l.Release()
	h.clk.Advance(minSleepAfter - time.Millisecond)
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("slept before the %s floor: %q", minSleepAfter, s)
	}
	h.clk.Advance(time.Millisecond)
	if s := h.status("web", "a"); s != StatusStopped {
		t.Fatalf("status %s after the last request = %q, want stopped", minSleepAfter, s)
	}
	if e := h.waitEvent("a", events.Sleep); e.Message != "idle for 1s" {
		t.Fatalf("sleep message = %q", e.Message)
	}
}
