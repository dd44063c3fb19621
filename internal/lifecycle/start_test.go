package lifecycle

import (
	"context"
	"errors"
	"maps"
	"regexp"
	"slices"
	"testing"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/events"
)

func TestRunSpecFromConfig(t *testing.T) {
	c := testContainer("transcoder")
	c.RequiredPorts = []int{9090, 8080}
	c.ReadyOn = []config.ReadyCheck{{Path: "/ready", Port: 8080, Status: 200}, {Path: "/live", Port: 7070, Status: 204}}
	c.Env = map[string]string{"LOG_LEVEL": "debug"}
	c.Secrets = []string{"API_KEY"}
	c.SecretsStore = map[string]string{"STRIPE_KEY": "STRIPE_SECRET"}
	c.Labels = map[string]string{"team": "media"}
	c.Entrypoint = []string{"/bin/app", "--serve"}
	c.InstanceType = config.InstanceType{Name: "standard-1", VCPU: 0.5, MemoryMiB: 4096}
	c.EnableInternet = false
	secrets := newFakeSecrets("API_KEY", "k1", "STRIPE_SECRET", "s1")
	h := newHarness(t, harnessOptions{secrets: secrets, tweak: func(o *Options) { o.LimitsEnabled = true }}, c)

	h.acquire("transcoder", "job/42 é").Release()
	spec := h.rt.lastSpec()
	if spec.Container != "transcoder" || spec.Instance != "job/42 é" || spec.Image != "lunora-transcoder:build" {
		t.Fatalf("spec identity = %+v", spec)
	}
	if !slices.Equal(spec.Ports, []int{7070, 8080, 9090}) {
		t.Fatalf("Ports = %v, want the union of defaultPort, requiredPorts and readyOn ports", spec.Ports)
	}
	if spec.NanoCPUs != 500_000_000 || spec.MemoryBytes != 4096<<20 {
		t.Fatalf("limits = %d CPU, %d bytes", spec.NanoCPUs, spec.MemoryBytes)
	}
	if spec.ConfigHash == "" || spec.ConfigHash != c.Hash() || spec.Generation != 1 {
		t.Fatalf("hash %q, generation %d", spec.ConfigHash, spec.Generation)
	}
	if !slices.Equal(spec.Entrypoint, c.Entrypoint) || spec.Labels["team"] != "media" || spec.EnableInternet {
		t.Fatalf("entrypoint/labels/internet = %v %v %v", spec.Entrypoint, spec.Labels, spec.EnableInternet)
	}
	want := map[string]string{
		"LOG_LEVEL": "debug", "API_KEY": "k1", "STRIPE_KEY": "s1",
		"CLOUDFLARE_COUNTRY_A2": "XX", "CLOUDFLARE_LOCATION": "loc01", "CLOUDFLARE_REGION": "local",
		"CLOUDFLARE_APPLICATION_ID":    spec.Env["CLOUDFLARE_APPLICATION_ID"],
		"CLOUDFLARE_DURABLE_OBJECT_ID": spec.Env["CLOUDFLARE_DURABLE_OBJECT_ID"],
	}
	if !maps.Equal(spec.Env, want) {
		t.Fatalf("Env = %v", spec.Env)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(spec.Env["CLOUDFLARE_DURABLE_OBJECT_ID"]) {
		t.Fatalf("DO id = %q", spec.Env["CLOUDFLARE_DURABLE_OBJECT_ID"])
	}
	if !regexp.MustCompile(`^local-[0-9a-f]{16}$`).MatchString(spec.Env["CLOUDFLARE_APPLICATION_ID"]) {
		t.Fatalf("app id = %q", spec.Env["CLOUDFLARE_APPLICATION_ID"])
	}
	// Stable per (container, id), different across ids.
	if config.DurableObjectID("transcoder", "job/42 é") != spec.Env["CLOUDFLARE_DURABLE_OBJECT_ID"] ||
		config.DurableObjectID("transcoder", "other") == spec.Env["CLOUDFLARE_DURABLE_OBJECT_ID"] {
		t.Fatal("DO id not stable per instance")
	}
}

func TestLimitsOffByDefault(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	h.acquire("web", "a").Release()
	if spec := h.rt.lastSpec(); spec.NanoCPUs != 0 || spec.MemoryBytes != 0 {
		t.Fatalf("limits passed without LimitsEnabled: %+v", spec)
	}
}

func TestStartEnvVarsReplaceEnvAndSecrets(t *testing.T) {
	c := testContainer("web")
	c.Env = map[string]string{"LOG_LEVEL": "debug"}
	c.Secrets = []string{"MISSING_SECRET"}
	c.SecretsStore = map[string]string{"STORE": "MISSING_BINDING"}
	c.Labels = map[string]string{"team": "media", "tier": "a"}
	h := newHarness(t, harnessOptions{}, c)
	off := false
	err := h.m.Start(context.Background(), "web", "a", StartOptions{
		EnvVars:        map[string]string{"ONLY": "this"},
		Entrypoint:     []string{"/bin/other"},
		EnableInternet: &off,
		Labels:         map[string]string{"tier": "b"},
		WaitHealthy:    true,
	})
	if err != nil {
		t.Fatalf("Start with envVars must not resolve secrets: %v", err)
	}
	spec := h.rt.lastSpec()
	if _, ok := spec.Env["LOG_LEVEL"]; ok || spec.Env["ONLY"] != "this" || spec.Env["CLOUDFLARE_REGION"] != "local" {
		t.Fatalf("Env = %v", spec.Env)
	}
	if h.secrets.count("MISSING_SECRET") != 0 || h.secrets.count("MISSING_BINDING") != 0 {
		t.Fatal("secrets looked up although envVars replaced them")
	}
	if !slices.Equal(spec.Entrypoint, []string{"/bin/other"}) || spec.EnableInternet ||
		spec.Labels["tier"] != "b" || spec.Labels["team"] != "media" {
		t.Fatalf("spec = %+v", spec)
	}
	info, _ := h.m.Instance("web", "a")
	if info.EnableInternet {
		t.Fatal("instance egress does not show enableInternet=false from Start")
	}
}

func TestMissingSecretMessage(t *testing.T) {
	c := testContainer("transcoder")
	c.Secrets = []string{"TRANSCODER_API_KEY"}
	h := newHarness(t, harnessOptions{}, c)
	_, err := h.m.Acquire(context.Background(), "transcoder", "a")
	want := "container \"transcoder\": declared secret \"TRANSCODER_API_KEY\" is not set on the Worker environment. " +
		"Add it to .dev.vars for local dev and run `wrangler secret put TRANSCODER_API_KEY` for production."
	var se *StartError
	if !errors.As(err, &se) || se.Retryable || err.Error() != want {
		t.Fatalf("err = %v (%T)\nwant final StartError %q", err, err, want)
	}
	if h.rt.runCount() != 0 || h.status("transcoder", "a") != StatusStopped {
		t.Fatal("a container was created without its secret")
	}
	if e := h.waitEvent("a", events.Error); e.Message != want || e.Level != events.LevelError {
		t.Fatalf("error event = %+v", e)
	}
}

func TestSecretsStoreMemoisedAndRetriedAfterFailure(t *testing.T) {
	c := testContainer("pay")
	c.SecretsStore = map[string]string{"STRIPE_KEY": "STRIPE_SECRET"}
	secrets := newFakeSecrets()
	h := newHarness(t, harnessOptions{secrets: secrets}, c)
	_, err := h.m.Acquire(context.Background(), "pay", "a")
	want := "container \"pay\": secretsStore env \"STRIPE_KEY\" points at binding \"STRIPE_SECRET\", which is not a Secrets Store binding on the Worker env. " +
		"Add a `secrets_store_secrets` entry binding \"STRIPE_SECRET\"."
	var se *StartError
	if !errors.As(err, &se) || se.Retryable || err.Error() != want {
		t.Fatalf("err = %v\nwant %q", err, want)
	}
	secrets.put("STRIPE_SECRET", "sk_test")
	h.acquire("pay", "a").Release() // the failure did not stick
	if got := h.rt.lastSpec().Env["STRIPE_KEY"]; got != "sk_test" {
		t.Fatalf("STRIPE_KEY = %q", got)
	}
	if err := h.m.Stop(context.Background(), "pay", "a", ""); err != nil {
		t.Fatal(err)
	}
	secrets.put("STRIPE_SECRET", "rotated")
	h.acquire("pay", "a").Release()
	if got := h.rt.lastSpec().Env["STRIPE_KEY"]; got != "sk_test" || secrets.count("STRIPE_SECRET") != 2 {
		t.Fatalf("STRIPE_KEY = %q after %d lookups; want the memoised value", got, secrets.count("STRIPE_SECRET"))
	}
}

func TestReadinessFailureIsFinal(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	notReady := &NotReadyError{Container: "web", Path: "/ready", Port: 8080, Status: 200, TimeoutMs: 30000}
	h.pr.set(func(context.Context, ProbeTarget) error { return notReady })
	_, err := h.m.Acquire(context.Background(), "web", "a")
	var se *StartError
	var nre *NotReadyError
	if !errors.As(err, &se) || se.Retryable || !errors.As(err, &nre) {
		t.Fatalf("err = %v, want a final StartError wrapping NotReadyError", err)
	}
	want := `container "web": readiness check "/ready" (port 8080) did not return 200 within 30000ms`
	if err.Error() != want {
		t.Fatalf("text = %q, want %q", err.Error(), want)
	}
	if h.status("web", "a") != StatusStopped || len(h.rt.removedIDs()) != 1 {
		t.Fatalf("status %q, removed %v", h.status("web", "a"), h.rt.removedIDs())
	}
	if e := h.waitEvent("a", events.Error); e.Message != want {
		t.Fatalf("error event = %q", e.Message)
	}
}

func TestBuildErrorIsFinal(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	buildErr := &BuildError{Container: "web", Step: "Step 3/5 : RUN make", Err: errors.New("exit code 2")}
	h.rt.set(func(f *fakeRuntime) { f.imageErr = buildErr })
	_, err := h.m.Acquire(context.Background(), "web", "a")
	var se *StartError
	var be *BuildError
	if !errors.As(err, &se) || se.Retryable || !errors.As(err, &be) || be != buildErr {
		t.Fatalf("err = %v, want a final StartError wrapping the BuildError", err)
	}
	if h.rt.runCount() != 0 {
		t.Fatal("Run called after a failed build")
	}
}

func TestEngineErrorsAreRetryable(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	h.rt.set(func(f *fakeRuntime) { f.imageErr = errors.New("daemon unreachable") })
	_, err := h.m.Acquire(context.Background(), "web", "a")
	var se *StartError
	if !errors.As(err, &se) || !se.Retryable {
		t.Fatalf("err = %v, want a retryable StartError", err)
	}
	h.rt.set(func(f *fakeRuntime) { f.imageErr = nil; f.runErr = errors.New("port allocation race") })
	if _, err := h.m.Acquire(context.Background(), "web", "a"); !errors.As(err, &se) || !se.Retryable {
		t.Fatalf("err = %v, want a retryable StartError", err)
	}
	h.rt.set(func(f *fakeRuntime) { f.runErr = nil })
	h.acquire("web", "a").Release()
}

func TestInstanceInfo(t *testing.T) {
	c := testContainer("web")
	c.AllowedHosts = []string{"api.github.com"}
	h := newHarness(t, harnessOptions{}, c)
	info, err := h.m.Instance("web", "fresh")
	if err != nil || info.State.Status != StatusStopped || info.ContainerID != "" || !info.EnableInternet ||
		!slices.Equal(info.AllowedHosts, []string{"api.github.com"}) || info.DeniedHosts == nil {
		t.Fatalf("info = %+v, %v", info, err)
	}
	l := h.acquire("web", "a")
	defer l.Release()
	info, _ = h.m.Instance("web", "a")
	if info.State.Status != StatusHealthy || info.ContainerID == "" || info.Image != "lunora-web:build" ||
		info.Generation != 1 || info.InFlight != 1 || !info.StartedAt.Equal(t0) || len(info.Ports) != 1 {
		t.Fatalf("info = %+v", info)
	}
	list, _ := h.m.Instances("web")
	if len(list) != 1 || list[0].Instance != "a" {
		t.Fatalf("Instances = %+v (a read must not create instances)", list)
	}
}

func TestEgressState(t *testing.T) {
	c := testContainer("web")
	c.DeniedHosts = []string{"*.evil.com"}
	h := newHarness(t, harnessOptions{}, c)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(h.m.AllowHost("web", "a", " API.Stripe.com. "))
	must(h.m.AllowHost("web", "a", "api.stripe.com"))
	must(h.m.DenyHost("web", "a", "bad.example"))
	must(h.m.RemoveDeniedHost("web", "a", "*.evil.com"))
	p, _ := h.m.Egress("web", "a")
	if !slices.Equal(p.AllowedHosts, []string{"api.stripe.com"}) || !slices.Equal(p.DeniedHosts, []string{"bad.example"}) || !p.EnableInternet {
		t.Fatalf("policy = %+v", p)
	}
	must(h.m.SetAllowedHosts("web", "a", []string{"a.com", "b.com", "a.com"}))
	must(h.m.RemoveAllowedHost("web", "a", "a.com"))
	p, _ = h.m.Egress("web", "a")
	if !slices.Equal(p.AllowedHosts, []string{"b.com"}) {
		t.Fatalf("allowed = %v", p.AllowedHosts)
	}
	if err := h.m.AllowHost("web", "a", "  "); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("empty host: %v", err)
	}
	// Another instance keeps the configured lists.
	if p, _ := h.m.Egress("web", "b"); !slices.Equal(p.DeniedHosts, []string{"*.evil.com"}) {
		t.Fatalf("instance b = %+v", p)
	}
}
