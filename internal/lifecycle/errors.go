package lifecycle

import (
	"errors"
	"fmt"
)

// The router maps these errors to the contract's bodies (PROTOCOL §2) in one
// place; keep the Error() texts free of the "Failed to start container: "
// prefix, which the router adds.

// ErrExited is wrapped by errors that happen because a container exited.
var ErrExited = errors.New("container exited")

// ErrShuttingDown is returned by Acquire once the daemon is stopping.
var ErrShuttingDown = errors.New("lunorad is shutting down")

// UnknownContainerError: the name is not in the config.
type UnknownContainerError struct{ Name string }

func (e *UnknownContainerError) Error() string { return fmt.Sprintf("Unknown container %q", e.Name) }

// CapacityError: maxInstances running or starting instances already exist.
// Retryable: another instance may stop.
type CapacityError struct {
	Container string
	Max       int
}

func (e *CapacityError) Error() string {
	return "Maximum number of running container instances exceeded"
}

// StartError: a start failed. Retryable tells the router whether a retry of
// the same instance can help (a container that died while starting) or not
// (build error, missing secret, bad image, readiness deadline).
type StartError struct {
	Container string
	Instance  string
	Retryable bool
	Err       error
}

func (e *StartError) Error() string { return e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// BuildError: the image could not be built or found. Final until the
// Dockerfile, the context or the engine's images change.
type BuildError struct {
	Container string
	// Step is the Dockerfile step that failed ("Step 3/5 : RUN make"), when known.
	Step string
	// Registry is true for a registry image that is missing and could not be
	// pulled: nothing was being built, and the text must not say so.
	Registry bool
	Err      error
}

func (e *BuildError) Error() string {
	switch {
	case e.Registry:
		return fmt.Sprintf("container %q: %v", e.Container, e.Err)
	case e.Step != "":
		return fmt.Sprintf("building image for container %q failed at %s: %v", e.Container, e.Step, e.Err)
	default:
		return fmt.Sprintf("building image for container %q failed: %v", e.Container, e.Err)
	}
}
func (e *BuildError) Unwrap() error { return e.Err }

// NotReadyError: the readiness gate's deadline passed. Its text is
// Lunora's, exactly: container "<name>": readiness check "<path>" (port <p>)
// did not return <status> within <ms>ms. For a required port that never
// answered, Path is "" and the text names the port instead.
type NotReadyError struct {
	Container string
	Path      string
	Port      int
	Status    int
	TimeoutMs int64
	LastErr   error
}

func (e *NotReadyError) Error() string {
	if e.Path == "" {
		msg := fmt.Sprintf("container %q: port %d did not answer an HTTP request within %dms", e.Container, e.Port, e.TimeoutMs)
		if e.LastErr != nil {
			msg += fmt.Sprintf(" (last error: %v)", e.LastErr)
		}
		return msg
	}
	return fmt.Sprintf("container %q: readiness check %q (port %d) did not return %d within %dms",
		e.Container, e.Path, e.Port, e.Status, e.TimeoutMs)
}

// NoInstanceError: a start did not finish in time. Mapped to the 503
// "There is no Container instance available at this time." body.
type NoInstanceError struct{ Err error }

func (e *NoInstanceError) Error() string {
	if e.Err == nil {
		return "no container instance available"
	}
	return "no container instance available: " + e.Err.Error()
}
func (e *NoInstanceError) Unwrap() error { return e.Err }
