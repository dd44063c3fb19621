package options_test

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
	"github.com/lunora/lunorad/internal/events"
)

// Distinctive values, so that finding one anywhere is never a coincidence.
const (
	devVarsSecret = "devvars-S3CRET-7f3a91"
	envSecret     = "env-S3CRET-c04e22"
	storeSecret   = "store-S3CRET-5bd810"
	losingSecret  = "losing-S3CRET-99aa01" // shadowed by .dev.vars: never used
)

func TestSecretsReachTheContainerAndNothingElse(t *testing.T) {
	logger, logs := observedLogger(t)
	h := daemontest.Start(t, imageDir, `
containers:
  vault:
    image: %[1]s
    defaultPort: 8080
    env: {PLAIN: visible}
    secrets: [API_KEY, ONLY_IN_ENV]
    secretsStore: {STRIPE_KEY: STRIPE_SECRET}
  leaky:
    image: %[1]s
    defaultPort: 8080
    secrets: [MISSING_SECRET]
`, daemontest.Options{
		Files: map[string]string{".dev.vars": "# wrangler's format\nAPI_KEY=" + devVarsSecret + "\nSTRIPE_SECRET=\"" + storeSecret + "\"\n"},
		Env: map[string]string{
			"API_KEY":     losingSecret, // .dev.vars comes first
			"ONLY_IN_ENV": envSecret,
		},
		Logger: logger,
	})

	env := containerEnv(t, h, "vault", "a")
	for k, want := range map[string]string{
		"PLAIN":       "visible",
		"API_KEY":     devVarsSecret,
		"ONLY_IN_ENV": envSecret,
		"STRIPE_KEY":  storeSecret,
	} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
	if v, ok := env["STRIPE_SECRET"]; ok {
		t.Errorf("the Secrets Store binding name itself reached the container: STRIPE_SECRET=%q", v)
	}

	// A missing secret fails the start closed, with Lunora's message, at once.
	resp, body := h.Get(t, fetchPath("leaky", "a", "/env"))
	const wantMissing = "Failed to start container: container \"leaky\": declared secret \"MISSING_SECRET\" is not set on the Worker environment. " +
		"Add it to .dev.vars for local dev and run `wrangler secret put MISSING_SECRET` for production."
	if resp.StatusCode != http.StatusInternalServerError || body != wantMissing {
		t.Errorf("missing secret: %d %q\nwant 500 %q", resp.StatusCode, body, wantMissing)
	}
	if info, raw := instanceInfo(t, h, "leaky", "a"); info.ContainerID != "" || info.State.Status != "stopped" {
		t.Errorf("a start with a missing secret left something behind: %s", raw)
	}
	for _, c := range daemontest.Owned(t, h.Config) {
		if c.Container == "leaky" {
			t.Errorf("a container was created for leaky despite the missing secret: %+v", c)
		}
	}

	secrets := []string{devVarsSecret, envSecret, storeSecret, losingSecret}
	leaks := func(where, text string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("secret value %q appears in %s: %s", s, where, text)
			}
		}
	}

	// The control plane describes everything but secret values.
	for _, path := range []string{
		"/v1/containers", "/v1/containers/vault", "/v1/containers/vault/instances",
		"/v1/containers/vault/instances/a", "/v1/containers/vault/instances/a/state",
		"/metrics",
	} {
		resp, body := h.Get(t, path)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		leaks("GET "+path, body)
	}
	if _, body := h.Get(t, "/v1/containers/vault"); !strings.Contains(body, `"API_KEY"`) || !strings.Contains(body, `"STRIPE_KEY"`) {
		t.Errorf("GET /v1/containers/vault should name the secrets (not their values): %s", body)
	}

	// lunorad ps shows the instances, never a value.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ps, err := exec.CommandContext(ctx, daemontest.Binary(t), "ps", "--addr", strings.TrimPrefix(h.Base, "http://")).CombinedOutput()
	if err != nil {
		t.Fatalf("lunorad ps: %v: %s", err, ps)
	}
	if !strings.Contains(string(ps), "vault") || !strings.Contains(string(ps), "healthy") {
		t.Errorf("lunorad ps does not list vault/a as healthy:\n%s", ps)
	}
	leaks("lunorad ps", string(ps))

	// Stop vault so that its stop event and log lines exist too.
	if resp, body := h.Do(t, http.MethodPost, "/v1/containers/vault/instances/a/stop", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("stop: %d %s", resp.StatusCode, body)
	}
	evs, raw := recentEvents(t, h)
	seen := map[string]int{}
	for i, e := range evs {
		seen[e.Container+"/"+e.Event]++
		leaks("event", raw[i])
	}
	if n := seen["leaky/"+events.Error]; n != 1 {
		t.Errorf("leaky has %d error events, want 1: a missing secret is final, never retried", n)
	}
	for _, want := range []string{"vault/" + events.Start, "vault/" + events.Stop, "leaky/" + events.Error} {
		if seen[want] == 0 {
			t.Errorf("no %s event among %v", want, raw)
		}
	}

	// After shutdown the whole log, debug lines included, is final.
	h.Stop(t)
	lines := renderedLogs(t, logs)
	if len(lines) == 0 {
		t.Fatal("the observer saw no log lines: the check below would prove nothing")
	}
	for _, line := range lines {
		leaks("the daemon's log", line)
	}
}

// lockedEnv is a process environment a test can change while the daemon runs.
type lockedEnv struct {
	// mu guards vars.
	mu   sync.Mutex
	vars map[string]string
}

func (e *lockedEnv) set(k, v string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.vars[k] = v
}

func (e *lockedEnv) lookup(k string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.vars[k]
	return v, ok
}

func TestSecretsStoreIsMemoisedPerInstanceAndRetriedAfterFailure(t *testing.T) {
	env := &lockedEnv{vars: map[string]string{}}
	h := daemontest.Start(t, imageDir, `
containers:
  store:
    image: %[1]s
    defaultPort: 8080
    secretsStore: {DB_PASSWORD: DB_BINDING}
`, daemontest.Options{LookupEnv: env.lookup})

	resp, body := h.Get(t, fetchPath("store", "a", "/env"))
	const wantUnbound = "Failed to start container: container \"store\": secretsStore env \"DB_PASSWORD\" points at binding \"DB_BINDING\", " +
		"which is not a Secrets Store binding on the Worker env. Add a `secrets_store_secrets` entry binding \"DB_BINDING\"."
	if resp.StatusCode != http.StatusInternalServerError || body != wantUnbound {
		t.Fatalf("unbound Secrets Store binding: %d %q\nwant 500 %q", resp.StatusCode, body, wantUnbound)
	}

	// A failure is not memoised: once the binding exists the next start sees it.
	env.set("DB_BINDING", "first-value")
	if got := containerEnv(t, h, "store", "a")["DB_PASSWORD"]; got != "first-value" {
		t.Fatalf("after the binding was set: DB_PASSWORD = %q, want first-value", got)
	}

	// A success is memoised per instance, across restarts of its container
	// (as a Durable Object keeps its memo); another instance resolves afresh.
	env.set("DB_BINDING", "second-value")
	destroy(t, h, "store", "a")
	if got := containerEnv(t, h, "store", "a")["DB_PASSWORD"]; got != "first-value" {
		t.Errorf("instance a after a restart: DB_PASSWORD = %q, want the memoised first-value", got)
	}
	if got := containerEnv(t, h, "store", "b")["DB_PASSWORD"]; got != "second-value" {
		t.Errorf("instance b: DB_PASSWORD = %q, want second-value", got)
	}
}
