package daemontest

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/events"
)

// EventLog follows a daemon's GET /v1/events (with the recent history
// replayed) and keeps every event it sees, for assertions on what happened.
type EventLog struct {
	// mu guards everything that follows.
	mu     sync.Mutex
	events []events.Event
	// changed is closed and replaced whenever an event arrives.
	changed chan struct{}
}

// FollowEvents subscribes to the daemon at base (http://host:port) before the
// caller acts, so nothing is missed; the stream ends at test cleanup.
func FollowEvents(t testing.TB, base string) *EventLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/events?replay=1", nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /v1/events: %v", err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		resp.Body.Close()
		t.Fatalf("GET /v1/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	l := &EventLog{changed: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var e events.Event
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				t.Errorf("event %q: %v", data, err)
				continue
			}
			l.mu.Lock()
			l.events = append(l.events, e)
			close(l.changed)
			l.changed = make(chan struct{})
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return l
}

// Matching returns the events, in order, for which match holds.
func (l *EventLog) Matching(match func(events.Event) bool) []events.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []events.Event
	for _, e := range l.events {
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}

// WaitFor returns the first event for which match holds, waiting up to timeout.
func (l *EventLog) WaitFor(t testing.TB, timeout time.Duration, what string, match func(events.Event) bool) events.Event {
	t.Helper()
	return l.WaitForCount(t, 1, timeout, what, match)[0]
}

// WaitForCount waits up to timeout until n events match, and returns them.
func (l *EventLog) WaitForCount(t testing.TB, n int, timeout time.Duration, what string, match func(events.Event) bool) []events.Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		changed := l.changed
		var got []events.Event
		for _, e := range l.events {
			if match(e) {
				got = append(got, e)
			}
		}
		l.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-changed:
		case <-deadline:
			l.mu.Lock()
			seen := append([]events.Event(nil), l.events...)
			l.mu.Unlock()
			t.Fatalf("timed out after %s waiting for %d event(s) %s; saw %+v", timeout, n, what, seen)
		}
	}
}

// Is matches one event type of one instance.
func Is(container, id, event string) func(events.Event) bool {
	return func(e events.Event) bool {
		return e.Container == container && e.Instance == id && e.Event == event
	}
}
