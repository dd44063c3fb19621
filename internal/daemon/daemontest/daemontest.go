// Package daemontest starts real lunorad daemons for end-to-end tests: it
// builds the FROM-scratch testserver image context once, writes a test
// config, runs daemon.Run on a loopback port and stops it at cleanup. Like
// net/http/httptest, it exists only for tests.
package daemontest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/daemon"
	"github.com/lunora/lunorad/internal/lifecycle"
	"github.com/lunora/lunorad/internal/supervisor"
)

// RepoRoot is the repository's top folder.
func RepoRoot() string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "..", "..")
}

// BuildTestserver compiles testdata/testserver statically into a new temp
// folder with its Dockerfile and .dockerignore, ready as a build context.
// Every test binary builds its own copy so parallel packages never write the
// same file. Call it from TestMain; remove the folder when done.
func BuildTestserver() (dir string, err error) {
	dir, err = os.MkdirTemp("", "lunorad-testserver-")
	if err != nil {
		return "", err
	}
	src := filepath.Join(RepoRoot(), "testdata", "testserver")
	cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "testserver"), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build testserver: %v: %s", err, out)
	}
	for _, name := range []string{"Dockerfile", ".dockerignore"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			os.RemoveAll(dir)
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

// RequireDocker skips outside CI when no engine answers, and fails in CI:
// there a missing Docker is a broken machine, never a reason to pass.
func RequireDocker(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := supervisor.New(ctx, supervisor.Options{ConfigID: "probe"})
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Docker Engine required in CI: %v", err)
		}
		t.Skipf("no Docker Engine: %v", err)
	}
	_ = d.Close()
}

// Options tune a test daemon; zero values get test-friendly defaults.
type Options struct {
	StopGrace       time.Duration // default 2s
	ReadyTimeout    time.Duration // default 30s
	ShutdownTimeout time.Duration // default 5s
	Limits          bool          // apply instanceType limits (off by default)
	DirectDial      bool          // proxy on lunorad's own network (daemon.Options.DirectDial)
	// Files are written beside the config (e.g. ".dev.vars").
	Files map[string]string
	// Env is consulted for secrets after .dev.vars (instead of the process environment).
	Env map[string]string
	// LookupEnv, when set, replaces Env: a test can change what it answers
	// while the daemon runs (it must be safe for concurrent use).
	LookupEnv func(name string) (string, bool)
	// Logger, when set, receives the daemon's log instead of the test log
	// (e.g. a zaptest logger teed with an observer, to assert on entries).
	Logger *zap.Logger
}

// Harness is one daemon serving a test config on a loopback port.
type Harness struct {
	Base   string // http://127.0.0.1:NNNNN
	Config *config.Config
	cancel context.CancelFunc
	done   chan error
}

// Start writes yaml to a fresh folder, runs a daemon on it and stops it at
// cleanup (asserting a clean shutdown). Every "%[1]s" in yaml stands for
// imageDir. Each call gets its own config path, hence its own config id and
// ownership labels, so tests never see each other's containers.
func Start(t *testing.T, imageDir, yaml string, opts Options) *Harness {
	t.Helper()
	RequireDocker(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "lunorad.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(yaml, "%[1]s", imageDir)), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, content := range opts.Files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	lookup := func(k string) (string, bool) { v, ok := opts.Env[k]; return v, ok }
	if opts.LookupEnv != nil {
		lookup = opts.LookupEnv
	}
	cfg, _, err := config.Load(path, config.LoadOptions{LookupEnv: lookup})
	if err != nil {
		t.Fatalf("test config: %v", err)
	}
	devVars, err := config.LoadDevVars(dir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if opts.StopGrace == 0 {
		opts.StopGrace = 2 * time.Second
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 5 * time.Second
	}
	logger := opts.Logger
	if logger == nil {
		logger = zaptest.NewLogger(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Harness{Base: "http://" + ln.Addr().String(), Config: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() {
		h.done <- daemon.Run(ctx, daemon.Options{
			Config: cfg, Logger: logger, Listener: ln,
			Secrets:   config.NewSecretSourceFrom(devVars, lookup),
			StopGrace: opts.StopGrace, ReadyTimeout: opts.ReadyTimeout,
			ShutdownTimeout: opts.ShutdownTimeout, NoLimits: !opts.Limits, DirectDial: opts.DirectDial,
		})
	}()
	t.Cleanup(func() {
		if h.cancel != nil {
			h.Stop(t)
		}
		RemoveImages(t, cfg.ID())
	})
	return h
}

// RemoveImages removes the images daemons of config id built, so tests leave
// the engine as they found it.
func RemoveImages(t testing.TB, configID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := supervisor.New(ctx, supervisor.Options{ConfigID: configID})
	if err != nil {
		t.Errorf("removing test images: %v", err)
		return
	}
	defer d.Close()
	if _, err := d.RemoveImages(ctx); err != nil {
		t.Errorf("removing test images: %v", err)
	}
}

// Stop shuts the daemon down and fails the test unless Run returns nil.
func (h *Harness) Stop(t testing.TB) {
	t.Helper()
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("daemon.Run returned %v, want nil after a clean shutdown", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("daemon did not stop within 90s")
	}
}

// Get is Do with GET and no body.
func (h *Harness) Get(t testing.TB, path string) (*http.Response, string) {
	t.Helper()
	return h.Do(t, http.MethodGet, path, nil, nil)
}

// Do sends one request to the daemon and returns the response with its body read.
func (h *Harness) Do(t testing.TB, method, path string, body io.Reader, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, h.Base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	client := &http.Client{Timeout: 90 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, string(b)
}

// Owned lists the containers the daemon on cfg owns right now, as the engine sees them.
func Owned(t testing.TB, cfg *config.Config) []lifecycle.Running {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := supervisor.New(ctx, supervisor.Options{ConfigID: cfg.ID()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	list, err := d.ListOwned(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// Eventually polls cond every 50ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
