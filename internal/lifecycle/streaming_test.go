package lifecycle

import (
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/events"
)

// A WebSocket or stream that moves no byte is idle (PROTOCOL §4): once its
// lease is streaming, holding it no longer keeps the instance awake.
func TestSilentStreamingLeaseSleeps(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	l := h.acquire("web", "a")
	h.waitEvent("a", events.Start)
	h.clk.Advance(time.Minute) // the request took a minute to answer
	l.Streaming()

	h.clk.Advance(10*time.Minute - time.Second)
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("slept before sleepAfter passed since the headers: %q", s)
	}
	select {
	case <-l.Done():
		t.Fatal("Done closed while the instance is healthy")
	default:
	}
	h.clk.Advance(time.Second)
	if s := h.status("web", "a"); s != StatusStopped {
		t.Fatalf("status with only a silent stream open = %q, want stopped", s)
	}
	if e := h.waitEvent("a", events.Sleep); e.Message != "idle for 10m0s" {
		t.Fatalf("sleep message = %q", e.Message)
	}
	select {
	case <-l.Done():
	default:
		t.Fatal("the streaming lease's Done did not close on sleep")
	}
	l.Release() // the router releases once the stream has ended
	if stops := h.rt.stopCalls(); len(stops) != 1 || stops[0].signal != "SIGTERM" {
		t.Fatalf("stops = %+v, want one SIGTERM", stops)
	}
}

func TestTouchKeepsStreamingLeaseAwake(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	l := h.acquire("web", "a")
	defer l.Release()
	l.Streaming()
	for range 10 {
		h.clk.Advance(5 * time.Minute)
		l.Touch() // a frame every sleepAfter/2
	}
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("slept although bytes moved every 5m: %q", s)
	}
	h.clk.Advance(10*time.Minute - time.Second)
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("slept before sleepAfter passed since the last byte: %q", s)
	}
	h.clk.Advance(time.Second)
	if s := h.status("web", "a"); s != StatusStopped {
		t.Fatalf("did not sleep sleepAfter after the last byte: %q", s)
	}
}

// A request in flight keeps the instance awake however long it takes, even
// beside a silent stream; once it ends, the silent stream no longer does.
func TestInFlightRequestBesideSilentStream(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	stream := h.acquire("web", "a")
	defer stream.Release()
	request := h.acquire("web", "a")
	stream.Streaming()
	stream.Streaming() // idempotent: counted once, or the request would not count

	h.clk.Advance(24 * time.Hour)
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("slept with a request in flight: %q", s)
	}
	request.Release()
	h.clk.Advance(10*time.Minute - time.Second)
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("slept before sleepAfter passed since the request ended: %q", s)
	}
	h.clk.Advance(time.Second)
	if s := h.status("web", "a"); s != StatusStopped {
		t.Fatalf("status after the request ended beside a silent stream = %q, want stopped", s)
	}
	select {
	case <-stream.Done():
	default:
		t.Fatal("the stream's Done did not close on sleep")
	}
}

// Streaming after Release must not count the lease out a second time.
func TestStreamingAfterReleaseDoesNothing(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	done := h.acquire("web", "a")
	done.Release()
	request := h.acquire("web", "a")
	defer request.Release()
	done.Streaming()

	h.clk.Advance(time.Hour)
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("slept with a request in flight: %q", s)
	}
	info, err := h.m.Instance("web", "a")
	if err != nil {
		t.Fatal(err)
	}
	if info.InFlight != 1 {
		t.Fatalf("InFlight = %d, want 1", info.InFlight)
	}
}
