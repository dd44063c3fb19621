package readiness

import (
	"fmt"

	"github.com/lunora/lunorad/internal/lifecycle"
)

// ExitedError reports a container that exited while the gate was waiting.
// It wraps lifecycle.ErrExited, so errors.Is(err, lifecycle.ErrExited) holds.
type ExitedError struct {
	Container string
	// ExitCode is the code ProbeTarget.ExitCode reported; -1 when unknown.
	ExitCode int
}

func (e *ExitedError) Error() string {
	if e.ExitCode < 0 {
		return fmt.Sprintf("container %q exited before it was ready", e.Container)
	}
	return fmt.Sprintf("container %q exited with code %d before it was ready", e.Container, e.ExitCode)
}

func (e *ExitedError) Unwrap() error { return lifecycle.ErrExited }
