// Package leakcheck fails a test binary whose goroutines outlive its tests:
// packages whose goroutines must all end with their context or Close call
// Run from TestMain.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// grace is how long goroutines get to finish after the last test; net/http
// alone may sleep 500 ms (rstAvoidanceDelay) after closing a connection.
const grace = 5 * time.Second

// Run runs the tests and returns the exit code, 1 when they passed but
// more goroutines are left than there were before them (printing every
// goroutine's stack).
func Run(m *testing.M) int {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code != 0 {
		return code
	}
	deadline := time.Now().Add(grace)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // waiting for exits, not for behaviour
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		fmt.Fprintf(os.Stderr, "leaked goroutines: %d > %d\n%s\n", n, before, buf[:runtime.Stack(buf, true)])
		return 1
	}
	return 0
}
