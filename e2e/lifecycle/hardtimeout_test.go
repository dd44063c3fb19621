package lifecycle_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
	"github.com/lunora/lunorad/internal/events"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// hardTimeout stops a run 3s after it started however busy it is, with the
// event stop "hard timeout reached"; each run gets its own 3s, and a timer of
// an earlier run never stops a later one.
func TestHardTimeoutStopsABusyInstance(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, `
containers:
  web:
    image: %[1]s
    defaultPort: 8080
    hardTimeout: 3s
`, daemontest.Options{})
	evs := daemontest.FollowEvents(t, h.Base)
	const hardTimeout = 3 * time.Second
	path := instancePath("web", "h")

	// Continuous activity: a long stream, plus renew-activity-timeout every
	// 100ms (which, unlike a request, cannot start the instance again).
	started := time.Now()
	resp, err := http.Get(h.Base + path + "/fetch/sse?n=200&interval_ms=100")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sse: %d", resp.StatusCode)
	}
	first := shortID(ownedByInstance(t, h.Config)["h"].ID)
	streamed := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		n := 0
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: event ") {
				n++
			}
		}
		streamed <- n
	}()
	pollCtx, stopPolling := context.WithCancel(context.Background())
	var polling sync.WaitGroup
	defer polling.Wait()
	defer stopPolling()
	polling.Go(func() {
		client := &http.Client{Timeout: wait}
		for {
			select {
			case <-pollCtx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			req, _ := http.NewRequestWithContext(pollCtx, http.MethodPost, h.Base+path+"/renew-activity-timeout", nil)
			if r, err := client.Do(req); err == nil {
				r.Body.Close()
			}
		}
	})

	stop := evs.WaitFor(t, wait, "hard timeout of web/h", is("web", "h", "stop"))
	if stop.Message != "hard timeout reached" || stop.Level != "info" {
		t.Errorf("stop event = %+v, want info %q", stop, "hard timeout reached")
	}
	if earliest := started.Add(hardTimeout).UnixMilli(); stop.TS < earliest {
		t.Errorf("hard timeout fired at %d, %dms before 3s had passed since the start", stop.TS, earliest-stop.TS)
	}
	if sleeps := evs.Matching(is("web", "h", "sleep")); len(sleeps) != 0 {
		t.Errorf("a busy instance reported sleep: %+v", sleeps)
	}
	select {
	case n := <-streamed:
		if n >= 200 {
			t.Errorf("the stream delivered all %d events: the hard timeout did not cut it", n)
		}
	case <-time.After(wait):
		t.Fatal("the open stream outlived its instance's hard timeout")
	}
	stopPolling()
	polling.Wait()

	daemontest.Eventually(t, wait, "the timed-out container to be removed", func() bool {
		return len(daemontest.Owned(t, h.Config)) == 0
	})
	if s := state(t, h, "web", "h"); s.Status != lifecycle.StatusStopped || s.ExitCode != nil {
		t.Errorf("state after the hard timeout = %+v, want stopped", s)
	}

	// The next run gets a fresh container and its own 3s. Stopped by hand
	// after 0.5s, its timer must die with it: the run started next must
	// outlive the moment that timer would have fired.
	if second := greet(t, h, "web", "h"); second == first {
		t.Fatalf("after the hard timeout, h was served by its old container %s", first)
	}
	time.Sleep(500 * time.Millisecond)
	controlState(t, h, "web", "h", "stop", "")
	thirdStarted := time.Now()
	greet(t, h, "web", "h")
	isHardTimeout := func(e events.Event) bool { return e.Message == "hard timeout reached" }
	last := evs.WaitFor(t, wait, "hard timeout of the third run", func(e events.Event) bool {
		return is("web", "h", "stop")(e) && isHardTimeout(e) && e.TS >= thirdStarted.UnixMilli()
	})
	if earliest := thirdStarted.Add(hardTimeout).UnixMilli(); last.TS < earliest {
		t.Errorf("third run stopped at %d, %dms before its own 3s: an earlier run's timer fired", last.TS, earliest-last.TS)
	}
	if n := len(evs.Matching(func(e events.Event) bool { return is("web", "h", "stop")(e) && isHardTimeout(e) })); n != 2 {
		t.Errorf("hard-timeout stop events = %d, want 2 (first and third run; the second was stopped by hand)", n)
	}
}
