package lifecycle_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
	"github.com/lunora/lunorad/internal/lifecycle"
)

const capacityBody = "Failed to start container: Maximum number of running container instances exceeded"

// maxInstances caps running plus starting instances of one container; the
// request that would exceed it gets Cloudflare's 500 body, other containers
// are unaffected, and a freed slot can be used again.
func TestMaxInstances(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, `
containers:
  capped:
    image: %[1]s
    defaultPort: 8080
    maxInstances: 2
  free:
    image: %[1]s
    defaultPort: 8080
`, daemontest.Options{})
	cappedOwned := func() map[string]lifecycle.Running {
		out := map[string]lifecycle.Running{}
		for _, c := range daemontest.Owned(t, h.Config) {
			if c.Container == "capped" {
				out[c.Instance] = c
			}
		}
		return out
	}

	a, b := greet(t, h, "capped", "a"), greet(t, h, "capped", "b")
	for _, hdr := range []http.Header{noRetry, nil} { // once at once, once after the default retries
		resp, body := h.Do(t, http.MethodGet, instancePath("capped", "c")+"/fetch/greet", nil, hdr)
		if resp.StatusCode != http.StatusInternalServerError || body != capacityBody {
			t.Fatalf("third instance (headers %v): %d %q, want 500 %q", hdr, resp.StatusCode, body, capacityBody)
		}
	}
	if s := state(t, h, "capped", "c"); s.Status != lifecycle.StatusStopped {
		t.Errorf("refused instance's state = %+v, want stopped", s)
	}
	// The running ones are untouched, and another container is not limited.
	if greet(t, h, "capped", "a") != a || greet(t, h, "capped", "b") != b {
		t.Error("a refused start disturbed the running instances")
	}
	for i := range 3 {
		greet(t, h, "free", fmt.Sprint("f", i))
	}
	if owned := cappedOwned(); len(owned) != 2 {
		t.Fatalf("capped containers = %d (%+v), want 2", len(owned), owned)
	}

	// The control plane refuses the same start with its JSON error.
	code, body := control(t, h, "capped", "c", "start", "")
	var apiErr struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &apiErr); err != nil || code != http.StatusConflict ||
		apiErr.Error.Code != "capacity" || apiErr.Error.Message != capacityBody {
		t.Errorf("POST start over capacity: %d %s", code, body)
	}

	// A stopped instance frees its slot.
	controlState(t, h, "capped", "a", "stop", "")
	greet(t, h, "capped", "c")
	if owned := cappedOwned(); len(owned) != 2 || owned["a"].ID != "" || owned["c"].ID == "" {
		t.Errorf("after stopping a and starting c: %+v", owned)
	}

	// Concurrent first requests for six new ids, with both slots free: exactly
	// two start, four are refused, never a third container.
	controlState(t, h, "capped", "b", "destroy", "")
	controlState(t, h, "capped", "c", "destroy", "")
	const n = 6
	codes := make([]int, n)
	bodies := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, h.Base+instancePath("capped", fmt.Sprint("p", i))+"/fetch/greet", nil)
			req.Header.Set("Lunora-Attempts", "1")
			resp, err := (&http.Client{Timeout: wait}).Do(req)
			if err != nil {
				bodies[i] = err.Error()
				return
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			codes[i], bodies[i] = resp.StatusCode, string(raw)
		})
	}
	wg.Wait()
	served, refused := 0, 0
	for i := range n {
		switch {
		case codes[i] == http.StatusOK:
			served++
		case codes[i] == http.StatusInternalServerError && bodies[i] == capacityBody:
			refused++
		default:
			t.Errorf("concurrent request %d: %d %q", i, codes[i], bodies[i])
		}
	}
	if served != 2 || refused != n-2 {
		t.Errorf("%d concurrent new instances with maxInstances 2: %d served, %d refused", n, served, refused)
	}
	if owned := cappedOwned(); len(owned) != 2 {
		t.Errorf("capped containers after the burst = %d (%+v), want 2", len(owned), owned)
	}
}
