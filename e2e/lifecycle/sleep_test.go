package lifecycle_test

import (
	"bufio"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
	"github.com/lunora/lunorad/internal/lifecycle"
)

const sleepyConfig = `
containers:
  web:
    image: %[1]s
    defaultPort: 8080
    sleepAfter: 2s
`

// sleepAfter is sleepyConfig's.
const sleepAfter = 2 * time.Second

func TestIdleInstanceSleepsAndTheNextRequestGetsAFreshContainer(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, sleepyConfig, daemontest.Options{})
	evs := daemontest.FollowEvents(t, h.Base)

	lastSent := time.Now()
	first := greet(t, h, "web", "a")
	owned := ownedByInstance(t, h.Config)
	if len(owned) != 1 || shortID(owned["a"].ID) != first {
		t.Fatalf("after one request: owned %+v, greeted by %q", owned, first)
	}
	if s := state(t, h, "web", "a"); s.Status != lifecycle.StatusHealthy {
		t.Fatalf("state right after a request = %+v, want healthy", s)
	}

	sleep := evs.WaitFor(t, wait, "sleep of web/a", is("web", "a", "sleep"))
	if sleep.Level != "info" || sleep.Message != "idle for 2s" || sleep.Type != "container" || sleep.Source != "lunora" {
		t.Errorf("sleep event = %+v", sleep)
	}
	// Idle time starts when the last request ends, which is after it was sent.
	if earliest := lastSent.Add(sleepAfter).UnixMilli(); sleep.TS < earliest {
		t.Errorf("slept at %d, %dms before sleepAfter had passed since the last request", sleep.TS, earliest-sleep.TS)
	}
	daemontest.Eventually(t, wait, "the slept instance's container to be removed", func() bool {
		return len(daemontest.Owned(t, h.Config)) == 0
	})
	s := state(t, h, "web", "a")
	if s.Status != lifecycle.StatusStopped || s.ExitCode != nil {
		t.Errorf("state after sleep = %+v, want stopped without exit code", s)
	}
	if s.LastChange < sleep.TS {
		t.Errorf("lastChange %d predates the sleep event %d", s.LastChange, sleep.TS)
	}
	if stops := evs.Matching(is("web", "a", "stop")); len(stops) != 0 {
		t.Errorf("a sleep also emitted stop events: %+v", stops)
	}

	second := greet(t, h, "web", "a")
	if second == first {
		t.Fatalf("after sleeping, a was served by its old container %s", first)
	}
	owned = ownedByInstance(t, h.Config)
	if len(owned) != 1 || shortID(owned["a"].ID) != second {
		t.Errorf("after the wake-up request: owned %+v, greeted by %q", owned, second)
	}
	if n := len(evs.Matching(is("web", "a", "start"))); n != 2 {
		t.Errorf("start events for web/a = %d, want 2 (first start and wake-up)", n)
	}
}

// A WebSocket with frames moving and a streamed response each hold their
// instance awake well past sleepAfter; once they end, the instance sleeps.
func TestOpenStreamsKeepTheInstanceAwake(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, sleepyConfig, daemontest.Options{})
	evs := daemontest.FollowEvents(t, h.Base)
	const held = 3 * sleepAfter

	t.Run("websocket", func(t *testing.T) {
		url := strings.Replace(h.Base, "http://", "ws://", 1) + instancePath("web", "ws") + "/fetch/ws"
		conn, resp, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatalf("dial: %v (response %+v)", err, resp)
		}
		defer conn.Close()
		owner := ownedByInstance(t, h.Config)["ws"].ID
		var lastByte time.Time
		for deadline := time.Now().Add(held); time.Now().Before(deadline); {
			lastByte = time.Now()
			if err := conn.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
				t.Fatalf("write: %v", err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(wait))
			if _, got, err := conn.ReadMessage(); err != nil || string(got) != "ping" {
				t.Fatalf("echo = %q, %v (the instance went away while its WebSocket was busy)", got, err)
			}
			time.Sleep(400 * time.Millisecond)
		}
		assertAwake(t, h, evs, "ws", owner)
		lastByte = time.Now()
		_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		conn.Close()
		sleep := evs.WaitFor(t, wait, "sleep of web/ws once its WebSocket closed", is("web", "ws", "sleep"))
		if earliest := lastByte.Add(sleepAfter).UnixMilli(); sleep.TS < earliest {
			t.Errorf("slept at %d, %dms before sleepAfter had passed since the WebSocket's last frame", sleep.TS, earliest-sleep.TS)
		}
	})

	t.Run("sse", func(t *testing.T) {
		// 40 events 250ms apart: a 10s stream, five times sleepAfter.
		resp, err := http.Get(h.Base + instancePath("web", "sse") + "/fetch/sse?n=40&interval_ms=250")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("sse: %d", resp.StatusCode)
		}
		owner := ownedByInstance(t, h.Config)["sse"].ID
		sc := bufio.NewScanner(resp.Body)
		got := 0
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: event ") {
				got++
				if got == 32 { // 8s into the stream, four times sleepAfter
					assertAwake(t, h, evs, "sse", owner)
				}
			}
		}
		if err := sc.Err(); err != nil || got != 40 {
			t.Fatalf("stream ended after %d of 40 events: %v (the instance slept under an open stream?)", got, err)
		}
		evs.WaitFor(t, wait, "sleep of web/sse once its stream ended", is("web", "sse", "sleep"))
	})
}

// assertAwake checks that id is still served by owner, healthy, and never slept.
func assertAwake(t *testing.T, h *daemontest.Harness, evs *daemontest.EventLog, id, owner string) {
	t.Helper()
	if sleeps := evs.Matching(is("web", id, "sleep")); len(sleeps) != 0 {
		t.Fatalf("web/%s slept while busy: %+v", id, sleeps)
	}
	if s := state(t, h, "web", id); s.Status != lifecycle.StatusHealthy {
		t.Fatalf("state while busy = %+v, want healthy", s)
	}
	if now := ownedByInstance(t, h.Config)[id].ID; now != owner {
		t.Fatalf("container changed while busy: %s, then %s", shortID(owner), shortID(now))
	}
}

// renew-activity-timeout restarts the idle clock: renewed every second, an
// instance with sleepAfter 3s and no traffic stays up for 9s, then sleeps
// once the renewals stop.
func TestRenewActivityTimeoutPostponesSleep(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, `
containers:
  web:
    image: %[1]s
    defaultPort: 8080
    sleepAfter: 3s
`, daemontest.Options{})
	evs := daemontest.FollowEvents(t, h.Base)

	// Renewing an instance never started answers its state and starts nothing.
	if s := controlState(t, h, "web", "r", "renew-activity-timeout", ""); s.Status != lifecycle.StatusStopped {
		t.Fatalf("renew on a never-started instance = %+v, want stopped", s)
	}
	if owned := daemontest.Owned(t, h.Config); len(owned) != 0 {
		t.Fatalf("renew started a container: %+v", owned)
	}

	owner := greet(t, h, "web", "r")
	const renewedSleepAfter = 3 * time.Second
	for deadline := time.Now().Add(3 * renewedSleepAfter); time.Now().Before(deadline); {
		time.Sleep(time.Second)
		if s := controlState(t, h, "web", "r", "renew-activity-timeout", ""); s.Status != lifecycle.StatusHealthy {
			t.Fatalf("renew answered %+v, want healthy (slept despite renewals?)", s)
		}
	}
	if sleeps := evs.Matching(is("web", "r", "sleep")); len(sleeps) != 0 {
		t.Fatalf("slept although renewed every second: %+v", sleeps)
	}
	if now := servingContainer(t, h, "r"); now != owner {
		t.Fatalf("container changed under renewals: %s, then %s", owner, now)
	}
	lastRenew := time.Now()
	controlState(t, h, "web", "r", "renew-activity-timeout", "")
	sleep := evs.WaitFor(t, wait, "sleep of web/r after the renewals stopped", is("web", "r", "sleep"))
	if sleep.TS < lastRenew.Add(renewedSleepAfter).UnixMilli() {
		t.Errorf("slept at %d, before sleepAfter had passed since the last renewal (%d)", sleep.TS, lastRenew.UnixMilli())
	}
}

// servingContainer reads which container serves id from the engine, without
// a request that would itself count as activity.
func servingContainer(t *testing.T, h *daemontest.Harness, id string) string {
	t.Helper()
	return shortID(ownedByInstance(t, h.Config)[id].ID)
}

// Idleness counts bytes, not open connections (PROTOCOL §4): a WebSocket
// or a stream that moves nothing for sleepAfter lets its instance sleep,
// and the sleep ends it (a WebSocket gets a 1000 close, as on a stop).
func TestSilentStreamsLetTheInstanceSleep(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, sleepyConfig, daemontest.Options{})
	evs := daemontest.FollowEvents(t, h.Base)

	t.Run("websocket", func(t *testing.T) {
		url := strings.Replace(h.Base, "http://", "ws://", 1) + instancePath("web", "ws-silent") + "/fetch/ws"
		dialed := time.Now()
		conn, resp, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatalf("dial: %v (response %+v)", err, resp)
		}
		defer conn.Close()
		// No frame either way: the only thing the client does is wait.
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		_, _, err = conn.ReadMessage()
		closedAt := time.Now()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
			t.Fatalf("silent WebSocket read = %v, want a 1000 close once the instance sleeps", err)
		}
		sleep := evs.WaitFor(t, wait, "sleep of web/ws-silent", is("web", "ws-silent", "sleep"))
		if sleep.Message != "idle for 2s" {
			t.Errorf("sleep message = %q", sleep.Message)
		}
		// Its last activity is the 101, which came after the dial began.
		if earliest := dialed.Add(sleepAfter).UnixMilli(); sleep.TS < earliest {
			t.Errorf("slept at %d, %dms before sleepAfter could have passed since the upgrade", sleep.TS, earliest-sleep.TS)
		}
		if late := closedAt.UnixMilli() - sleep.TS; late > 5000 {
			t.Errorf("the client saw the close %dms after the sleep", late)
		}
		if stops := evs.Matching(is("web", "ws-silent", "stop")); len(stops) != 0 {
			t.Errorf("the sleep also emitted stop events: %+v", stops)
		}
	})

	t.Run("sse", func(t *testing.T) {
		// One event, then 30s of silence: far more than sleepAfter.
		began := time.Now()
		resp, err := http.Get(h.Base + instancePath("web", "sse-silent") + "/fetch/sse?n=2&interval_ms=30000")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("sse: %d", resp.StatusCode)
		}
		sc := bufio.NewScanner(resp.Body)
		got := 0
		for sc.Scan() { // ends when the sleep cuts the stream
			if strings.HasPrefix(sc.Text(), "data: event ") {
				got++
			}
		}
		endedAt := time.Now()
		if got != 1 {
			t.Fatalf("got %d events, want the first one only (the stream must end with the sleep)", got)
		}
		if endedAt.Sub(began) >= 30*time.Second {
			t.Fatalf("the silent stream ran its full 30s: the instance did not sleep under it")
		}
		sleep := evs.WaitFor(t, wait, "sleep of web/sse-silent", is("web", "sse-silent", "sleep"))
		if earliest := began.Add(sleepAfter).UnixMilli(); sleep.TS < earliest {
			t.Errorf("slept at %d, %dms before sleepAfter could have passed since the stream began", sleep.TS, earliest-sleep.TS)
		}
		if late := endedAt.UnixMilli() - sleep.TS; late > 5000 {
			t.Errorf("the stream ended %dms after the sleep", late)
		}
	})
}
