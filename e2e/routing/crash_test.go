package routing_test

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
	"github.com/lunora/lunorad/internal/events"
)

// A container that dies under a request it did not cause (here: destroyed
// while a slow request is in flight) is a provisioning failure, a
// connection dropped before any response byte: get retries the same
// instance, which starts afresh, and the client gets the new container's
// answer instead of an error.
func TestContainerDyingMidRequestIsRetriedOnAFreshStart(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, webConfig, daemontest.Options{})
	old, _ := echo(t, h, http.MethodGet, getPath("web", "d")+"/", nil)
	before := retries(t, h, "get")

	type result struct {
		status int
		body   string
		inst   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(h.Base + getPath("web", "d") + "/sleep?ms=3000")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, err = bufio.NewReader(resp.Body).WriteTo(&b)
		done <- result{status: resp.StatusCode, body: b.String(), inst: resp.Header.Get("Lunora-Instance"), err: err}
	}()
	daemontest.Eventually(t, wait, "the slow request to reach the app", func() bool {
		return hits(t, h, "web", "d", "/sleep") == 1
	})
	if resp, body := h.Do(t, http.MethodPost, "/v1/containers/web/instances/d/destroy", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("destroy: %d %s", resp.StatusCode, body)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(wait):
		t.Fatal("the request whose container was destroyed never finished")
	}
	if r.err != nil || r.status != http.StatusOK || r.body != "slept 3000ms" || r.inst != "d" {
		t.Fatalf("request whose container was destroyed: %d %q from %q (%v), want the fresh container's 200", r.status, r.body, r.inst, r.err)
	}
	if d := retries(t, h, "get") - before; d != 1 {
		t.Errorf("%d retries, want 1", d)
	}
	fresh, _ := echo(t, h, http.MethodGet, getPath("web", "d")+"/", nil)
	if fresh.Env["HOSTNAME"] == old.Env["HOSTNAME"] {
		t.Errorf("instance d is still served by the destroyed container %s", old.Env["HOSTNAME"])
	}
	if n := hits(t, h, "web", "d", "/sleep"); n != 1 {
		t.Errorf("the fresh container saw /sleep %d times, want 1 (the replay)", n)
	}
}

// A request that itself kills its container looks, to lunorad, exactly like
// a container dying under it: the connection drops before any response
// byte. PROTOCOL §2 makes that a provisioning failure, so get replays it on
// the same instance once the instance has restarted, and the replay kills
// the fresh container too; the client then gets the last outcome, 500
// "Container suddenly disconnected, try again". The damage is bounded by
// the attempts and by the crash backoff (a start after a quick crash waits
// 1s, then 2s, ...). This is the contract's behaviour, and sensible for the
// transient failures it targets; a client that sends requests which must
// not be replayed sets lunora-attempts: 1 (see e2e/lifecycle's crash test).
//
// The backoff here (3s) outlasts the exit's detection and the 1s crash
// backoff by seconds, so the second attempt deterministically meets a
// restarted instance.
func TestRequestThatCrashesItsContainerIsReplayedOnce(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, webConfig, daemontest.Options{})
	evs := daemontest.FollowEvents(t, h.Base)
	first, _ := echo(t, h, http.MethodGet, getPath("web", "c")+"/", nil)
	before := retries(t, h, "get")

	resp, body := h.Do(t, http.MethodGet, getPath("web", "c")+"/crash?code=3", nil,
		http.Header{"Lunora-Attempts": {"2"}, "Lunora-Backoff-Ms": {"3000"}})
	if resp.StatusCode != http.StatusInternalServerError || body != bodyDisconnected || !isPlainText(resp) {
		t.Fatalf("request that crashes its container: %d %q, want 500 %q", resp.StatusCode, body, bodyDisconnected)
	}
	if got := resp.Header.Get("Lunora-Instance"); got != "c" {
		t.Errorf("lunora-instance = %q, want c", got)
	}
	if d := retries(t, h, "get") - before; d != 1 {
		t.Errorf("%d retries, want 1", d)
	}
	crashed := func(e events.Event) bool {
		return e.Instance == "c" && e.Event == "stop" && e.Message == "container exited (exit 3)"
	}
	evs.WaitForCount(t, 2, wait, "two crashes of c (the request and its replay)", crashed)
	if starts := len(evs.Matching(func(e events.Event) bool { return e.Instance == "c" && e.Event == "start" })); starts != 2 {
		t.Errorf("c started %d times, want 2 (the warm-up and the restart for the replay)", starts)
	}

	// The instance is not wedged: once the crash backoff has passed, the
	// next request gets a third container.
	var third echoed
	daemontest.Eventually(t, wait, "c to serve again after its crash backoff", func() bool {
		resp, body := h.Do(t, http.MethodGet, getPath("web", "c")+"/", nil, http.Header{"Lunora-Attempts": {"1"}})
		if resp.StatusCode != http.StatusOK {
			if !strings.HasPrefix(body, prefixStart) || !strings.Contains(body, "next start allowed in") {
				t.Fatalf("request during the crash backoff: %d %q", resp.StatusCode, body)
			}
			return false
		}
		third = decodeEcho(t, body)
		return true
	})
	if third.Env["HOSTNAME"] == first.Env["HOSTNAME"] {
		t.Errorf("c still served by the crashed container %s", first.Env["HOSTNAME"])
	}
	if n := len(evs.Matching(crashed)); n != 2 {
		t.Errorf("%d crashes of c, want 2", n)
	}
}
