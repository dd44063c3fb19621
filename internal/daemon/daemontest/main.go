package daemontest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Main is a whole TestMain for an end-to-end package: it builds the
// testserver build context into *imageDir, runs the tests, and removes what
// it built (the context and any lunorad binary from Binary).
//
//	func TestMain(m *testing.M) { daemontest.Main(m, &imageDir) }
func Main(m *testing.M, imageDir *string) {
	dir, err := BuildTestserver()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*imageDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// Binary builds ./cmd/lunorad once per test binary and returns its path, so
// CLI tests run exactly what users run. Main removes it at the end.
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "lunorad-e2e-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "lunorad")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", binPath, "./cmd/lunorad")
		cmd.Dir = RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/lunorad: %v: %s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}
