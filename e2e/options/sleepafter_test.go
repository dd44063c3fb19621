package options_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// TestSleepAfterZeroSleepsAsSoonAsIdle: "0s" is a valid sleepAfter in
// Lunora's grammar and means "sleep as soon as idle", not the 10m default.
func TestSleepAfterZeroSleepsAsSoonAsIdle(t *testing.T) {
	h := daemontest.Start(t, imageDir, `
containers:
  napper:
    image: %[1]s
    defaultPort: 8080
    sleepAfter: 0s
`, daemontest.Options{})

	// The cold start's own request is served: the instance does not fall
	// asleep between becoming ready and taking the request.
	resp, body := h.Get(t, fetchPath("napper", "a", "/sleep?ms=300"))
	if resp.StatusCode != http.StatusOK || body != "slept 300ms" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	daemontest.Eventually(t, 30*time.Second, "the idle instance to sleep", func() bool {
		resp, body := h.Get(t, "/v1/containers/napper/instances/a/state")
		var s lifecycle.State
		return resp.StatusCode == http.StatusOK && json.Unmarshal([]byte(body), &s) == nil && s.Status == lifecycle.StatusStopped
	})
	evs, raw := recentEvents(t, h)
	slept := false
	for _, e := range evs {
		slept = slept || (e.Container == "napper" && e.Event == "sleep")
	}
	if !slept {
		t.Errorf("no sleep event: %v", raw)
	}
}
