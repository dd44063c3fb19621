package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/events"
)

// A container that exits before Run can read its ports back is a crash on
// start: stopped_with_code, a final error with upstream's text, and the
// crash backoff, so that traffic does not recreate it in a hot loop.
func TestExitBeforeRunReturnsIsACrash(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	h.rt.set(func(f *fakeRuntime) {
		f.runErr = fmt.Errorf("starting: %w", &RunExitedError{ContainerID: "dead0123456789", ExitCode: 1})
	})

	_, err := h.m.Acquire(context.Background(), "web", "a")
	var se *StartError
	if !errors.As(err, &se) || se.Retryable || !errors.Is(err, ErrExited) {
		t.Fatalf("err = %v, want a final StartError wrapping ErrExited", err)
	}
	if err.Error() != "Container exited before we could determine the container health, exit code: 1" {
		t.Fatalf("text = %q", err.Error())
	}
	if s := h.state("web", "a"); s.Status != StatusStoppedWithCode || s.ExitCode == nil || *s.ExitCode != 1 {
		t.Fatalf("state = %+v, want stopped_with_code 1", s)
	}
	evts := h.waitEvents("a", events.Stop, events.Error)
	if e := evts[events.Stop]; e.Message != "container exited (exit 1)" {
		t.Fatalf("stop event = %+v", e)
	}
	if e := evts[events.Error]; e.Message != err.Error() {
		t.Fatalf("error event = %+v", e)
	}

	// The next request within the backoff starts nothing.
	runs := h.rt.runCount()
	if _, err := h.m.Acquire(context.Background(), "web", "a"); !errors.As(err, &se) || !se.Retryable ||
		!contains(err.Error(), "crashed 1 times") {
		t.Fatalf("err = %v, want the crash backoff", err)
	}
	if h.rt.runCount() != runs {
		t.Fatal("a request during the crash backoff ran a container")
	}
	h.clk.Advance(time.Second)
	h.rt.set(func(f *fakeRuntime) { f.runErr = nil })
	h.acquire("web", "a").Release()
	if s := h.state("web", "a"); s.Status != StatusHealthy || s.ExitCode != nil {
		t.Fatalf("state after the backoff = %+v, want healthy", s)
	}
}
