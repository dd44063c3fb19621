package routing_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
)

// A genuine app 5xx is the app's answer: get and any pass it straight
// through after one request, while pool retries it on fresh picks and
// returns the last outcome (lunora-container.md §3).
func TestAppServerErrors(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, webConfig, daemontest.Options{})
	onePool := http.Header{"Lunora-Pool-Size": {"1"}} // every pick is pool-0

	t.Run("get and any pass through unretried", func(t *testing.T) {
		getBefore, anyBefore := retries(t, h, "get"), retries(t, h, "any")
		for _, code := range []string{"500", "503"} {
			resp, body := h.Get(t, getPath("web", "s")+"/status/"+code)
			if resp.Status[:3] != code || body != "status "+code || resp.Header.Get("Lunora-Instance") != "s" {
				t.Errorf("get /status/%s: %s %q lunora-instance %q, want the app's own answer from s",
					code, resp.Status, body, resp.Header.Get("Lunora-Instance"))
			}
			if n := hits(t, h, "web", "s", "/status/"+code); n != 1 {
				t.Errorf("get /status/%s reached the app %d times, want 1", code, n)
			}
		}
		resp, body := h.Do(t, http.MethodGet, anyPath("web")+"/status/502", nil, onePool)
		if resp.StatusCode != http.StatusBadGateway || body != "status 502" || resp.Header.Get("Lunora-Instance") != "pool-0" {
			t.Errorf("any /status/502: %d %q lunora-instance %q", resp.StatusCode, body, resp.Header.Get("Lunora-Instance"))
		}
		if n := hits(t, h, "web", "pool-0", "/status/502"); n != 1 {
			t.Errorf("any /status/502 reached the app %d times, want 1", n)
		}
		if d := retries(t, h, "get") - getBefore; d != 0 {
			t.Errorf("get retried %d times on app 5xx, want 0", d)
		}
		if d := retries(t, h, "any") - anyBefore; d != 0 {
			t.Errorf("any retried %d times on app 5xx, want 0", d)
		}
	})

	t.Run("pool retries and returns the last outcome", func(t *testing.T) {
		before := retries(t, h, "pool")
		resp, body := h.Do(t, http.MethodGet, poolPath("web")+"/status/503", nil, onePool)
		if resp.StatusCode != http.StatusServiceUnavailable || body != "status 503" || resp.Header.Get("Lunora-Instance") != "pool-0" {
			t.Errorf("pool /status/503: %d %q lunora-instance %q, want the last attempt's own 503",
				resp.StatusCode, body, resp.Header.Get("Lunora-Instance"))
		}
		if n := hits(t, h, "web", "pool-0", "/status/503"); n != 3 {
			t.Errorf("pool /status/503 reached the app %d times, want 3 (the default attempts)", n)
		}
		if d := retries(t, h, "pool") - before; d != 2 {
			t.Errorf("pool made %d retries, want 2", d)
		}
		// A 4xx is an answer, not a failure: one request.
		resp, body = h.Do(t, http.MethodGet, poolPath("web")+"/status/429", nil, onePool)
		if resp.StatusCode != http.StatusTooManyRequests || body != "status 429" {
			t.Errorf("pool /status/429: %d %q", resp.StatusCode, body)
		}
		if n := hits(t, h, "web", "pool-0", "/status/429"); n != 1 {
			t.Errorf("pool /status/429 reached the app %d times, want 1", n)
		}
		// lunora-attempts: 1 sends once.
		hdr := http.Header{"Lunora-Pool-Size": {"1"}, "Lunora-Attempts": {"1"}}
		if resp, _ := h.Do(t, http.MethodGet, poolPath("web")+"/status/504", nil, hdr); resp.StatusCode != http.StatusGatewayTimeout {
			t.Errorf("pool /status/504 with one attempt: %d", resp.StatusCode)
		}
		if n := hits(t, h, "web", "pool-0", "/status/504"); n != 1 {
			t.Errorf("pool with lunora-attempts: 1 reached the app %d times, want 1", n)
		}
	})
}

// At maxInstances, a get for another id is refused with the capacity body
// after exactly lunora-attempts attempts, lunora-backoff-ms apart, and the
// running instance is untouched.
func TestCapacityIsRetriedThenReported(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, `
containers:
  cap:
    image: %[1]s
    defaultPort: 8080
    maxInstances: 1
`, daemontest.Options{})
	first, _ := echo(t, h, http.MethodGet, getPath("cap", "one")+"/", nil)

	before := retries(t, h, "get")
	start := time.Now()
	resp, body := h.Do(t, http.MethodGet, getPath("cap", "two")+"/", nil,
		http.Header{"Lunora-Attempts": {"2"}, "Lunora-Backoff-Ms": {"100"}})
	elapsed := time.Since(start)
	if resp.StatusCode != http.StatusInternalServerError || body != bodyCapacity || !isPlainText(resp) {
		t.Fatalf("get over capacity: %d %q, want 500 %q", resp.StatusCode, body, bodyCapacity)
	}
	if got := resp.Header.Get("Lunora-Instance"); got != "two" {
		t.Errorf("lunora-instance = %q, want two", got)
	}
	if d := retries(t, h, "get") - before; d != 1 {
		t.Errorf("%d retries, want 1 (lunora-attempts: 2)", d)
	}
	if elapsed < 100*time.Millisecond {
		t.Errorf("answered after %s, before the 100ms backoff between the two attempts", elapsed)
	}

	// One attempt: no retry at all.
	before = retries(t, h, "get")
	resp, body = h.Do(t, http.MethodGet, getPath("cap", "two")+"/", nil, http.Header{"Lunora-Attempts": {"1"}})
	if resp.StatusCode != http.StatusInternalServerError || body != bodyCapacity {
		t.Errorf("get over capacity, one attempt: %d %q", resp.StatusCode, body)
	}
	if d := retries(t, h, "get") - before; d != 0 {
		t.Errorf("%d retries with lunora-attempts: 1, want 0", d)
	}

	owned := daemontest.Owned(t, h.Config)
	if len(owned) != 1 || owned[0].Instance != "one" {
		t.Errorf("owned = %+v, want only instance one", owned)
	}
	if again, _ := echo(t, h, http.MethodGet, getPath("cap", "one")+"/", nil); again.Env["HOSTNAME"] != first.Env["HOSTNAME"] {
		t.Errorf("instance one moved from %s to %s", first.Env["HOSTNAME"], again.Env["HOSTNAME"])
	}
}

// any picks one pool-<n> per request and retries that same instance; pool
// picks again on every attempt. With maxInstances: 1 and pool-0 running,
// pool-1 can only answer with the capacity error, so the retry counter and
// the final instance show which instance each attempt went to.
func TestAnyPicksOncePoolPicksEveryAttempt(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, `
containers:
  solo:
    image: %[1]s
    defaultPort: 8080
    maxInstances: 1
`, daemontest.Options{})
	echo(t, h, http.MethodGet, getPath("solo", "pool-0")+"/", nil)
	hdr := http.Header{"Lunora-Pool-Size": {"2"}, "Lunora-Backoff-Ms": {"20"}}

	// any: pool-0 answers at once; pool-1 is retried as pool-1 until the
	// attempts run out. Never a retry that ends on pool-0.
	sawOK, sawCapacity := false, false
	for i := 0; i < 60 && !(sawOK && sawCapacity); i++ {
		before := retries(t, h, "any")
		resp, body := h.Do(t, http.MethodGet, anyPath("solo")+"/", nil, hdr)
		d := retries(t, h, "any") - before
		switch inst := resp.Header.Get("Lunora-Instance"); {
		case inst == "pool-0" && resp.StatusCode == http.StatusOK && d == 0:
			sawOK = true
		case inst == "pool-1" && resp.StatusCode == http.StatusInternalServerError && body == bodyCapacity && d == 2:
			sawCapacity = true
		default:
			t.Fatalf("any call %d: %d %q from %q after %d retries; want pool-0 at once or pool-1's capacity error after 2 retries",
				i, resp.StatusCode, body, inst, d)
		}
	}
	if !sawOK || !sawCapacity {
		t.Fatalf("60 any calls over pool-0/pool-1: saw pool-0 %v, pool-1 %v; the pick is not uniform", sawOK, sawCapacity)
	}

	// pool: a call whose first pick was pool-1 (so it was retried) can end
	// on pool-0, which any never does.
	repicked := false
	for i := 0; i < 60 && !repicked; i++ {
		before := retries(t, h, "pool")
		resp, body := h.Do(t, http.MethodGet, poolPath("solo")+"/", nil, hdr)
		d := retries(t, h, "pool") - before
		switch inst := resp.Header.Get("Lunora-Instance"); {
		case inst == "pool-0" && resp.StatusCode == http.StatusOK:
			repicked = d > 0
		case inst == "pool-1" && resp.StatusCode == http.StatusInternalServerError && body == bodyCapacity && d == 2:
			// Three picks of pool-1 in a row: the last outcome is returned.
		default:
			t.Fatalf("pool call %d: %d %q from %q after %d retries", i, resp.StatusCode, body, inst, d)
		}
	}
	if !repicked {
		t.Fatal("60 pool calls and none was retried onto pool-0: pool does not pick again per attempt")
	}
	if owned := daemontest.Owned(t, h.Config); len(owned) != 1 || owned[0].Instance != "pool-0" {
		t.Errorf("owned = %+v, want only pool-0", owned)
	}
}
