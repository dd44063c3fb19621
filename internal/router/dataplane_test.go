package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/lifecycle"
)

// recorded is what a backend saw of one request.
type recorded struct {
	method, host, uri string
	header            http.Header
	body              string
	trailer           http.Header
}

// recorder is a backend that records requests and answers with respond.
type recorder struct {
	respond func(n int, w http.ResponseWriter, r *http.Request)

	// mu guards everything that follows.
	mu   sync.Mutex
	seen []recorded
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.seen = append(rec.seen, recorded{method: r.Method, host: r.Host, uri: r.RequestURI,
		header: r.Header.Clone(), body: string(b), trailer: r.Trailer.Clone()})
	n := len(rec.seen)
	rec.mu.Unlock()
	if rec.respond != nil {
		rec.respond(n, w, r)
		return
	}
	_, _ = io.WriteString(w, "ok")
}

func (rec *recorder) requests() []recorded {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.seen)
}

// hangUp is a backend answer that drops the connection after reading the
// request: the container died before responding.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

func TestIDDecodingEndToEnd(t *testing.T) {
	rec := &recorder{}
	e := newEnv(t, rec)
	tests := []struct {
		name       string
		rawID      string
		wantStatus int
		wantID     string
		wantHeader string
		wantBody   string
	}{
		{"encoded slash", "a%2Fb", 200, "a/b", "a%2Fb", ""},
		{"spaces", "hello%20world", 200, "hello world", "hello%20world", ""},
		{"unicode", "%C3%A9t%C3%A9", 200, "été", "%C3%A9t%C3%A9", ""},
		{"needless escape is canonicalised", "%61bc", 200, "abc", "abc", ""},
		{"256 bytes", strings.Repeat("x", 256), 200, strings.Repeat("x", 256), strings.Repeat("x", 256), ""},
		{"257 bytes", strings.Repeat("x", 257), 400, "", "", "257 bytes once decoded; the limit is 256"},
		{"control character", "a%01b", 400, "", "", "control character U+0001"},
		{"DEL", "a%7Fb", 400, "", "", "control character U+007F"},
		{"empty", "", 400, "", "", "the id is empty"},
		{"invalid UTF-8", "%C3", 400, "", "", "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.instances.acquired())
			r := e.get("/v1/containers/web/instances/" + tt.rawID + "/fetch/p")
			if r.err != nil || r.status != tt.wantStatus {
				t.Fatalf("status = %d (%v), want %d; body %q", r.status, r.err, tt.wantStatus, r.body)
			}
			ids := e.instances.acquired()[before:]
			if tt.wantStatus != 200 {
				if len(ids) != 0 {
					t.Errorf("acquired %q for a bad id", ids)
				}
				if !strings.HasPrefix(r.body, "Invalid instance id") || !strings.Contains(r.body, tt.wantBody) {
					t.Errorf("body = %q, want it to name %q", r.body, tt.wantBody)
				}
				if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
					t.Errorf("Content-Type = %q", ct)
				}
				return
			}
			if len(ids) != 1 || ids[0] != tt.wantID {
				t.Errorf("acquired %q, want [%q]", ids, tt.wantID)
			}
			if got := r.header.Get("Lunora-Instance"); got != tt.wantHeader {
				t.Errorf("lunora-instance = %q, want %q", got, tt.wantHeader)
			}
		})
	}
}

func TestMalformedPercentEncodingIs400(t *testing.T) {
	e := newEnv(t, okBackend)
	// Go's server refuses a malformed escape in the request line itself;
	// the router refuses it too when handed one directly.
	r := e.get("/v1/containers/web/instances/a%zz/fetch/")
	if r.status != http.StatusBadRequest {
		t.Errorf("through the server: status = %d, want 400", r.status)
	}
	req := &http.Request{Method: http.MethodGet, Header: http.Header{},
		URL:        &url.URL{Path: "/v1/containers/web/instances/a%zz/fetch/"},
		RequestURI: "/v1/containers/web/instances/a%zz/fetch/"}
	w := httptest.NewRecorder()
	e.router.Handler().ServeHTTP(w, req.WithContext(context.Background()))
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "malformed percent-encoding") {
		t.Errorf("direct: %d %q, want 400 naming the malformed percent-encoding", w.Code, w.Body.String())
	}
}

func TestReservedPathsAreRefused(t *testing.T) {
	rec := &recorder{}
	e := newEnv(t, rec)
	refused := []string{"/__lunora/x", "/a/../__lunora/x", "/%5F%5Flunora/x", "/__lunora%2Fx", `\__lunora\x`,
		`/\__lunora\exec`, "//__lunora/x", "/%2e%2e/__lunora/x", "/%255F%255Flunora/x"}
	for _, p := range refused {
		for _, route := range []string{"instances/i", "any", "pool"} {
			r := e.get("/v1/containers/web/" + route + "/fetch" + p)
			want := fmt.Sprintf("Path %q is reserved for Lunora's own container routes", p)
			if r.status != http.StatusBadRequest || !strings.HasPrefix(r.body, want) {
				t.Errorf("%s %s: %d %q, want 400 starting %q", route, p, r.status, r.body, want)
			}
		}
	}
	if n := len(rec.requests()); n != 0 {
		t.Fatalf("backend got %d reserved requests", n)
	}
	allowed := []string{"/__lunora-status", "/__LUNORA/x", "/a/__lunora/x"}
	for _, p := range allowed {
		if r := e.get("/v1/containers/web/instances/i/fetch" + p); r.status != 200 {
			t.Errorf("%s: status %d %q, want 200", p, r.status, r.body)
		}
	}
	var uris []string
	for _, s := range rec.requests() {
		uris = append(uris, s.uri)
	}
	if !slices.Equal(uris, allowed) {
		t.Errorf("backend saw %q, want %q", uris, allowed)
	}
}

func TestForwardingFidelity(t *testing.T) {
	rec := &recorder{respond: func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Lunora-Instance", "spoofed-by-app")
		w.Header().Set("X-App", "yes")
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "short and stout")
	}}
	e := newEnv(t, rec)
	req := e.request(http.MethodPost, "/v1/containers/web/instances/user%2F42/fetch/a%20b/c;x=1?q=1&r=%2F&&s", strings.NewReader("payload"))
	for _, h := range tuningHeaders {
		req.Header.Set(h, "1")
	}
	req.Header.Set("Cf-Container-Target-Port", "8080")
	req.Header.Set("X-Custom", "kept")
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("User-Agent", "worker/1")
	req.Header.Set("Accept-Encoding", "br")
	r := e.do(req)
	if r.err != nil || r.status != http.StatusTeapot || r.body != "short and stout" {
		t.Fatalf("response %d %q %v", r.status, r.body, r.err)
	}
	if got := r.header.Get("Lunora-Instance"); got != "user%2F42" {
		t.Errorf("lunora-instance = %q, want user%%2F42 (the router's, not the app's)", got)
	}
	if r.header.Get("X-App") != "yes" {
		t.Error("app response header lost")
	}
	seen := rec.requests()
	if len(seen) != 1 {
		t.Fatalf("backend saw %d requests", len(seen))
	}
	s := seen[0]
	if s.method != http.MethodPost || s.body != "payload" {
		t.Errorf("method/body = %s %q", s.method, s.body)
	}
	if s.host != "container" {
		t.Errorf("Host = %q, want container", s.host)
	}
	if want := "/a%20b/c;x=1?q=1&r=%2F&&s"; s.uri != want {
		t.Errorf("request target = %q, want %q byte for byte", s.uri, want)
	}
	for _, h := range tuningHeaders {
		if v, ok := s.header[h]; ok {
			t.Errorf("tuning header %s forwarded: %q", h, v)
		}
	}
	for h, want := range map[string]string{"X-Custom": "kept", "X-Forwarded-For": "203.0.113.9", "User-Agent": "worker/1", "Accept-Encoding": "br"} {
		if got := s.header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	for _, h := range []string{"X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded"} {
		if v, ok := s.header[h]; ok {
			t.Errorf("%s added: %q", h, v)
		}
	}
}

func TestEmptyForwardedPathIsSlash(t *testing.T) {
	rec := &recorder{}
	e := newEnv(t, rec)
	for _, target := range []string{"/v1/containers/web/any/fetch", "/v1/containers/web/any/fetch?x=1"} {
		if r := e.get(target); r.status != 200 {
			t.Fatalf("%s: %d %q", target, r.status, r.body)
		}
	}
	seen := rec.requests()
	if seen[0].uri != "/" || seen[1].uri != "/?x=1" {
		t.Errorf("targets = %q, %q; want / and /?x=1", seen[0].uri, seen[1].uri)
	}
}

func TestPoolSize(t *testing.T) {
	tests := []struct {
		name      string
		container string
		header    string
		wantSize  int
		wantErr   string
	}{
		{"maxInstances", "big", "", 5, ""},
		{"default 3", "web", "", 3, ""},
		{"header wins", "big", "7", 7, ""},
		{"header one", "web", "1", 1, ""},
		{"zero", "web", "0", 0, "Invalid lunora-pool-size header"},
		{"negative", "web", "-2", 0, "Invalid lunora-pool-size header"},
		{"text", "web", "many", 0, "Invalid lunora-pool-size header"},
	}
	for _, kind := range []string{"any", "pool"} {
		for _, tt := range tests {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t, okBackend)
				e.rand.picks = []int{2}
				var h []string
				if tt.header != "" {
					h = []string{"lunora-pool-size", tt.header}
				}
				r := e.get("/v1/containers/"+tt.container+"/"+kind+"/fetch/", h...)
				if tt.wantErr != "" {
					if r.status != 400 || !strings.HasPrefix(r.body, tt.wantErr) {
						t.Fatalf("%d %q, want 400 %q", r.status, r.body, tt.wantErr)
					}
					return
				}
				if got := e.rand.calls(); !slices.Equal(got, []int{tt.wantSize}) {
					t.Errorf("Rand called with %v, want [%d]", got, tt.wantSize)
				}
				if ids := e.instances.acquired(); !slices.Equal(ids, []string{"pool-2"}) {
					t.Errorf("acquired %q, want [pool-2]", ids)
				}
				if got := r.header.Get("Lunora-Instance"); got != "pool-2" {
					t.Errorf("lunora-instance = %q", got)
				}
			})
		}
	}
}

func TestAnyPicksOncePoolPicksPerAttempt(t *testing.T) {
	capacity := func(call int, _ string) error {
		if call < 2 {
			return &lifecycle.CapacityError{Container: "web", Max: 3}
		}
		return nil
	}
	for _, tt := range []struct {
		kind      string
		wantIDs   []string
		wantRands int
	}{
		{"any", []string{"pool-1", "pool-1", "pool-1"}, 1},
		{"pool", []string{"pool-1", "pool-0", "pool-2"}, 3},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			e := newEnv(t, okBackend)
			e.instances.script = capacity
			e.rand.picks = []int{1, 0, 2}
			r, _ := e.drive(e.request(http.MethodGet, "/v1/containers/web/"+tt.kind+"/fetch/", nil))
			if r.status != 200 {
				t.Fatalf("%d %q", r.status, r.body)
			}
			if ids := e.instances.acquired(); !slices.Equal(ids, tt.wantIDs) {
				t.Errorf("acquired %q, want %q", ids, tt.wantIDs)
			}
			if n := len(e.rand.calls()); n != tt.wantRands {
				t.Errorf("Rand called %d times, want %d", n, tt.wantRands)
			}
			if got, want := r.header.Get("Lunora-Instance"), tt.wantIDs[2]; got != want {
				t.Errorf("lunora-instance = %q, want %q", got, want)
			}
		})
	}
}

func TestRetryPolicy(t *testing.T) {
	ms := time.Millisecond
	capacityErr := &lifecycle.CapacityError{Container: "web", Max: 2}
	failFirst := func(n int, err error) func(int, string) error {
		return func(call int, _ string) error {
			if call < n {
				return err
			}
			return nil
		}
	}
	tests := []struct {
		name         string
		route        string
		headers      []string
		script       func(int, string) error
		backend      func(n int, w http.ResponseWriter, r *http.Request)
		wantStatus   int
		wantBody     string
		wantWaits    []time.Duration
		wantAcquires int
	}{
		{name: "capacity exhausts the default 3 attempts", route: "instances/a",
			script: failFirst(99, capacityErr), wantStatus: 500,
			wantBody:  "Failed to start container: Maximum number of running container instances exceeded",
			wantWaits: []time.Duration{500 * ms, 1000 * ms}, wantAcquires: 3},
		{name: "capacity then success", route: "instances/a",
			script: failFirst(2, capacityErr), wantStatus: 200, wantBody: "ok",
			wantWaits: []time.Duration{500 * ms, 1000 * ms}, wantAcquires: 3},
		{name: "any retries the same way", route: "any",
			script: failFirst(1, capacityErr), wantStatus: 200, wantBody: "ok",
			wantWaits: []time.Duration{500 * ms}, wantAcquires: 2},
		{name: "header overrides and the cap", route: "instances/a",
			headers: []string{"lunora-attempts", "5", "lunora-backoff-ms", "100", "lunora-max-backoff-ms", "250"},
			script:  failFirst(99, capacityErr), wantStatus: 500,
			wantBody:  "Failed to start container: Maximum number",
			wantWaits: []time.Duration{100 * ms, 200 * ms, 250 * ms, 250 * ms}, wantAcquires: 5},
		{name: "zero backoff does not wait", route: "instances/a",
			headers: []string{"lunora-backoff-ms", "0"},
			script:  failFirst(2, capacityErr), wantStatus: 200, wantBody: "ok", wantAcquires: 3},
		{name: "one attempt", route: "instances/a", headers: []string{"lunora-attempts", "1"},
			script: failFirst(99, capacityErr), wantStatus: 500, wantBody: "Failed to start container: Maximum", wantAcquires: 1},
		{name: "retryable start error", route: "instances/a",
			script:     failFirst(1, &lifecycle.StartError{Container: "web", Retryable: true, Err: errors.New("container exited with unexpected exit code: 1")}),
			wantStatus: 200, wantBody: "ok", wantWaits: []time.Duration{500 * ms}, wantAcquires: 2},
		{name: "final start error", route: "instances/a",
			script:     failFirst(99, &lifecycle.StartError{Container: "web", Err: errors.New("secret STRIPE_KEY is not set")}),
			wantStatus: 500, wantBody: "Failed to start container: secret STRIPE_KEY is not set", wantAcquires: 1},
		{name: "build error is final", route: "instances/a",
			script:     failFirst(99, &lifecycle.BuildError{Container: "web", Err: errors.New("exit status 1")}),
			wantStatus: 500, wantBody: `Failed to start container: building image for container "web" failed: exit status 1`, wantAcquires: 1},
		{name: "readiness deadline is final", route: "any",
			script:     failFirst(99, &lifecycle.NotReadyError{Container: "web", Path: "/ready", Port: 8080, Status: 200, TimeoutMs: 30000}),
			wantStatus: 500, wantBody: `Failed to start container: container "web": readiness check "/ready" (port 8080) did not return 200 within 30000ms`, wantAcquires: 1},
		{name: "app 5xx passes through unretried", route: "instances/a",
			backend: func(_ int, w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, "app says no")
			},
			wantStatus: 503, wantBody: "app says no", wantAcquires: 1},
		{name: "connection dropped before the response is retried", route: "instances/a",
			backend: func(n int, w http.ResponseWriter, _ *http.Request) {
				if n < 3 {
					hangUp(w)
					return
				}
				_, _ = io.WriteString(w, "third time")
			},
			wantStatus: 200, wantBody: "third time", wantWaits: []time.Duration{500 * ms, 1000 * ms}, wantAcquires: 3},
		{name: "connection dropped every time", route: "instances/a",
			backend:    func(_ int, w http.ResponseWriter, _ *http.Request) { hangUp(w) },
			wantStatus: 500, wantBody: "Container suddenly disconnected, try again",
			wantWaits: []time.Duration{500 * ms, 1000 * ms}, wantAcquires: 3},
		{name: "pool retries 5xx on fresh picks", route: "pool",
			backend: func(n int, w http.ResponseWriter, _ *http.Request) {
				if n < 3 {
					w.WriteHeader(http.StatusBadGateway)
					return
				}
				_, _ = io.WriteString(w, "finally")
			},
			wantStatus: 200, wantBody: "finally", wantWaits: []time.Duration{100 * ms, 200 * ms}, wantAcquires: 3},
		{name: "pool returns the last 5xx", route: "pool",
			backend: func(n int, w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
				fmt.Fprintf(w, "bad %d", n)
			},
			wantStatus: 500, wantBody: "bad 3", wantWaits: []time.Duration{100 * ms, 200 * ms}, wantAcquires: 3},
		{name: "pool retries start errors too", route: "pool",
			script:     failFirst(2, &lifecycle.BuildError{Container: "web", Err: errors.New("boom")}),
			wantStatus: 200, wantBody: "ok", wantWaits: []time.Duration{100 * ms, 200 * ms}, wantAcquires: 3},
		{name: "pool with one attempt returns the 5xx", route: "pool", headers: []string{"lunora-attempts", "1"},
			backend:    func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) },
			wantStatus: 502, wantAcquires: 1},
		{name: "shutting down is not retried even by pool", route: "pool",
			script:     failFirst(99, lifecycle.ErrShuttingDown),
			wantStatus: 503, wantBody: bodyNoInstance, wantAcquires: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, &recorder{respond: tt.backend})
			e.instances.script = tt.script
			e.rand.picks = []int{0, 1, 2, 0, 1}
			req := e.request(http.MethodGet, "/v1/containers/web/"+tt.route+"/fetch/x", nil)
			for i := 0; i+1 < len(tt.headers); i += 2 {
				req.Header.Set(tt.headers[i], tt.headers[i+1])
			}
			r, waits := e.drive(req)
			if r.err != nil || r.status != tt.wantStatus || !strings.HasPrefix(r.body, tt.wantBody) {
				t.Fatalf("got %d %q (%v), want %d %q", r.status, r.body, r.err, tt.wantStatus, tt.wantBody)
			}
			if !slices.Equal(waits, tt.wantWaits) {
				t.Errorf("waits = %v, want %v", waits, tt.wantWaits)
			}
			if n := len(e.instances.acquired()); n != tt.wantAcquires {
				t.Errorf("acquires = %d, want %d", n, tt.wantAcquires)
			}
			if r.header.Get("Lunora-Instance") == "" {
				t.Error("lunora-instance missing")
			}
			for _, l := range e.instances.allLeases() {
				select { // the last release may trail the response's last byte
				case <-l.released:
				case <-time.After(5 * time.Second):
				}
				if l.releases.Load() != 1 {
					t.Errorf("lease %s released %d times, want 1", l.id, l.releases.Load())
				}
			}
		})
	}
}

func TestRetryWaitsExactlyOnTheClock(t *testing.T) {
	e := newEnv(t, okBackend)
	e.instances.script = func(call int, _ string) error {
		if call < 2 {
			return &lifecycle.CapacityError{Container: "web", Max: 1}
		}
		return nil
	}
	done := make(chan result, 1)
	go func() { done <- e.get("/v1/containers/web/instances/a/fetch/") }()
	for i, want := range []time.Duration{500 * time.Millisecond, time.Second} {
		d := <-e.clock.armed
		if d != want {
			t.Fatalf("wait %d = %v, want %v", i+1, d, want)
		}
		e.clock.Advance(d - time.Millisecond)
		if n := len(e.instances.acquired()); n != i+1 {
			t.Fatalf("retried %v early: %d acquires", time.Millisecond, n)
		}
		e.clock.Advance(time.Millisecond)
	}
	if r := <-done; r.status != 200 {
		t.Fatalf("%d %q", r.status, r.body)
	}
}

func TestClientCancelStopsRetrying(t *testing.T) {
	e := newEnv(t, okBackend)
	e.instances.script = func(int, string) error { return &lifecycle.CapacityError{Container: "web", Max: 1} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() {
		done <- e.do(e.request(http.MethodGet, "/v1/containers/web/instances/a/fetch/", nil).WithContext(ctx))
	}()
	<-e.clock.armed
	cancel()
	if r := <-done; r.err == nil {
		t.Fatalf("request succeeded after cancel: %d", r.status)
	}
	// The handler notices the closed connection and abandons its wait.
	select {
	case <-e.clock.stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("the backoff wait outlived the client")
	}
	e.clock.Advance(time.Hour)
	if n := len(e.instances.acquired()); n != 1 {
		t.Errorf("acquires = %d after the client left, want 1", n)
	}
}

func TestBodyReplayedAcrossAttempts(t *testing.T) {
	rec := &recorder{respond: func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			hangUp(w)
			return
		}
		_, _ = io.WriteString(w, "got it")
	}}
	e := newEnv(t, rec)
	e.instances.script = func(call int, _ string) error {
		if call == 0 {
			return &lifecycle.CapacityError{Container: "web", Max: 1}
		}
		return nil
	}
	payload := strings.Repeat("0123456789", 100_000) // 1 MB, chunked (length unknown)
	r, _ := e.drive(e.request(http.MethodPut, "/v1/containers/web/instances/a/fetch/up", io.MultiReader(strings.NewReader(payload))))
	if r.status != 200 || r.body != "got it" {
		t.Fatalf("%d %q", r.status, r.body)
	}
	seen := rec.requests()
	if len(seen) != 2 {
		t.Fatalf("backend saw %d requests, want 2", len(seen))
	}
	for i, s := range seen {
		if s.body != payload {
			t.Errorf("attempt %d: body of %d bytes, want %d", i+1, len(s.body), len(payload))
		}
	}
}

func TestLargeBodySentOnce(t *testing.T) {
	rec := &recorder{respond: func(_ int, w http.ResponseWriter, _ *http.Request) { hangUp(w) }}
	e := newEnv(t, rec)
	// The first Acquire fails: nothing was read yet, so even a one-shot
	// body may go to a second attempt. The dropped connection after it
	// consumed the body may not.
	e.instances.script = func(call int, _ string) error {
		if call == 0 {
			return &lifecycle.CapacityError{Container: "web", Max: 1}
		}
		return nil
	}
	payload := bytes.Repeat([]byte("x"), maxReplayBody+10)
	for _, known := range []bool{true, false} {
		t.Run(fmt.Sprintf("content-length known %v", known), func(t *testing.T) {
			rec.mu.Lock()
			rec.seen = nil
			rec.mu.Unlock()
			e.instances.mu.Lock()
			e.instances.ids = nil
			e.instances.mu.Unlock()
			var body io.Reader = bytes.NewReader(payload)
			if !known {
				body = io.MultiReader(body)
			}
			r, waits := e.drive(e.request(http.MethodPost, "/v1/containers/web/instances/a/fetch/", body))
			if r.status != 500 || r.body != bodyDisconnected {
				t.Fatalf("%d %q", r.status, r.body)
			}
			seen := rec.requests()
			if len(seen) != 1 || len(seen[0].body) != len(payload) {
				t.Fatalf("backend saw %d requests, want 1 with the whole body", len(seen))
			}
			if len(waits) != 1 {
				t.Errorf("waits = %v, want one (after the capacity error only)", waits)
			}
		})
	}
}

func TestSingleAttemptStreamsTheBody(t *testing.T) {
	firstChunk := make(chan string, 1)
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			t.Errorf("reading the first chunk: %v", err)
		}
		firstChunk <- string(buf)
		rest, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s%s", buf, rest)
	}))
	pr, pw := io.Pipe()
	req := e.request(http.MethodPost, "/v1/containers/web/instances/a/fetch/", pr)
	req.Header.Set("Lunora-Attempts", "1")
	done := make(chan result, 1)
	go func() { done <- e.do(req) }()
	if _, err := io.WriteString(pw, "hello"); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-firstChunk:
		if got != "hello" {
			t.Fatalf("first chunk %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the container did not see the first chunk before the body ended: it was buffered")
	}
	_, _ = io.WriteString(pw, " world")
	pw.Close()
	if r := <-done; r.body != "hello world" {
		t.Fatalf("%d %q", r.status, r.body)
	}
}

func TestTargetPort(t *testing.T) {
	e := newEnv(t, &recorder{respond: func(_ int, w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "8080") }})
	e.instances.addrs[9090] = startBackend(t, &recorder{respond: func(_ int, w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "9090") }})

	if r := e.get("/v1/containers/web/instances/a/fetch/"); r.body != "8080" {
		t.Errorf("default port answered %q", r.body)
	}
	if r := e.get("/v1/containers/web/instances/a/fetch/", "cf-container-target-port", "9090"); r.body != "9090" {
		t.Errorf("port 9090 answered %q", r.body)
	}
	before := len(e.instances.acquired())
	r := e.get("/v1/containers/web/instances/a/fetch/", "cf-container-target-port", "7000")
	want := `Error proxying request to container: port 7000 is not published for container "web"; declare it in defaultPort or requiredPorts (or EXPOSE it in the Dockerfile)`
	if r.status != 500 || r.body != want {
		t.Errorf("unpublished port: %d %q, want 500 %q", r.status, r.body, want)
	}
	if n := len(e.instances.acquired()) - before; n != 1 {
		t.Errorf("unpublished port was tried %d times, want 1", n)
	}
	if r := e.get("/v1/containers/web/instances/a/fetch/", "cf-container-target-port", "http"); r.status != 400 {
		t.Errorf("invalid port: %d %q", r.status, r.body)
	}
	r = e.get("/v1/containers/none/instances/a/fetch/")
	if want := `Error proxying request to container: no port configured for container "none"; set defaultPort or send cf-container-target-port`; r.status != 500 || r.body != want {
		t.Errorf("no port: %d %q", r.status, r.body)
	}
}

func TestErrorBodies(t *testing.T) {
	wrapped := fmt.Errorf("acquire: %w", &lifecycle.StartError{Container: "web", Err: errors.New("bad image")})
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantBody   string
	}{
		{"capacity", &lifecycle.CapacityError{Container: "web", Max: 2}, 500, "Failed to start container: Maximum number of running container instances exceeded"},
		{"start", &lifecycle.StartError{Container: "web", Err: errors.New("no such image")}, 500, "Failed to start container: no such image"},
		{"wrapped start", wrapped, 500, "Failed to start container: bad image"},
		{"build", &lifecycle.BuildError{Container: "web", Step: "Step 2/3 : RUN false", Err: errors.New("exit 1")}, 500,
			`Failed to start container: building image for container "web" failed at Step 2/3 : RUN false: exit 1`},
		{"not ready", &lifecycle.NotReadyError{Container: "web", Port: 8080, TimeoutMs: 30000}, 500,
			`Failed to start container: container "web": port 8080 did not answer an HTTP request within 30000ms`},
		{"untyped", errors.New(`container "web": declared secret "K" is not set`), 500, `Failed to start container: container "web": declared secret "K" is not set`},
		{"no instance", &lifecycle.NoInstanceError{Err: errors.New("start timed out")}, 503, bodyNoInstance},
		{"shutting down", lifecycle.ErrShuttingDown, 503, bodyNoInstance},
		{"unknown container", &lifecycle.UnknownContainerError{Name: "web"}, 404, `Unknown container "web"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, okBackend)
			e.instances.script = func(int, string) error { return tt.err }
			r := e.get("/v1/containers/web/instances/a%20b/fetch/", "lunora-attempts", "1")
			if r.status != tt.wantStatus || r.body != tt.wantBody {
				t.Fatalf("got %d %q\nwant %d %q", r.status, r.body, tt.wantStatus, tt.wantBody)
			}
			if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			if got := r.header.Get("Lunora-Instance"); got != "a%20b" {
				t.Errorf("lunora-instance = %q", got)
			}
		})
	}

	if !strings.Contains(bodyNoInstance, "at this time.\nThis is likely") || strings.Count(bodyNoInstance, "\n") != 2 {
		t.Errorf("503 body lost its line breaks: %q", bodyNoInstance)
	}

	t.Run("connection refused", func(t *testing.T) {
		e := newEnv(t, nil)
		addr := closedAddr(t)
		e.instances.addrs[8080] = addr
		r := e.get("/v1/containers/web/instances/a/fetch/", "lunora-attempts", "1")
		want := "Error proxying request to container: dial tcp " + addr + ": connect: connection refused"
		if r.status != 500 || r.body != want {
			t.Fatalf("got %d %q, want %q", r.status, r.body, want)
		}
	})
	t.Run("unknown container on the data plane", func(t *testing.T) {
		e := newEnv(t, okBackend)
		r := e.get("/v1/containers/nope/pool/fetch/")
		if r.status != 404 || r.body != `Unknown container "nope"` {
			t.Fatalf("got %d %q", r.status, r.body)
		}
		if len(e.instances.acquired()) != 0 {
			t.Error("acquired for an unknown container")
		}
	})
}

func TestConnectionRefusedIsRetriedEvenWithAOneShotBody(t *testing.T) {
	var hits atomic.Int32
	live := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	}))
	e := newEnv(t, nil)
	dead := closedAddr(t)
	e.instances.addrs[8080] = dead
	// Once the first attempt was refused, the container "comes up".
	e.instances.script = func(call int, _ string) error {
		if call == 1 {
			e.instances.addrs[8080] = live
		}
		return nil
	}
	payload := bytes.Repeat([]byte("y"), maxReplayBody+1)
	r, waits := e.drive(e.request(http.MethodPost, "/v1/containers/web/instances/a/fetch/", bytes.NewReader(payload)))
	if r.status != 200 || len(r.body) != len(payload) {
		t.Fatalf("%d, %d bytes", r.status, len(r.body))
	}
	if hits.Load() != 1 || len(waits) != 1 {
		t.Errorf("hits = %d waits = %v; want 1 hit after one wait", hits.Load(), waits)
	}
}

func TestTrailersBothWays(t *testing.T) {
	for _, attempts := range []string{"3", "1"} { // buffered and streamed request bodies
		t.Run("attempts "+attempts, func(t *testing.T) {
			rec := &recorder{respond: func(_ int, w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Trailer", "X-Res-Trailer")
				_, _ = io.WriteString(w, "body")
				w.Header().Set("X-Res-Trailer", "from-container")
			}}
			e := newEnv(t, rec)
			req := e.request(http.MethodPost, "/v1/containers/web/instances/a/fetch/", io.MultiReader(strings.NewReader("data")))
			req.Header.Set("Lunora-Attempts", attempts)
			req.Trailer = http.Header{"X-Req-Trailer": {"from-worker"}}
			res, err := e.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if string(body) != "body" {
				t.Fatalf("body %q", body)
			}
			if got := res.Trailer.Get("X-Res-Trailer"); got != "from-container" {
				t.Errorf("response trailer = %q", got)
			}
			seen := rec.requests()
			if len(seen) != 1 || seen[0].body != "data" || seen[0].trailer.Get("X-Req-Trailer") != "from-worker" {
				t.Errorf("container saw %+v", seen)
			}
		})
	}
}

func TestStreamedResponseIsFlushedAsProduced(t *testing.T) {
	// A large fixed-length body whose first write is small: without a
	// flush per write, those bytes would wait in the server's buffers.
	head, big := strings.Repeat("h", 100), strings.Repeat("b", 3*copyBufferSize)
	tests := []struct {
		name          string
		contentType   string
		contentLength string
		first, second string
	}{
		{"server-sent events", "text/event-stream", "", "data: one\n\n", "data: two\n\n"},
		{"chunked", "application/octet-stream", "", "part one;", "part two"},
		{"large fixed length", "application/octet-stream", fmt.Sprint(len(head) + len(big)), head, big},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := make(chan struct{})
			e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				if tt.contentLength != "" {
					w.Header().Set("Content-Length", tt.contentLength)
				}
				_, _ = io.WriteString(w, tt.first)
				http.NewResponseController(w).Flush()
				select {
				case <-next:
				case <-r.Context().Done():
					return
				}
				_, _ = io.WriteString(w, tt.second)
			}))
			// Headers and the first part must arrive while the container
			// holds the second one back.
			type firstPart struct {
				res  *http.Response
				data string
				err  error
			}
			first := make(chan firstPart, 1)
			go func() {
				res, err := e.client.Do(e.request(http.MethodGet, "/v1/containers/web/instances/s/fetch/stream", nil))
				if err != nil {
					first <- firstPart{err: err}
					return
				}
				buf := make([]byte, len(tt.first))
				_, err = io.ReadFull(res.Body, buf)
				first <- firstPart{res: res, data: string(buf), err: err}
			}()
			var res *http.Response
			select {
			case got := <-first:
				if got.res != nil {
					res = got.res
					defer res.Body.Close()
				}
				if got.err != nil || got.data != tt.first {
					t.Fatalf("first part: %d bytes (%v), want %d", len(got.data), got.err, len(tt.first))
				}
			case <-time.After(5 * time.Second):
				close(next)
				if got := <-first; got.res != nil {
					got.res.Body.Close()
				}
				t.Fatal("the first part was not flushed before the second was produced")
			}
			close(next)
			rest, _ := io.ReadAll(res.Body)
			if string(rest) != tt.second {
				t.Fatalf("second part: %d bytes, want %d", len(rest), len(tt.second))
			}
			l := e.instances.lastLease()
			select {
			case <-l.released:
			case <-time.After(5 * time.Second):
				t.Fatal("lease not released when the stream ended")
			}
			if l.touches.Load() == 0 {
				t.Error("streamed bytes did not touch the lease")
			}
		})
	}
}

func TestContainerDiesMidRequest(t *testing.T) {
	entered := make(chan struct{})
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
	}))
	done := make(chan result, 1)
	go func() { done <- e.get("/v1/containers/web/instances/a/fetch/slow", "lunora-attempts", "1") }()
	<-entered
	close(e.instances.done) // the instance's run ends
	r := <-done
	if r.status != 500 || r.body != "Container suddenly disconnected, try again" {
		t.Fatalf("got %d %q", r.status, r.body)
	}
	if got := r.header.Get("Lunora-Instance"); got != "a" {
		t.Errorf("lunora-instance = %q", got)
	}
}

func TestConnectionDroppedMidRequestOnce(t *testing.T) {
	e := newEnv(t, &recorder{respond: func(_ int, w http.ResponseWriter, _ *http.Request) { hangUp(w) }})
	r := e.get("/v1/containers/web/instances/a/fetch/", "lunora-attempts", "1")
	if r.status != 500 || r.body != bodyDisconnected {
		t.Fatalf("got %d %q", r.status, r.body)
	}
}

func TestDrain(t *testing.T) {
	e := newEnv(t, okBackend)
	e.router.Drain()
	r := e.get("/v1/containers/web/instances/a/fetch/")
	if r.status != 503 || r.body != bodyNoInstance {
		t.Errorf("data plane after Drain: %d %q", r.status, r.body)
	}
	if len(e.instances.acquired()) != 0 {
		t.Error("acquired after Drain")
	}
	if r := e.get("/healthz"); r.status != 503 || !strings.Contains(r.body, `"draining"`) {
		t.Errorf("healthz after Drain: %d %q", r.status, r.body)
	}
	if r := e.get("/v1/containers/web/instances/a/state"); r.status != 200 {
		t.Errorf("control plane after Drain: %d %q", r.status, r.body)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, okBackend)
	e.instances.script = func(call int, _ string) error {
		if call == 0 {
			return &lifecycle.CapacityError{Container: "web", Max: 1}
		}
		return nil
	}
	e.instances.cold = true
	if r, _ := e.drive(e.request(http.MethodGet, "/v1/containers/web/instances/a/fetch/", nil)); r.status != 200 {
		t.Fatalf("%d", r.status)
	}
	e.get("/v1/containers/web/any/fetch/", "lunora-pool-size", "x")
	r := e.get("/metrics")
	for _, want := range []string{
		`lunorad_requests_total{class="2xx",kind="get"} 1`,
		`lunorad_requests_total{class="4xx",kind="any"} 1`,
		`lunorad_retries_total{kind="get"} 1`,
		`lunorad_proxy_duration_seconds_count{kind="get"} 1`,
		`lunorad_acquire_duration_seconds_count 1`,
		`lunorad_cold_starts_waited_total 1`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestKeepAlivePoolDroppedWhenTheInstanceStops(t *testing.T) {
	closed := make(chan struct{}, 16)
	backend := httptest.NewUnstartedServer(okBackend)
	backend.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed <- struct{}{}
		}
	}
	backend.Start()
	t.Cleanup(backend.Close)
	e := newEnv(t, nil)
	e.instances.addrs[8080] = backend.Listener.Addr().String()
	for range 3 {
		if r := e.get("/v1/containers/web/instances/a/fetch/"); r.status != 200 {
			t.Fatalf("%d %q", r.status, r.body)
		}
	}
	e.router.pools.mu.Lock()
	n := len(e.router.pools.byKey)
	e.router.pools.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d pools for one instance run, want 1", n)
	}
	select {
	case <-closed:
		t.Fatal("a keep-alive connection was closed while the instance runs")
	default:
	}
	close(e.instances.done)
	select {
	case <-closed: // the idle connection to the stopped run is gone
	case <-time.After(5 * time.Second):
		t.Fatal("idle connection kept after the instance stopped")
	}
	e.router.pools.mu.Lock()
	n = len(e.router.pools.byKey)
	e.router.pools.mu.Unlock()
	if n != 0 {
		t.Errorf("%d pools left after the run ended", n)
	}
}

// A container reached on its own address (no docker-proxy in front) that
// dies with a request in hand on a kept-alive connection: net/http replays
// the request on a new connection, which is refused. The client must hear
// about the drop, not about the refused replay.
func TestContainerDiesOnAKeptAliveConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/crash" {
			ln.Close() // the container is gone: the replay's dial is refused
			hangUp(w)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})}
	go func() { _ = backend.Serve(ln) }()
	t.Cleanup(func() { _ = backend.Close() })
	e := newEnv(t, nil)
	e.instances.addrs[8080] = ln.Addr().String()

	if r := e.get("/v1/containers/web/instances/a/fetch/"); r.status != 200 {
		t.Fatalf("warm-up request: %d %q %v", r.status, r.body, r.err)
	}
	r := e.get("/v1/containers/web/instances/a/fetch/crash", "lunora-attempts", "1")
	if r.status != 500 || r.body != bodyDisconnected {
		t.Fatalf("got %d %q, want 500 %q", r.status, r.body, bodyDisconnected)
	}
}
