package httpfront_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/httpfront"
)

// gate is a handler that reports when it starts and finishes when released
// (or when its request is canceled), then writes "finished".
type gate struct {
	entered  chan struct{}
	release  chan struct{}
	canceled chan error // the request context's cause, when canceled before release
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}, 8), release: make(chan struct{}), canceled: make(chan error, 8)}
}

// ServeHTTP answers "finished" once released; X-Reply-Connection sets the
// response's Connection header.
func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if v := r.Header.Get("X-Reply-Connection"); v != "" {
		w.Header().Set("Connection", v)
	}
	g.entered <- struct{}{}
	select {
	case <-g.release:
		_, _ = io.WriteString(w, "finished")
	case <-r.Context().Done():
		g.canceled <- context.Cause(r.Context())
	}
}

// gated serves /slow with g and everything else with the equivalence handlers.
func gated(g *gate, rec *recorder) http.Handler {
	table := equivalenceHandlers()
	table["/slow"] = g.ServeHTTP
	return routes(rec, table)
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(ioTimeout):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	return conn, bufio.NewReader(conn)
}

func send(t *testing.T, conn net.Conn, raw string) {
	t.Helper()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
}

// expectClosed fails unless the server closes conn (EOF or reset) with no
// more bytes.
func expectClosed(t *testing.T, br *bufio.Reader) {
	t.Helper()
	rest, err := io.ReadAll(br)
	if err != nil && errKind(err) != "closed" {
		t.Fatalf("connection not closed: %v (read %q)", err, rest)
	}
	if len(rest) > 0 {
		t.Fatalf("unexpected bytes before close: %q", rest)
	}
}

func TestShutdownClosesIdleConnection(t *testing.T) {
	for _, viaFallback := range []bool{false, true} {
		name := map[bool]string{false: "served here", true: "handed off"}[viaFallback]
		t.Run(name, func(t *testing.T) {
			rec := &recorder{}
			front := startFront(t, routes(rec, equivalenceHandlers()), takeUnlessMarked)
			conn, br := dial(t, front.addr)
			extra := ""
			if viaFallback {
				extra = "X-Fallback: 1\r\n"
			}
			send(t, conn, req("GET", "/small", extra))
			if err := readResponse(br, "GET"); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			defer cancel()
			start := time.Now()
			if err := front.srv.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			t.Logf("Shutdown took %v", time.Since(start))
			expectClosed(t, br)
			if err := front.serveResult(); !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("Serve = %v, want http.ErrServerClosed", err)
			}
			wantWho := map[bool]string{false: "lean", true: "nethttp"}[viaFallback]
			if got := rec.list(); len(got) != 1 || got[0] != "/small "+wantWho {
				t.Errorf("served = %v, want [/small %s]", got, wantWho)
			}
		})
	}
}

// shutdownDuringRequest runs a slow request, shuts the server down while it
// runs, then releases it; it returns the bytes the client received.
// shuttingDown, when not nil, is closed once the server holding the
// connection has started its shutdown.
func shutdownDuringRequest(t *testing.T, addr string, g *gate, extraHeader string, shutdown func(context.Context) error, serveDone func() error, shuttingDown <-chan struct{}) string {
	t.Helper()
	conn, br := dial(t, addr)
	send(t, conn, req("GET", "/slow", extraHeader))
	waitFor(t, g.entered, "the handler")

	shutdownErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		shutdownErr <- shutdown(ctx)
	}()
	// Serve returning shows Shutdown has started (the listener is closed).
	if err := serveDone(); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve = %v, want http.ErrServerClosed", err)
	}
	if shuttingDown != nil {
		waitFor(t, shuttingDown, "the server serving the request to start shutting down")
	}
	select {
	case err := <-shutdownErr:
		t.Fatalf("Shutdown returned (%v) while a request was still running", err)
	default:
	}
	if c, err := net.DialTimeout("tcp", addr, ioTimeout); err == nil {
		c.Close()
		t.Errorf("a new connection was accepted during Shutdown")
	}
	close(g.release)
	select {
	case err := <-shutdownErr:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(ioTimeout):
		t.Fatalf("Shutdown did not return after the request finished")
	}
	_ = conn.SetReadDeadline(time.Now().Add(ioTimeout))
	var captured strings.Builder
	_, err := io.Copy(&captured, br)
	if err != nil && errKind(err) != "closed" {
		t.Errorf("reading the response: %v", err)
	}
	return normalizeDate(captured.String())
}

// TestShutdownWaitsForActiveRequest: the running request completes, with
// the same bytes net/http sends for a request finishing during Shutdown,
// whatever Connection header the handler set (net/http replaces it).
func TestShutdownWaitsForActiveRequest(t *testing.T) {
	for _, tc := range []struct {
		viaFallback bool
		replyConn   string
	}{{false, ""}, {true, ""}, {false, "keep-alive"}, {false, "close"}, {true, "keep-alive"}} {
		name := map[bool]string{false: "served here", true: "handed off"}[tc.viaFallback]
		if tc.replyConn != "" {
			name += ", handler's Connection: " + tc.replyConn
		}
		t.Run(name, func(t *testing.T) {
			viaFallback := tc.viaFallback
			extra := ""
			if viaFallback {
				extra = "X-Fallback: 1\r\n"
			}
			if tc.replyConn != "" {
				extra += "X-Reply-Connection: " + tc.replyConn + "\r\n"
			}
			plainGate := newGate()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			plainSrv := &http.Server{Handler: gated(plainGate, nil), ErrorLog: discardLog}
			plainDone := make(chan error, 1)
			go func() { plainDone <- plainSrv.Serve(ln) }()
			t.Cleanup(func() { _ = plainSrv.Close() })
			want := shutdownDuringRequest(t, ln.Addr().String(), plainGate, extra, plainSrv.Shutdown, func() error {
				select {
				case err := <-plainDone:
					return err
				case <-time.After(ioTimeout):
					return errors.New("Serve did not return")
				}
			}, nil)

			frontGate := newGate()
			front := startFront(t, gated(frontGate, nil), takeUnlessMarked)
			var fallbackShuttingDown chan struct{}
			if viaFallback {
				// The fallback's Shutdown runs after httpfront's own
				// connections are done; wait for it so that the response
				// is written during it, as with net/http.
				fallbackShuttingDown = make(chan struct{})
				front.srv.Fallback.RegisterOnShutdown(func() { close(fallbackShuttingDown) })
			}
			got := shutdownDuringRequest(t, front.addr, frontGate, extra, front.srv.Shutdown, front.serveResult, fallbackShuttingDown)
			if !strings.HasSuffix(want, "finished") {
				t.Fatalf("net/http sent %q, want a complete response (test assumption)", want)
			}
			if got != want {
				t.Errorf("bytes differ from net/http\nnet/http:  %q\nhttpfront: %q", want, got)
			}
		})
	}
}

// TestShutdownBoundedByContext: a request that never ends makes Shutdown
// return the context's error instead of waiting forever.
func TestShutdownBoundedByContext(t *testing.T) {
	g := newGate()
	front := startFront(t, gated(g, nil), nil)
	conn, _ := dial(t, front.addr)
	send(t, conn, req("GET", "/slow"))
	waitFor(t, g.entered, "the handler")

	ctx, cancel := context.WithCancel(context.Background())
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- front.srv.Shutdown(ctx) }()
	if err := front.serveResult(); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve = %v, want http.ErrServerClosed", err)
	}
	cancel()
	select {
	case err := <-shutdownErr:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Shutdown = %v, want context.Canceled", err)
		}
	case <-time.After(ioTimeout):
		t.Fatal("Shutdown ignored its context")
	}
	close(g.release) // lets the handler end before Close
}

// TestShutdownReportsTheContextOnce: with requests still running on both
// servers when the context ends, Shutdown says so once, not once per server.
func TestShutdownReportsTheContextOnce(t *testing.T) {
	g := newGate()
	front := startFront(t, gated(g, nil), takeUnlessMarked)
	here, _ := dial(t, front.addr)
	send(t, here, req("GET", "/slow", ""))
	waitFor(t, g.entered, "the handler served here")
	handedOff, _ := dial(t, front.addr)
	send(t, handedOff, req("GET", "/slow", "X-Fallback: 1\r\n"))
	waitFor(t, g.entered, "the fallback's handler")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := front.srv.Shutdown(ctx)
	if !errors.Is(err, context.Canceled) || strings.Count(err.Error(), context.Canceled.Error()) != 1 {
		t.Errorf("Shutdown = %q, want context.Canceled said once", err)
	}
	close(g.release)
}

// TestClientDisconnectCancelsRequest: the lazy watcher notices a client that
// hangs up during a slow handler and cancels the request's context.
func TestClientDisconnectCancelsRequest(t *testing.T) {
	g := newGate()
	front := startFront(t, gated(g, nil), nil)
	conn, _ := dial(t, front.addr)
	send(t, conn, req("GET", "/slow"))
	waitFor(t, g.entered, "the handler")
	start := time.Now()
	conn.Close()
	select {
	case cause := <-g.canceled:
		t.Logf("canceled %v after the client left (cause: %v)", time.Since(start), cause)
	case <-time.After(ioTimeout):
		t.Fatal("the request context was not canceled after the client hung up")
	}
}

// TestPipelinedRequestDuringSlowHandler: a request sent while the previous
// one runs (so the watcher may read its first byte) is served intact, and
// its arrival does not cancel the running request.
func TestPipelinedRequestDuringSlowHandler(t *testing.T) {
	for _, second := range []string{req("GET", "/small"), req("POST", "/read-body", "Content-Length: 5\r\n") + "hello", req("GET", "/echo", "X-Fallback: 1\r\n")} {
		t.Run(strings.Fields(second)[1], func(t *testing.T) {
			g := newGate()
			rec := &recorder{}
			front := startFront(t, gated(g, rec), takeUnlessMarked)
			conn, br := dial(t, front.addr)
			send(t, conn, req("GET", "/slow"))
			waitFor(t, g.entered, "the handler")
			// Give the watcher (armed 10 ms into a request) time to start
			// reading, so that it, not the connection loop, takes the first
			// byte below. The assertions hold either way; the pause only
			// makes the stash path the one exercised.
			time.Sleep(50 * time.Millisecond)
			send(t, conn, second)
			time.Sleep(50 * time.Millisecond) // likewise: let the watcher take the byte
			close(g.release)

			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if string(body) != "finished" {
				select {
				case cause := <-g.canceled:
					t.Fatalf("the slow request was canceled: %v", cause)
				default:
				}
				t.Fatalf("slow response body %q", body)
			}
			resp, err = http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("second response: %v", err)
			}
			body, _ = io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || len(body) == 0 {
				t.Fatalf("second response %d %q", resp.StatusCode, body)
			}
			if strings.Contains(second, "/read-body") && string(body) != `5 "hello" <nil>` {
				t.Errorf("second request body arrived as %q", body)
			}
			if strings.Contains(second, "/echo") && !strings.Contains(string(body), `method="GET" uri="/echo"`) {
				t.Errorf("second request arrived as %q", body)
			}
			t.Logf("served: %v", rec.list())
		})
	}
}

// TestFailedWriteCancelsRequest: once a write to a departed client fails,
// the request's context is canceled, as net/http does.
func TestFailedWriteCancelsRequest(t *testing.T) {
	wroteErr := make(chan error, 1)
	ctxErr := make(chan error, 1)
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		chunk := []byte(strings.Repeat("w", 64<<10))
		for {
			if _, err := w.Write(chunk); err != nil {
				wroteErr <- err
				break
			}
		}
		select {
		case <-r.Context().Done():
			ctxErr <- context.Cause(r.Context())
		case <-time.After(ioTimeout):
			ctxErr <- nil
		}
	})
	front := startFront(t, h, nil)
	conn, _ := dial(t, front.addr)
	send(t, conn, req("GET", "/write-forever"))
	waitFor(t, started, "the handler")
	// Close with unread data, so the server's writes fail (reset).
	conn.Close()
	select {
	case err := <-wroteErr:
		t.Logf("write failed: %v", err)
	case <-time.After(ioTimeout):
		t.Fatal("writes to a closed client never failed")
	}
	if err := <-ctxErr; err == nil {
		t.Error("the request context was not canceled after the write failed")
	} else {
		t.Logf("cause: %v", err)
	}
}

// TestReadHeaderTimeout: a head that stops arriving ends the connection as
// net/http does.
func TestReadHeaderTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	h := routes(nil, equivalenceHandlers())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := &http.Server{Handler: h, ErrorLog: discardLog, ReadHeaderTimeout: timeout}
	go func() { _ = plain.Serve(ln) }()
	t.Cleanup(func() { _ = plain.Close() })
	front := startFront(t, h, nil, func(s *httpfront.Server) { s.Fallback.ReadHeaderTimeout = timeout })

	partial := []step{get(req("GET", "/small")), {raw: "GET /small HTTP/1.1\r\nHo", methods: nil}}
	want := transcript(t, ln.Addr().String(), partial...)
	got := transcript(t, front.addr, partial...)
	if got != want {
		t.Errorf("bytes differ from net/http\nnet/http:  %q\nhttpfront: %q", want, got)
	}
}

// TestReadHeaderTimeoutSilentClient: net/http applies ReadHeaderTimeout to
// a new connection's first request from the moment it reads, so a client
// that connects and sends nothing is dropped; httpfront must not keep such
// connections forever.
func TestReadHeaderTimeoutSilentClient(t *testing.T) {
	const timeout = 100 * time.Millisecond
	h := routes(nil, equivalenceHandlers())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := &http.Server{Handler: h, ErrorLog: discardLog, ReadHeaderTimeout: timeout}
	go func() { _ = plain.Serve(ln) }()
	t.Cleanup(func() { _ = plain.Close() })
	front := startFront(t, h, nil, func(s *httpfront.Server) { s.Fallback.ReadHeaderTimeout = timeout })

	for _, s := range []struct{ name, addr string }{{"net/http", ln.Addr().String()}, {"httpfront", front.addr}} {
		conn, br := dial(t, s.addr)
		_ = conn.SetReadDeadline(time.Now().Add(20 * timeout))
		start := time.Now()
		_, err := br.ReadByte()
		if err == nil || errKind(err) != "closed" {
			t.Errorf("%s: silent connection not closed: %v", s.name, err)
		} else {
			t.Logf("%s closed a silent connection after %v", s.name, time.Since(start))
		}
	}
}

// TestHalfCloseDuringSlowHandler: a client that sends a request and shuts
// its sending side gets the same bytes from both servers (net/http cancels
// the request at the EOF and still answers).
func TestHalfCloseDuringSlowHandler(t *testing.T) {
	run := func(addr string, g *gate) string {
		conn, br := dial(t, addr)
		send(t, conn, req("GET", "/slow"))
		waitFor(t, g.entered, "the handler")
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-g.canceled:
		case <-time.After(ioTimeout):
			t.Fatal("request not canceled at the client's EOF")
		}
		var out strings.Builder
		if _, err := io.Copy(&out, br); err != nil && errKind(err) != "closed" {
			t.Errorf("read: %v", err)
		}
		return normalizeDate(out.String())
	}
	plainGate, frontGate := newGate(), newGate()
	plain := startPlain(t, gated(plainGate, nil))
	front := startFront(t, gated(frontGate, nil), nil)
	want := run(plain, plainGate)
	got := run(front.addr, frontGate)
	if got != want {
		t.Errorf("bytes differ from net/http\nnet/http:  %q\nhttpfront: %q", want, got)
	}
}

// TestServeAfterClose: Serve on a closed server returns at once, and Close
// and Shutdown may be repeated.
func TestServeAfterClose(t *testing.T) {
	front := startFront(t, routes(nil, equivalenceHandlers()), nil)
	if err := front.srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := front.serveResult(); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve = %v, want http.ErrServerClosed", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := front.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Close = %v, want http.ErrServerClosed", err)
	}
	if err := front.srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if err := front.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown after Close: %v", err)
	}
}

// TestContextCanceledAfterHandler: as with net/http, a request's context
// ends when its handler returns, so work started from it stops.
func TestContextCanceledAfterHandler(t *testing.T) {
	done := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		go func() {
			<-ctx.Done()
			close(done)
		}()
		_, _ = io.WriteString(w, "ok")
	})
	front := startFront(t, h, nil)
	conn, br := dial(t, front.addr)
	send(t, conn, req("GET", "/"))
	if err := readResponse(br, "GET"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, done, "the request context to end after the handler returned")
}

// TestDateHeader: the Date httpfront writes is the current time in
// http.TimeFormat (the equivalence tests mask its value).
func TestDateHeader(t *testing.T) {
	front := startFront(t, routes(nil, equivalenceHandlers()), nil)
	for range 2 {
		conn, br := dial(t, front.addr)
		send(t, conn, req("GET", "/small"))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		d, err := time.Parse(http.TimeFormat, resp.Header.Get("Date"))
		if err != nil {
			t.Fatalf("Date %q: %v", resp.Header.Get("Date"), err)
		}
		if skew := time.Since(d); skew < -time.Second || skew > 2*time.Second {
			t.Errorf("Date %v is %v away from now", d, skew)
		}
	}
}

// TestConcurrentConnections runs keep-alive connections in parallel (for
// the race detector) and checks every answer.
func TestConcurrentConnections(t *testing.T) {
	front := startFront(t, routes(nil, equivalenceHandlers()), takeUnlessMarked)
	type want struct {
		raw, method, body string
	}
	script := []want{
		{req("GET", "/small"), "GET", "hello"},
		{req("POST", "/read-body", "Content-Length: 3\r\n") + "abc", "POST", `3 "abc" <nil>`},
		{req("GET", "/big"), "GET", strings.Repeat("a", 3000)},
		{req("HEAD", "/cl"), "HEAD", ""},
		{req("GET", "/trailer-declared"), "GET", "body"},
		{req("GET", "/small", "X-Fallback: 1\r\n"), "GET", "hello"}, // hands the rest of the connection off
		{req("GET", "/cl"), "GET", "hello"},
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			errs <- func() error {
				conn, err := net.DialTimeout("tcp", front.addr, ioTimeout)
				if err != nil {
					return err
				}
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(ioTimeout))
				br := bufio.NewReader(conn)
				for range 10 {
					for _, w := range script {
						if _, err := io.WriteString(conn, w.raw); err != nil {
							return err
						}
						resp, err := http.ReadResponse(br, &http.Request{Method: w.method})
						if err != nil {
							return err
						}
						body, err := io.ReadAll(resp.Body)
						if err != nil {
							return err
						}
						if string(body) != w.body {
							return errors.New("wrong body for " + strings.Fields(w.raw)[1] + ": " + abbreviate(string(body)))
						}
					}
				}
				return nil
			}()
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestReadHeaderTimeoutOnlyBoundsHeads: like net/http (no IdleTimeout),
// neither a slow handler nor a keep-alive pause longer than
// ReadHeaderTimeout ends the connection. The pauses are the condition
// under test, not a wait for behaviour.
func TestReadHeaderTimeoutOnlyBoundsHeads(t *testing.T) {
	const timeout = 25 * time.Millisecond
	slow := func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(3 * timeout)
		_, _ = io.WriteString(w, "slow")
	}
	table := equivalenceHandlers()
	table["/sleepy"] = slow
	h := routes(nil, table)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := &http.Server{Handler: h, ErrorLog: discardLog, ReadHeaderTimeout: timeout}
	go func() { _ = plain.Serve(ln) }()
	t.Cleanup(func() { _ = plain.Close() })
	front := startFront(t, h, nil, func(s *httpfront.Server) { s.Fallback.ReadHeaderTimeout = timeout })

	for _, s := range []struct{ name, addr string }{{"net/http", ln.Addr().String()}, {"httpfront", front.addr}} {
		conn, br := dial(t, s.addr)
		for i, path := range []string{"/sleepy", "/small", "/small"} {
			send(t, conn, req("GET", path))
			if err := readResponse(br, "GET"); err != nil {
				t.Fatalf("%s: request %d (%s): %v", s.name, i, path, err)
			}
			time.Sleep(3 * timeout) // an idle pause longer than ReadHeaderTimeout
		}
	}
}

// TestShutdownWithPartialHead: net/http counts a kept-alive connection as
// idle until a whole request head has arrived, so Shutdown closes one that
// has sent only part of its next head instead of waiting for the rest.
func TestShutdownWithPartialHead(t *testing.T) {
	run := func(t *testing.T, addr string, shutdown func(context.Context) error) {
		conn, br := dial(t, addr)
		send(t, conn, req("GET", "/small"))
		if err := readResponse(br, "GET"); err != nil {
			t.Fatal(err)
		}
		send(t, conn, "GET /sm")
		// The server must have read the partial head before Shutdown
		// looks at the connection; nothing shows when it has, so pause
		// (the pause sets up the condition, it is not waited on).
		time.Sleep(50 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v (it waited for the rest of the head)", err)
		}
		expectClosed(t, br)
	}
	h := routes(nil, equivalenceHandlers())
	t.Run("net/http", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: h, ErrorLog: discardLog}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		run(t, ln.Addr().String(), srv.Shutdown)
	})
	t.Run("httpfront", func(t *testing.T) {
		front := startFront(t, h, nil)
		run(t, front.addr, front.srv.Shutdown)
	})
}

// TestStreamingClientLeaves: a handler streaming with Flush (an event
// stream) while the watcher runs sees its context canceled once the client
// hangs up, and the bytes it got before are intact chunks.
func TestStreamingClientLeaves(t *testing.T) {
	canceled := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-r.Context().Done():
				close(canceled)
				return
			case <-tick.C:
				_, _ = io.WriteString(w, "data: "+strings.Repeat("e", i%7)+"\n\n")
				if err := rc.Flush(); err != nil {
					<-r.Context().Done() // a failed flush cancels the request too
					close(canceled)
					return
				}
			}
		}
	})
	front := startFront(t, h, nil)
	conn, br := dial(t, front.addr)
	send(t, conn, req("GET", "/events"))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Transfer-Encoding") != "" || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("stream not chunked: %v %v", resp.TransferEncoding, resp.Header)
	}
	events := bufio.NewScanner(resp.Body)
	for i := 0; i < 40; i++ { // well past the watcher's start
		if !events.Scan() {
			t.Fatalf("stream ended: %v", events.Err())
		}
		if line := events.Text(); line != "" && !strings.HasPrefix(line, "data: ") {
			t.Fatalf("corrupt event line %q", line)
		}
	}
	conn.Close()
	waitFor(t, canceled, "the stream's context to end after the client left")
}

// TestShutdownAndCloseTogether: Shutdown and Close called at once both
// return (net/http allows it; they both wait for the fallback's Serve).
func TestShutdownAndCloseTogether(t *testing.T) {
	// The two must race for the fallback's result: a few hundred rounds
	// hung the earlier code within seconds.
	for range 300 {
		front := startFront(t, gated(newGate(), nil), nil)
		done := make(chan struct{}, 2)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			defer cancel()
			_ = front.srv.Shutdown(ctx)
			done <- struct{}{}
		}()
		go func() { _ = front.srv.Close(); done <- struct{}{} }()
		for range 2 {
			select {
			case <-done:
			case <-time.After(2 * ioTimeout):
				t.Fatal("Shutdown and Close called together did not both return")
			}
		}
	}
}

// TestHandlerHeaderKeptAfterWriteHeader: the headers a 304 must not carry
// are left out of the response, not deleted from the handler's map, as in
// net/http (and on the wire the two agree).
func TestHandlerHeaderKeptAfterWriteHeader(t *testing.T) {
	seen := make(chan string, 1)
	h := routes(nil, map[string]http.HandlerFunc{"/304": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "5")
		w.WriteHeader(http.StatusNotModified)
		seen <- fmt.Sprint(w.Header())
	}})
	plainAddr, front := startPlain(t, h), startFront(t, h, nil)
	wantWire := transcript(t, plainAddr, get(req("GET", "/304")))
	want := <-seen
	gotWire := transcript(t, front.addr, get(req("GET", "/304")))
	got := <-seen
	if got != want {
		t.Errorf("handler's header after WriteHeader(304): httpfront %s, net/http %s", got, want)
	}
	if gotWire != wantWire {
		t.Errorf("bytes differ from net/http\nnet/http:  %q\nhttpfront: %q", wantWire, gotWire)
	}
}
