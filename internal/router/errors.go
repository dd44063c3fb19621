package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/lunora/lunorad/internal/lifecycle"
)

// This file is the one place where errors become the contract's responses:
// the data plane's plain-text bodies (PROTOCOL §2, whose texts client code
// matches) and the control plane's JSON error codes (PROTOCOL §3).

// The data-plane bodies of cloudflare-containers.md §2.3, exact.
const (
	bodyNoInstance = "There is no Container instance available at this time.\n" +
		"This is likely because you have reached your max concurrent instance count (set in wrangler config) or are you currently provisioning the Container.\n" +
		"If you are deploying your Container for the first time, check your dashboard to see provisioning status, this may take a few minutes."
	prefixStartFailed = "Failed to start container: "
	bodyDisconnected  = "Container suddenly disconnected, try again"
	prefixProxyError  = "Error proxying request to container: "
)

var (
	// errInstanceStopped is the cancel cause of requests whose instance's run
	// ended (Lease.Done) while they were in flight.
	errInstanceStopped = errors.New("the container stopped while the request was in flight")
	// errRouterClosed is the cancel cause of upgraded connections closed by
	// CloseWebSockets or Close.
	errRouterClosed = errors.New("lunorad is shutting down")
	// errRetryResponse is returned by ModifyResponse to turn a pool 5xx that
	// is not the last attempt into a retry.
	errRetryResponse = errors.New("container answered with a server error")
)

// failure is one classified data-plane error: the response it becomes and
// what the retry loop may do about it.
type failure struct {
	status int
	body   string
	// retryable marks provisioning failures, which get/any retry on the
	// same instance: capacity, a start that may succeed next time, a
	// connection refused or dropped before any response byte.
	retryable bool
	// final stops pool's retry too: no other instance can do better.
	final bool
	// clientGone: the client went away; nothing is written or retried.
	clientGone bool
	err        error
}

// acquireFailure classifies an error returned by Instances.Acquire.
func acquireFailure(ctx context.Context, err error) failure {
	if ctx.Err() != nil {
		return failure{clientGone: true, err: err}
	}
	var (
		unknown  *lifecycle.UnknownContainerError
		capacity *lifecycle.CapacityError
		start    *lifecycle.StartError
		build    *lifecycle.BuildError
		notReady *lifecycle.NotReadyError
		none     *lifecycle.NoInstanceError
	)
	switch {
	case errors.As(err, &unknown):
		return failure{status: http.StatusNotFound, body: unknown.Error(), final: true, err: err}
	case errors.Is(err, lifecycle.ErrShuttingDown):
		return failure{status: http.StatusServiceUnavailable, body: bodyNoInstance, final: true, err: err}
	case errors.As(err, &none):
		return failure{status: http.StatusServiceUnavailable, body: bodyNoInstance, err: err}
	case errors.As(err, &capacity):
		return failure{status: http.StatusInternalServerError, body: prefixStartFailed + capacity.Error(), retryable: true, err: err}
	case errors.As(err, &build):
		return failure{status: http.StatusInternalServerError, body: prefixStartFailed + build.Error(), err: err}
	case errors.As(err, &notReady):
		return failure{status: http.StatusInternalServerError, body: prefixStartFailed + notReady.Error(), err: err}
	case errors.As(err, &start):
		return failure{status: http.StatusInternalServerError, body: prefixStartFailed + start.Error(), retryable: start.Retryable, err: err}
	default:
		// An error lifecycle did not type (a missing secret reported as a
		// plain error, say) is a start that failed for a reason a retry of
		// the same instance cannot fix.
		return failure{status: http.StatusInternalServerError, body: prefixStartFailed + err.Error(), err: err}
	}
}

// shuttingDownFailure is what a data-plane request gets after Drain.
func shuttingDownFailure() failure {
	return failure{status: http.StatusServiceUnavailable, body: bodyNoInstance, final: true, err: lifecycle.ErrShuttingDown}
}

// portFailure: cf-container-target-port names a port the instance does not publish.
func portFailure(container string, port int) failure {
	err := fmt.Errorf("port %d is not published for container %q; declare it in defaultPort or requiredPorts (or EXPOSE it in the Dockerfile)", port, container)
	return failure{status: http.StatusInternalServerError, body: prefixProxyError + err.Error(), final: true, err: err}
}

// noPortFailure: no target port header and no defaultPort.
func noPortFailure(container string) failure {
	err := fmt.Errorf("no port configured for container %q; set defaultPort or send cf-container-target-port", container)
	return failure{status: http.StatusInternalServerError, body: prefixProxyError + err.Error(), final: true, err: err}
}

// proxyFailure classifies an error from one proxied attempt. clientCtx is the
// client's request context, attemptCtx the attempt's (cancelled with a cause
// when the instance stops).
func proxyFailure(clientCtx, attemptCtx context.Context, err error) failure {
	if clientCtx.Err() != nil {
		return failure{clientGone: true, err: err}
	}
	switch context.Cause(attemptCtx) {
	case errInstanceStopped:
		return failure{status: http.StatusInternalServerError, body: bodyDisconnected, retryable: true, err: err}
	case errRouterClosed:
		return shuttingDownFailure()
	}
	if isDialError(err) {
		// Nothing listens (yet, or any more): the container is starting,
		// restarting or gone. The request never left.
		return failure{status: http.StatusInternalServerError, body: prefixProxyError + err.Error(), retryable: true, err: err}
	}
	var dropped *droppedMidRequestError
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.EPIPE) || isServerClosedIdle(err) || errors.As(err, &dropped) {
		// The connection dropped after the request was sent and before any
		// response byte: the container died mid-request.
		return failure{status: http.StatusInternalServerError, body: bodyDisconnected, retryable: true, err: err}
	}
	return failure{status: http.StatusInternalServerError, body: prefixProxyError + err.Error(), err: err}
}

// writeFailure writes f as the contract's plain-text response.
func writeFailure(w http.ResponseWriter, f failure) {
	writeText(w, f.status, f.body)
}

// badRequest is a data-plane 400 with a plain-text body naming the problem.
func badRequest(format string, args ...any) failure {
	msg := fmt.Sprintf(format, args...)
	return failure{status: http.StatusBadRequest, body: msg, final: true, err: errors.New(msg)}
}

func writeText(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// Control-plane error codes (the "code" of {"error":{"code","message"}}).
const (
	codeNotFound     = "not_found"
	codeBadRequest   = "bad_request"
	codeCapacity     = "capacity"
	codeStartFailed  = "start_failed"
	codeUnavailable  = "unavailable"
	codeShuttingDown = "shutting_down"
	codeInternal     = "internal"
)

// apiError is a control-plane error response.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

func apiBadRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: codeBadRequest, message: fmt.Sprintf(format, args...)}
}

func apiNotFound(format string, args ...any) *apiError {
	return &apiError{status: http.StatusNotFound, code: codeNotFound, message: fmt.Sprintf(format, args...)}
}

// controlError maps an error from Control to its JSON error.
func controlError(err error) *apiError {
	var (
		api      *apiError
		unknown  *lifecycle.UnknownContainerError
		capacity *lifecycle.CapacityError
		start    *lifecycle.StartError
		build    *lifecycle.BuildError
		notReady *lifecycle.NotReadyError
		none     *lifecycle.NoInstanceError
	)
	switch {
	case errors.As(err, &api):
		return api
	case errors.As(err, &unknown):
		return &apiError{status: http.StatusNotFound, code: codeNotFound, message: unknown.Error()}
	case errors.Is(err, lifecycle.ErrShuttingDown):
		return &apiError{status: http.StatusServiceUnavailable, code: codeShuttingDown, message: err.Error()}
	case errors.As(err, &capacity):
		return &apiError{status: http.StatusConflict, code: codeCapacity, message: prefixStartFailed + capacity.Error()}
	case errors.As(err, &build):
		return &apiError{status: http.StatusInternalServerError, code: codeStartFailed, message: prefixStartFailed + build.Error()}
	case errors.As(err, &notReady):
		return &apiError{status: http.StatusInternalServerError, code: codeStartFailed, message: prefixStartFailed + notReady.Error()}
	case errors.As(err, &start):
		return &apiError{status: http.StatusInternalServerError, code: codeStartFailed, message: prefixStartFailed + start.Error()}
	case errors.As(err, &none):
		return &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable, message: none.Error()}
	default:
		return &apiError{status: http.StatusInternalServerError, code: codeInternal, message: err.Error()}
	}
}

// serverClosedIdleText is the text of net/http's unexported
// errServerClosedIdle, which the transport returns for an EOF before the
// first response byte instead of io.EOF. Docker's userland proxy accepts the
// connection and closes it that way when the container behind it has died.
const serverClosedIdleText = "http: server closed idle connection"

// isServerClosedIdle reports whether err is, or wraps, errServerClosedIdle;
// the text is the only handle net/http gives on it.
func isServerClosedIdle(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if err.Error() == serverClosedIdleText {
			return true
		}
	}
	return false
}

// droppedMidRequestError: the request was written on a kept-alive connection
// that dropped before any response byte, and net/http's replay of it on a
// new connection failed to dial. It deliberately does not unwrap to the dial
// error: the request did reach the container.
type droppedMidRequestError struct{ replay error }

func (e *droppedMidRequestError) Error() string {
	return "the connection dropped with the request sent; replaying it failed: " + e.replay.Error()
}

// isDialError reports whether err happened while connecting, before any
// byte of the request left.
func isDialError(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}
