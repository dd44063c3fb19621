package lifecycle

import (
	"fmt"
)

// RunExitedError is returned (possibly wrapped) by Runtime.Run when the
// container it started had already exited by the time its ports were read
// back: the app crashed on start (a bad flag, a port it cannot bind). It is
// an exit like any other, not an engine failure a retry might fix, so the
// instance becomes stopped_with_code and the crash counts towards the
// backoff; otherwise a container that dies at once would be recreated by
// every request, in a hot loop.
type RunExitedError struct {
	ContainerID string
	ExitCode    int
	OOMKilled   bool
}

func (e *RunExitedError) Error() string {
	return fmt.Sprintf("container %s exited (exit %d) before its ports could be read", shortID(e.ContainerID), e.ExitCode)
}

// Is makes errors.Is(err, ErrExited) hold, as for an exit during the gate.
func (e *RunExitedError) Is(target error) bool { return target == ErrExited }
