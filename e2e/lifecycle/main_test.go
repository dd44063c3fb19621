// Package lifecycle_test checks instance lifecycle end to end (issue 3,
// PROTOCOL §3 and §4) against the real Docker Engine: sleepAfter, hard
// timeouts, crashes, maxInstances, the control API in every state, and a
// restarted daemon re-adopting its containers. Durations are seconds, real
// ones; waits are generous (the machine is shared) while the behaviour is
// asserted exactly.
package lifecycle_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/daemon/daemontest"
	"github.com/lunora/lunorad/internal/events"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// imageDir is the testserver build context, made once for the package.
var imageDir string

func TestMain(m *testing.M) { daemontest.Main(m, &imageDir) }

// wait is the bound on anything that involves the engine (image builds,
// container starts and stops) on a loaded 2-core machine.
const wait = 60 * time.Second

// noRetry makes a data-plane call final at once (no provisioning retries).
var noRetry = http.Header{"Lunora-Attempts": {"1"}}

func instancePath(container, id string) string {
	return "/v1/containers/" + container + "/instances/" + id
}

// greet asks the instance for its hostname, which Docker sets to the
// container's short id: it tells which container answered.
func greet(t *testing.T, h *daemontest.Harness, container, id string) string {
	t.Helper()
	resp, body := h.Get(t, instancePath(container, id)+"/fetch/greet")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "hello from ") {
		t.Fatalf("greet %s/%s: %d %q", container, id, resp.StatusCode, body)
	}
	return strings.TrimPrefix(body, "hello from ")
}

// state is GET .../state, decoded strictly.
func state(t *testing.T, h *daemontest.Harness, container, id string) lifecycle.State {
	t.Helper()
	resp, body := h.Get(t, instancePath(container, id)+"/state")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("state %s/%s: %d %s", container, id, resp.StatusCode, body)
	}
	return decodeState(t, body)
}

func decodeState(t *testing.T, body string) lifecycle.State {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	var s lifecycle.State
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("state body %q: %v", body, err)
	}
	return s
}

// control POSTs a control-plane call and returns its status and body.
func control(t *testing.T, h *daemontest.Harness, container, id, verb, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	resp, out := h.Do(t, http.MethodPost, instancePath(container, id)+"/"+verb, r,
		http.Header{"Content-Type": {"application/json"}})
	return resp.StatusCode, out
}

// controlState is control for a call that must succeed; it returns the
// state the call answered with.
func controlState(t *testing.T, h *daemontest.Harness, container, id, verb, body string) lifecycle.State {
	t.Helper()
	code, out := control(t, h, container, id, verb, body)
	if code != http.StatusOK {
		t.Fatalf("POST %s/%s/%s %s: %d %s", container, id, verb, body, code, out)
	}
	return decodeState(t, out)
}

// ownedByInstance maps instance id to its container as the engine lists it.
func ownedByInstance(t *testing.T, cfg *config.Config) map[string]lifecycle.Running {
	t.Helper()
	out := map[string]lifecycle.Running{}
	for _, c := range daemontest.Owned(t, cfg) {
		if prev, dup := out[c.Instance]; dup {
			t.Fatalf("instance %q has two containers: %s and %s", c.Instance, prev.ID, c.ID)
		}
		out[c.Instance] = c
	}
	return out
}

func shortID(id string) string { return id[:min(12, len(id))] }

// is matches one event type of one instance, optionally after a time.
func is(container, id, event string) func(events.Event) bool {
	return func(e events.Event) bool {
		return e.Container == container && e.Instance == id && e.Event == event
	}
}

func isAfter(container, id, event string, after time.Time) func(events.Event) bool {
	return func(e events.Event) bool {
		return is(container, id, event)(e) && e.TS >= after.UnixMilli()
	}
}
