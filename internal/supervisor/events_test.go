package supervisor

import (
	"context"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/lunora/lunorad/internal/clock"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// eventConn is one connection of the fake event stream.
type eventConn struct {
	opts events.ListOptions
	msgs chan events.Message
	errs chan error
}

func eventsFake() (*fakeEngine, chan eventConn) {
	conns := make(chan eventConn, 8)
	f := &fakeEngine{}
	f.events = func(ctx context.Context, o events.ListOptions) (<-chan events.Message, <-chan error) {
		c := eventConn{opts: o, msgs: make(chan events.Message), errs: make(chan error, 1)}
		conns <- c
		return c.msgs, c.errs
	}
	return f, conns
}

func dieEvent(id string, nano int64, code int) events.Message {
	return events.Message{Type: events.ContainerEventType, Action: events.ActionDie, TimeNano: nano, Actor: events.Actor{
		ID: id, Attributes: map[string]string{"exitCode": strconv.Itoa(code), LabelContainer: "web", LabelInstance: "inst-" + id},
	}}
}

func nextExit(t *testing.T, out <-chan lifecycle.Exit) lifecycle.Exit {
	t.Helper()
	select {
	case e, ok := <-out:
		if !ok {
			t.Fatal("exits channel closed")
		}
		return e
	case <-time.After(10 * time.Second): // a guard against hanging, not a wait
		t.Fatal("no exit delivered")
		return lifecycle.Exit{}
	}
}

func nextConn(t *testing.T, conns <-chan eventConn) eventConn {
	t.Helper()
	select {
	case c := <-conns:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("the event stream was not (re)opened")
		return eventConn{}
	}
}

// advanceWhenArmed waits for the backoff timer, then moves the clock.
func advanceWhenArmed(t *testing.T, fc *clock.Fake, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fc.BlockUntil(ctx, 1); err != nil {
		t.Fatalf("no backoff timer armed: %v", err)
	}
	fc.Advance(d)
}

func TestExitsMapsDieAndOOM(t *testing.T) {
	f, conns := eventsFake()
	d, _ := newFakeDocker(t, f, Options{ConfigID: "cfgE"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := d.Exits(ctx)
	c := nextConn(t, conns)

	want := filters.NewArgs(
		filters.Arg("label", LabelManaged+"=true"), filters.Arg("label", LabelConfig+"=cfgE"),
		filters.Arg("type", "container"), filters.Arg("event", "die"), filters.Arg("event", "oom"))
	for _, k := range want.Keys() {
		for _, v := range want.Get(k) {
			if !c.opts.Filters.ExactMatch(k, v) {
				t.Errorf("filter lacks %s=%s: %v", k, v, c.opts.Filters)
			}
		}
	}
	if c.opts.Since == "" {
		t.Error("the first connection must ask for events since the Exits call")
	}

	base := time.Now().Add(time.Hour).UnixNano()
	oom := events.Message{Action: events.ActionOOM, TimeNano: base + 1, Actor: events.Actor{ID: "x"}}
	c.msgs <- oom
	c.msgs <- dieEvent("x", base+2, 137)
	c.msgs <- dieEvent("y", base+3, 3)
	c.msgs <- dieEvent("z", base+4, 137) // 137 without oom: inspected, and the fake says not found

	if e := nextExit(t, out); e.ContainerID != "x" || e.ExitCode != 137 || !e.OOMKilled || e.Container != "web" || e.Instance != "inst-x" {
		t.Errorf("oom exit = %+v", e)
	}
	if e := nextExit(t, out); e.ContainerID != "y" || e.ExitCode != 3 || e.OOMKilled || !e.At.Equal(time.Unix(0, base+3)) {
		t.Errorf("crash exit = %+v", e)
	}
	if e := nextExit(t, out); e.ContainerID != "z" || e.OOMKilled {
		t.Errorf("137 exit without oom = %+v", e)
	}
	if n := len(f.called("inspect z")); n != 1 {
		t.Errorf("a 137 exit with no oom event must be inspected once, got %d", n)
	}
}

func TestExitsReconnectsWithBackoffAndDropsReplays(t *testing.T) {
	f, conns := eventsFake()
	d, fc := newFakeDocker(t, f, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	out := d.Exits(ctx)
	base := time.Now().Add(time.Hour).UnixNano()

	c1 := nextConn(t, conns)
	c1.msgs <- dieEvent("a", base+10, 1)
	c1.msgs <- dieEvent("b", base+9, 2) // stamped before a, published after it: the engine does that
	for _, want := range []string{"a", "b"} {
		if e := nextExit(t, out); e.ContainerID != want {
			t.Fatalf("exit %s delivered, want %s (an event older than the newest is not a replay)", e.ContainerID, want)
		}
	}
	c1.errs <- io.EOF

	// 100 ms after a connection that delivered events.
	advanceWhenArmed(t, fc, 99*time.Millisecond)
	if fc.Timers() != 1 {
		t.Fatal("reconnected before the backoff passed")
	}
	fc.Advance(time.Millisecond)
	c2 := nextConn(t, conns)
	if want := formatSince(base + 10 - int64(replayWindow)); c2.opts.Since != want {
		t.Errorf("reconnect Since = %q, want replayWindow before the newest event, %q", c2.opts.Since, want)
	}
	c2.msgs <- dieEvent("b", base+9, 2)  // replays of what was delivered,
	c2.msgs <- dieEvent("a", base+10, 1) // in the engine's order
	c2.msgs <- dieEvent("c", base+10, 3) // same instant, different container: new
	c2.msgs <- dieEvent("d", base+8, 4)  // while disconnected, stamped before a: new
	c2.msgs <- dieEvent("e", base+11, 5)
	for _, want := range []string{"c", "d", "e"} {
		if e := nextExit(t, out); e.ContainerID != want {
			t.Errorf("exit %s delivered, want %s (replays must be dropped, nothing else)", e.ContainerID, want)
		}
	}
	c2.errs <- errors.New("connection reset")

	// c2 delivered events: the backoff restarts at 100 ms, then doubles
	// while connections keep failing without events.
	advanceWhenArmed(t, fc, 100*time.Millisecond)
	c3 := nextConn(t, conns)
	c3.errs <- errors.New("dial unix: connection refused")
	advanceWhenArmed(t, fc, 199*time.Millisecond)
	if fc.Timers() != 1 {
		t.Fatal("the backoff did not double")
	}
	fc.Advance(time.Millisecond)
	nextConn(t, conns)

	cancel()
	for range out { // must be closed once ctx ends
	}
}

// The memory of delivered events covers what a reconnect replays, and no
// more: it does not grow with the stream.
func TestExitsRemembersOnlyTheReplayWindow(t *testing.T) {
	start := time.Now().UnixNano()
	w := &exitWatcher{sinceNano: start, seen: map[eventKey]int64{}}
	for i := range 1000 {
		if !w.fresh(dieEvent(strconv.Itoa(i), start+int64(i)*int64(10*time.Millisecond), 0)) {
			t.Fatalf("event %d dropped", i)
		}
	}
	newest := start + 999*int64(10*time.Millisecond)
	if want := newest - int64(replayWindow); w.sinceNano != want {
		t.Errorf("sinceNano = %d, want %d", w.sinceNano, want)
	}
	// 2 s at 10 ms apart: 201 events from since to the newest, inclusive.
	if len(w.seen) != 201 {
		t.Errorf("%d events remembered, want the 201 within replayWindow", len(w.seen))
	}
	if w.fresh(dieEvent("799", start+799*int64(10*time.Millisecond), 0)) {
		t.Error("a replay at the window's edge was not dropped")
	}
	if !w.fresh(dieEvent("late", start+int64(time.Millisecond), 0)) {
		t.Error("a late event older than the window was dropped")
	}
}

func TestFormatSince(t *testing.T) {
	if got := formatSince(1_700_000_000_000_000_123); got != "1700000000.000000123" {
		t.Errorf("formatSince = %q", got)
	}
}
