package router

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
)

// net/http reports an EOF before the first response byte as its unexported
// errServerClosedIdle when the close beats the request's registration on
// the connection, as it does behind Docker's userland proxy when the
// container has died. That is a container gone mid-request, like a reset:
// the contract's disconnect body, and retryable.
func TestServerClosedIdleIsADisconnect(t *testing.T) {
	// The sentinel is unexported; its text is all there is to match.
	closedIdle := errors.New("http: server closed idle connection")
	for _, err := range []error{closedIdle, fmt.Errorf("round trip: %w", closedIdle)} {
		f := proxyFailure(context.Background(), context.Background(), err)
		if f.status != http.StatusInternalServerError || f.body != bodyDisconnected || !f.retryable {
			t.Errorf("proxyFailure(%v) = %d %q retryable=%v, want 500 %q retryable", err, f.status, f.body, f.retryable, bodyDisconnected)
		}
	}
	if isServerClosedIdle(errors.New("http: server closed idle connection, sort of")) {
		t.Error("matched an error that merely starts with the text")
	}
}
