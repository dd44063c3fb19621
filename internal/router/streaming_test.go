package router

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// checkStreamingOnce checks that the lease was marked streaming exactly once
// and while still held.
func checkStreamingOnce(t *testing.T, l *fakeLease) {
	t.Helper()
	if n := l.streamings.Load(); n != 1 {
		t.Errorf("Streaming called %d times, want 1", n)
	}
	if l.streamingAfterRelease.Load() {
		t.Error("Streaming called after Release")
	}
}

func TestStreamingMarkedForAShortResponse(t *testing.T) {
	e := newEnv(t, okBackend)
	if r := e.get("/v1/containers/web/instances/a/fetch/"); r.err != nil || r.status != http.StatusOK || r.body != "ok" {
		t.Fatalf("got %d %q %v", r.status, r.body, r.err)
	}
	l := e.instances.lastLease()
	select {
	case <-l.released:
	case <-time.After(5 * time.Second):
		t.Fatal("lease not released")
	}
	checkStreamingOnce(t, l)
}

// A streamed body is marked as soon as its headers reach the client, while
// the container is still producing it.
func TestStreamingMarkedWhenStreamHeadersArrive(t *testing.T) {
	next := make(chan struct{})
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-next
		_, _ = io.WriteString(w, "data: late\n\n")
	}))
	res, err := e.client.Do(e.request(http.MethodGet, "/v1/containers/web/instances/a/fetch/sse", nil))
	if err != nil {
		close(next)
		t.Fatal(err)
	}
	defer res.Body.Close()
	l := e.instances.lastLease()
	if n := l.streamings.Load(); n != 1 {
		t.Errorf("Streaming called %d times once the headers arrived, want 1", n)
	}
	if n := l.releases.Load(); n != 0 {
		t.Errorf("lease released %d times while the stream is open", n)
	}
	close(next)
	if body, err := io.ReadAll(res.Body); err != nil || string(body) != "data: late\n\n" {
		t.Fatalf("body %q, %v", body, err)
	}
	select {
	case <-l.released:
	case <-time.After(5 * time.Second):
		t.Fatal("lease not released when the stream ended")
	}
	checkStreamingOnce(t, l)
}

// A WebSocket is marked at its 101, before any frame moves.
func TestStreamingMarkedOnWebSocketUpgrade(t *testing.T) {
	e := newEnv(t, echoBackend(t))
	c, res := dialWS(t, e, "a")
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", res.StatusCode)
	}
	l := e.instances.lastLease()
	if n := l.streamings.Load(); n != 1 {
		t.Errorf("Streaming called %d times after the upgrade, want 1", n)
	}
	if n := l.releases.Load(); n != 0 {
		t.Errorf("lease released %d times while the WebSocket is open", n)
	}
	c.Close()
	select {
	case <-l.released:
	case <-time.After(5 * time.Second):
		t.Fatal("lease not released when the WebSocket ended")
	}
	checkStreamingOnce(t, l)
}

// A pool 5xx turned into a retry was never answered to the client: that
// attempt's lease is not marked.
func TestStreamingNotMarkedForARetriedResponse(t *testing.T) {
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	r, _ := e.drive(e.request(http.MethodGet, "/v1/containers/big/pool/fetch/", nil))
	if r.err != nil || r.status != http.StatusServiceUnavailable {
		t.Fatalf("got %d %v", r.status, r.err)
	}
	leases := e.instances.allLeases()
	if len(leases) < 2 {
		t.Fatalf("%d attempts, want a retry", len(leases))
	}
	for i, l := range leases[:len(leases)-1] {
		if n := l.streamings.Load(); n != 0 {
			t.Errorf("retried attempt %d: Streaming called %d times", i, n)
		}
	}
	checkStreamingOnce(t, leases[len(leases)-1])
}
