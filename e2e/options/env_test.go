package options_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/daemon/daemontest"
)

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestEnvAndCloudflareVariables(t *testing.T) {
	h := daemontest.Start(t, imageDir, `
containers:
  envWeb:
    image: %[1]s
    defaultPort: 8080
    env:
      GREETING: "hello world = yes"
      EMPTY: ""
      MULTI: "line1\nline2"
      UNICODE: "héllo ✓"
  envOther:
    image: %[1]s
    defaultPort: 8080
`, daemontest.Options{})

	alice := containerEnv(t, h, "envWeb", "alice")
	for k, want := range map[string]string{
		"GREETING":              "hello world = yes",
		"EMPTY":                 "",
		"MULTI":                 "line1\nline2",
		"UNICODE":               "héllo ✓",
		"CLOUDFLARE_COUNTRY_A2": "XX",
		"CLOUDFLARE_LOCATION":   "loc01",
		"CLOUDFLARE_REGION":     "local",
	} {
		got, ok := alice[k]
		if !ok || got != want {
			t.Errorf("alice: %s = %q (set %v), want %q", k, got, ok, want)
		}
	}
	appID, doID := alice["CLOUDFLARE_APPLICATION_ID"], alice["CLOUDFLARE_DURABLE_OBJECT_ID"]
	if appID == "" {
		t.Error("alice: CLOUDFLARE_APPLICATION_ID is not set")
	}
	if !hex64.MatchString(doID) {
		t.Errorf("alice: CLOUDFLARE_DURABLE_OBJECT_ID = %q, want 64 lower-case hex characters", doID)
	}
	if want := config.DurableObjectID("envWeb", "alice"); doID != want {
		t.Errorf("alice: CLOUDFLARE_DURABLE_OBJECT_ID = %q, want the documented %q", doID, want)
	}

	bob := containerEnv(t, h, "envWeb", "bob")
	if bob["CLOUDFLARE_APPLICATION_ID"] != appID {
		t.Errorf("APPLICATION_ID differs between instances of one container: %q vs %q", appID, bob["CLOUDFLARE_APPLICATION_ID"])
	}
	if bob["CLOUDFLARE_DURABLE_OBJECT_ID"] == doID || !hex64.MatchString(bob["CLOUDFLARE_DURABLE_OBJECT_ID"]) {
		t.Errorf("bob's DURABLE_OBJECT_ID = %q (alice's %q): want another 64-hex id", bob["CLOUDFLARE_DURABLE_OBJECT_ID"], doID)
	}

	// A restart of the same id is a new container with the same identity.
	destroy(t, h, "envWeb", "alice")
	again := containerEnv(t, h, "envWeb", "alice")
	if again["HOSTNAME"] == alice["HOSTNAME"] {
		t.Fatalf("alice was not restarted: same HOSTNAME %q", again["HOSTNAME"])
	}
	if again["CLOUDFLARE_DURABLE_OBJECT_ID"] != doID || again["CLOUDFLARE_APPLICATION_ID"] != appID {
		t.Errorf("after a restart alice has DO id %q and app id %q, want %q and %q",
			again["CLOUDFLARE_DURABLE_OBJECT_ID"], again["CLOUDFLARE_APPLICATION_ID"], doID, appID)
	}

	// The same instance id under another container is another object and
	// another application.
	other := containerEnv(t, h, "envOther", "alice")
	if other["CLOUDFLARE_APPLICATION_ID"] == appID || other["CLOUDFLARE_APPLICATION_ID"] == "" {
		t.Errorf("envOther's APPLICATION_ID = %q, want one of its own (envWeb's is %q)", other["CLOUDFLARE_APPLICATION_ID"], appID)
	}
	if other["CLOUDFLARE_DURABLE_OBJECT_ID"] == doID {
		t.Error("envOther/alice has envWeb/alice's DURABLE_OBJECT_ID")
	}
	if _, leaked := other["GREETING"]; leaked {
		t.Error("envWeb's env reached envOther")
	}

	// Ids may hold any characters; the DO id is still 64 hex.
	odd := containerEnv(t, h, "envWeb", "ü/ x")
	if id := odd["CLOUDFLARE_DURABLE_OBJECT_ID"]; !hex64.MatchString(id) || id == doID || id != config.DurableObjectID("envWeb", "ü/ x") {
		t.Errorf("DO id of %q = %q", "ü/ x", id)
	}
}

func TestStartEnvVarsReplaceConfiguredEnv(t *testing.T) {
	h := daemontest.Start(t, imageDir, `
containers:
  envStart:
    image: %[1]s
    defaultPort: 8080
    env: {GREETING: configured}
    secrets: [TOKEN]
`, daemontest.Options{Env: map[string]string{"TOKEN": "token-from-env"}})

	resp, body := h.Do(t, http.MethodPost, "/v1/containers/envStart/instances/"+url.PathEscape("carol")+"/start?wait=healthy",
		strings.NewReader(`{"envVars": {"ONLY": "from-start"}}`), http.Header{"Content-Type": {"application/json"}})
	if resp.StatusCode/100 != 2 {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	env := containerEnv(t, h, "envStart", "carol")
	if env["ONLY"] != "from-start" {
		t.Errorf("ONLY = %q, want from-start", env["ONLY"])
	}
	for _, k := range []string{"GREETING", "TOKEN"} {
		if v, ok := env[k]; ok {
			t.Errorf("%s = %q: start's envVars must replace the configured env and secrets wholesale", k, v)
		}
	}
	if !hex64.MatchString(env["CLOUDFLARE_DURABLE_OBJECT_ID"]) || env["CLOUDFLARE_LOCATION"] != "loc01" {
		t.Errorf("CLOUDFLARE_* missing with envVars: %v", env)
	}

	// Without envVars the configured env and secrets apply.
	dave := containerEnv(t, h, "envStart", "dave")
	if dave["GREETING"] != "configured" || dave["TOKEN"] != "token-from-env" {
		t.Errorf("dave: GREETING %q, TOKEN %q", dave["GREETING"], dave["TOKEN"])
	}
}
