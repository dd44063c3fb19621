package router

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/clock"
	"github.com/lunora/lunorad/internal/rawio"
)

// Unit tests of connPool (upstream.go) against raw backends that count
// their connections, plus the router-level behaviour of a connection the
// container closed while idle.

// poolRequest is what forwardInline passes to connPool.roundTrip.
type poolRequest struct {
	req *http.Request
	x   exchange
}

func (pr poolRequest) roundTrip(ctx context.Context, p *connPool, addr string) (*http.Response, error) {
	return p.roundTrip(ctx, addr, pr.req, pr.x)
}

// poolGet is one GET exchange, as forwardInline builds it.
func poolGet() poolRequest {
	return poolRequest{req: &http.Request{Method: http.MethodGet}, x: exchange{
		writeRequest: func(w *bufio.Writer) error {
			_, err := w.WriteString("GET /x HTTP/1.1\r\nHost: container\r\n\r\n")
			return err
		},
		replayable: true,
	}}
}

// poolPost is one POST exchange without an idempotency key.
func poolPost() poolRequest {
	return poolRequest{req: &http.Request{Method: http.MethodPost}, x: exchange{
		writeRequest: func(w *bufio.Writer) error {
			_, err := w.WriteString("POST /x HTTP/1.1\r\nHost: container\r\nContent-Length: 2\r\n\r\nhi")
			return err
		},
		replayable: false,
	}}
}

// serveAnswers answers every request on a connection with answer until the
// client closes it.
func serveAnswers(answer string) func(*rawConn) {
	return func(c *rawConn) {
		for {
			if _, _, err := c.readRequest(); err != nil {
				return
			}
			if c.write(answer) != nil {
				return
			}
		}
	}
}

const answerOK = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// roundTripBody runs pr on p and reads the whole body.
func roundTripBody(t *testing.T, p *connPool, addr string, pr poolRequest) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	res, err := pr.roundTrip(ctx, p, addr)
	if err != nil {
		t.Fatalf("roundTrip: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return res.StatusCode, string(b)
}

func newTestConnPool(t *testing.T) *connPool {
	p := newConnPool()
	t.Cleanup(p.closeIdle)
	return p
}

func idleCount(p *connPool, addr string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle[addr])
}

func TestConnPoolReusesAConnection(t *testing.T) {
	b := startRawBackend(t, serveAnswers(answerOK))
	p := newTestConnPool(t)
	for i := range 5 {
		if status, body := roundTripBody(t, p, b.addr(), poolGet()); status != http.StatusOK || body != "ok" {
			t.Fatalf("request %d: %d %q", i, status, body)
		}
	}
	if n := b.accepts.Load(); n != 1 {
		t.Errorf("5 sequential GETs used %d connections, want 1", n)
	}
	if n := idleCount(p, b.addr()); n != 1 {
		t.Errorf("%d idle connections, want 1", n)
	}
}

// A response without a body (HEAD, 204) gives its connection back at once.
func TestConnPoolReusesAfterBodilessResponses(t *testing.T) {
	b := startRawBackend(t, serveAnswers("HTTP/1.1 204 No Content\r\n\r\n"))
	p := newTestConnPool(t)
	for range 3 {
		if status, _ := roundTripBody(t, p, b.addr(), poolGet()); status != http.StatusNoContent {
			t.Fatalf("status %d", status)
		}
	}
	if n := b.accepts.Load(); n != 1 {
		t.Errorf("3 GETs answered 204 used %d connections, want 1", n)
	}
}

// serveOnceThenClose answers one request per connection, then closes it
// as a container's own idle timeout would.
func serveOnceThenClose(c *rawConn) {
	if _, _, err := c.readRequest(); err == nil {
		_ = c.write(answerOK)
	}
}

func TestConnPoolReplacesAConnectionClosedWhileIdleForAGet(t *testing.T) {
	b := startRawBackend(t, serveOnceThenClose)
	p := newTestConnPool(t)
	if status, _ := roundTripBody(t, p, b.addr(), poolGet()); status != http.StatusOK {
		t.Fatalf("first GET: %d", status)
	}
	b.waitEnded(t, 1) // the kept-alive connection is now closed on the container's side
	if status, body := roundTripBody(t, p, b.addr(), poolGet()); status != http.StatusOK || body != "ok" {
		t.Fatalf("GET on the stale connection: %d %q", status, body)
	}
	if n := b.accepts.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the stale one replaced once)", n)
	}
}

// A connection closed while idle is noticed before it is reused (peerOpen),
// for a POST as for a GET: nothing is written on it.
func TestConnPoolDropsAConnectionClosedWhileIdleForAPost(t *testing.T) {
	b := startRawBackend(t, serveOnceThenClose)
	p := newTestConnPool(t)
	if status, _ := roundTripBody(t, p, b.addr(), poolGet()); status != http.StatusOK {
		t.Fatalf("first GET: %d", status)
	}
	b.waitEnded(t, 1)
	if status, body := roundTripBody(t, p, b.addr(), poolPost()); status != http.StatusOK || body != "ok" {
		t.Fatalf("POST after the idle close: %d %q", status, body)
	}
	if n := b.accepts.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// answerThenDropNext answers the first request of a connection, then reads
// the second and closes without a byte of answer: the connection looked
// alive when reused, and the request may have reached the container.
func answerThenDropNext(c *rawConn) {
	if _, _, err := c.readRequest(); err != nil {
		return
	}
	_ = c.write(answerOK)
	_, _, _ = c.readRequest()
}

// A POST without an idempotency key is not replayed by the pool when a
// reused connection drops after the request was written; a GET is, once.
func TestConnPoolReplaysOnlyReplayableRequestsOnADroppedReusedConnection(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pr      poolRequest
		replay  bool
		accepts int64
	}{
		{"POST", poolPost(), false, 1},
		{"GET", poolGet(), true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startRawBackend(t, answerThenDropNext)
			p := newTestConnPool(t)
			if status, _ := roundTripBody(t, p, b.addr(), poolGet()); status != http.StatusOK {
				t.Fatalf("first GET: %d", status)
			}
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			defer cancel()
			res, err := tc.pr.roundTrip(ctx, p, b.addr())
			if tc.replay {
				if err != nil {
					t.Fatalf("replayable request failed: %v", err)
				}
				res.Body.Close()
			} else {
				if err == nil {
					res.Body.Close()
					t.Fatalf("answered %d, want an error", res.StatusCode)
				}
				if f := proxyFailure(ctx, ctx, err); f.body != bodyDisconnected || !f.retryable {
					t.Errorf("classified as %d %q retryable=%v (%v), want the disconnect body", f.status, f.body, f.retryable, err)
				}
			}
			if n := b.accepts.Load(); n != tc.accepts {
				t.Errorf("%d connections, want %d", n, tc.accepts)
			}
		})
	}
}

// Through the router, the same situation must end as it does through
// ReverseProxy: the client gets the container's answer.
func TestRouterPostAfterIdleCloseMatchesReverseProxy(t *testing.T) {
	// With one attempt only a bodiless POST goes inline (a body is then
	// streamed, through ReverseProxy).
	for _, tc := range []struct{ attempts, body string }{{"", "payload"}, {"", ""}, {"1", ""}} {
		t.Run(fmt.Sprintf("attempts=%q body=%q", tc.attempts, tc.body), func(t *testing.T) {
			testPostAfterIdleClose(t, tc.attempts, tc.body)
		})
	}
}

func testPostAfterIdleClose(t *testing.T, attempts, body string) {
	b := startRawBackend(t, serveOnceThenClose)
	envs := newPathEnvs(t, b.addr())
	var results [len(forwardPaths)]result
	for i, e := range envs {
		if r := e.get(fetchPrefix + "/warm"); r.err != nil || r.status != http.StatusOK {
			t.Fatalf("%s: warm-up GET %d %v", forwardPaths[i].name, r.status, r.err)
		}
		b.waitEnded(t, 1)
		var waits []time.Duration
		req := e.request(http.MethodPost, fetchPrefix+"/p", strings.NewReader(body))
		if attempts != "" {
			req.Header.Set(headerAttempts, attempts)
		}
		results[i], waits = e.drive(req)
		results[i].header = nil // Date and the like; status and body are compared
		t.Logf("%s: %d backoff waits %v", forwardPaths[i].name, len(waits), waits)
		b.waitAllEnded(t)
	}
	// The inline path probes an idle connection before reusing it, so it
	// always gets the container's answer. http.Transport learns of the
	// close from its read loop, which usually, not always, wins the race
	// with the next request (seen in CI): then the client gets the
	// contract's disconnect body, which is also what the contract allows.
	if results[0].status != http.StatusOK || results[0].body != "ok" {
		t.Errorf("inline: %d %q, want the container's 200", results[0].status, results[0].body)
	}
	rp := results[1]
	if !(rp.status == http.StatusOK && rp.body == "ok") && !(rp.status == http.StatusInternalServerError && rp.body == bodyDisconnected) {
		t.Errorf("reverseproxy: %d %q %v, want the container's 200 or the disconnect body", rp.status, rp.body, rp.err)
	}
}

func TestConnPoolDropsConnectionsIdleTooLong(t *testing.T) {
	b := startRawBackend(t, serveAnswers(answerOK))
	p := newTestConnPool(t)
	fc := clock.NewFake(time.Unix(1_700_000_000, 0))
	p.now = fc.Now
	roundTripBody(t, p, b.addr(), poolGet())
	fc.Advance(idleConnTimeout - time.Second)
	roundTripBody(t, p, b.addr(), poolGet())
	if n := b.accepts.Load(); n != 1 {
		t.Fatalf("a connection idle for less than idleConnTimeout was not reused: %d connections", n)
	}
	fc.Advance(idleConnTimeout)
	roundTripBody(t, p, b.addr(), poolGet())
	if n := b.accepts.Load(); n != 2 {
		t.Errorf("%d connections, want 2: the expired one must not be reused", n)
	}
	b.waitEnded(t, 1) // the pool closed the expired connection
}

func TestConnPoolCloseIdleClosesIdleConnections(t *testing.T) {
	b := startRawBackend(t, serveAnswers(answerOK))
	p := newTestConnPool(t)
	roundTripBody(t, p, b.addr(), poolGet())
	p.closeIdle()
	b.waitEnded(t, 1)
	if n := idleCount(p, b.addr()); n != 0 {
		t.Errorf("%d idle connections after closeIdle", n)
	}
	roundTripBody(t, p, b.addr(), poolGet())
	if n := b.accepts.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestConnPoolClosesConnectionsBeyondMaxIdle(t *testing.T) {
	p := newTestConnPool(t)
	const addr = "127.0.0.1:1"
	peers := make([]net.Conn, 0, maxIdleConnsPerHost+1)
	for range maxIdleConnsPerHost + 1 {
		ours, theirs := net.Pipe()
		t.Cleanup(func() { theirs.Close() })
		peers = append(peers, theirs)
		p.put(&upstreamConn{conn: ours, addr: addr})
	}
	if n := idleCount(p, addr); n != maxIdleConnsPerHost {
		t.Errorf("%d idle connections, want %d", n, maxIdleConnsPerHost)
	}
	isClosed := func(c net.Conn) bool {
		_ = c.SetReadDeadline(aLongTimeAgo)
		_, err := c.Read(make([]byte, 1))
		return errors.Is(err, io.EOF)
	}
	if !isClosed(peers[maxIdleConnsPerHost]) {
		t.Error("the connection returned beyond maxIdleConnsPerHost was kept open")
	}
	if isClosed(peers[0]) || isClosed(peers[maxIdleConnsPerHost-1]) {
		t.Error("a connection within maxIdleConnsPerHost was closed")
	}
}

func TestConnPoolClosesAnAbandonedBody(t *testing.T) {
	body := strings.Repeat("x", 100_000)
	b := startRawBackend(t, serveAnswers("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"+body))
	p := newTestConnPool(t)
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	res, err := poolGet().roundTrip(ctx, p, b.addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(res.Body, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	b.waitEnded(t, 1) // closed, not drained and kept
	if n := idleCount(p, b.addr()); n != 0 {
		t.Errorf("%d idle connections after an abandoned body", n)
	}
	if status, got := roundTripBody(t, p, b.addr(), poolGet()); status != http.StatusOK || got != body {
		t.Fatalf("next GET: %d, %d bytes", status, len(got))
	}
	if n := b.accepts.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestConnPoolDoesNotReuseAConnectionClosedByTheResponse(t *testing.T) {
	for _, answer := range []string{
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
		"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
	} {
		t.Run(strings.SplitN(answer, "\r\n", 3)[0]+" "+strings.SplitN(answer, "\r\n", 3)[1], func(t *testing.T) {
			b := startRawBackend(t, serveAnswers(answer))
			p := newTestConnPool(t)
			roundTripBody(t, p, b.addr(), poolGet())
			b.waitEnded(t, 1) // the pool closed it; the backend kept it open
			roundTripBody(t, p, b.addr(), poolGet())
			if n := b.accepts.Load(); n != 2 {
				t.Errorf("%d connections, want 2", n)
			}
		})
	}
}

// A container that never answers holds the exchange only until the
// context ends.
func TestConnPoolCancelUnblocksAnUnansweredRequest(t *testing.T) {
	gotRequest := make(chan struct{}, 1)
	b := startRawBackend(t, func(c *rawConn) {
		if _, _, err := c.readRequest(); err != nil {
			return
		}
		gotRequest <- struct{}{}
		_, _, _ = c.readRequest() // until the pool closes the connection
	})
	p := newTestConnPool(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("the test gave up")
	done := make(chan error, 1)
	go func() {
		res, err := poolGet().roundTrip(ctx, p, b.addr())
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	select {
	case <-gotRequest:
	case <-time.After(ioTimeout):
		cancel(nil)
		t.Fatal("the backend got no request")
	}
	cancel(cause)
	select {
	case err := <-done:
		if !errors.Is(err, cause) {
			t.Errorf("roundTrip error %v, want it to wrap the cancel cause", err)
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("roundTrip error %v, want it to wrap the read's deadline error", err)
		}
	case <-time.After(ioTimeout):
		t.Fatal("roundTrip did not return after the context was cancelled")
	}
	b.waitEnded(t, 1)
	if n := idleCount(p, b.addr()); n != 0 {
		t.Errorf("%d idle connections after a cancelled exchange", n)
	}
}

// Cancelling while the body streams ends the body read, and the connection
// is not reused.
func TestConnPoolCancelUnblocksABodyRead(t *testing.T) {
	b := startRawBackend(t, func(c *rawConn) {
		if _, _, err := c.readRequest(); err != nil {
			return
		}
		if c.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello") != nil {
			return
		}
		_, _, _ = c.readRequest() // until the pool closes the connection
	})
	p := newTestConnPool(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	res, err := poolGet().roundTrip(ctx, p, b.addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(res.Body, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	cancel(errors.New("stop"))
	if _, err := io.ReadAll(res.Body); err == nil {
		t.Error("reading the rest of the body after cancel succeeded")
	}
	res.Body.Close()
	b.waitEnded(t, 1)
	if n := idleCount(p, b.addr()); n != 0 {
		t.Errorf("%d idle connections after a cancelled body", n)
	}
}

// countingAwait records the writes that end a request.
type countingAwait struct {
	w     io.Writer
	calls int
	last  []byte
}

func (a *countingAwait) WriteThenAwait(p []byte) (int, error) {
	a.calls++
	a.last = append(a.last[:0], p...)
	return a.w.Write(p)
}

// The write that ends a request, and only that one, goes through the
// socket's WriteThenAwait (rawio: no read that finds nothing yet), also when
// the request is larger than the writer's buffer; raw builds wire it.
func TestConnPoolEndsEachRequestWithWriteThenAwait(t *testing.T) {
	b := startRawBackend(t, serveAnswers(answerOK))
	p := newTestConnPool(t)
	c, _, err := p.get(context.Background(), b.addr())
	if err != nil {
		t.Fatal(err)
	}
	if rawio.Enabled && c.rw.aw == nil {
		t.Fatal("a raw socket's WriteThenAwait is not wired")
	}
	counter := &countingAwait{w: c.rw.w}
	c.rw.aw = counter
	p.put(c)

	body := strings.Repeat("b", 3*upstreamBufferSize+100)
	head := fmt.Sprintf("POST /x HTTP/1.1\r\nHost: container\r\nContent-Length: %d\r\n\r\n", len(body))
	post := poolRequest{req: &http.Request{Method: http.MethodPost}, x: exchange{
		writeRequest: func(w *bufio.Writer) error {
			_, err := w.WriteString(head + body)
			return err
		},
	}}
	for i, pr := range []poolRequest{poolGet(), post} {
		before := counter.calls
		if status, got := roundTripBody(t, p, b.addr(), pr); status != http.StatusOK || got != "ok" {
			t.Fatalf("request %d: %d %q", i, status, got)
		}
		if counter.calls != before+1 {
			t.Fatalf("request %d: %d WriteThenAwait calls, want 1", i, counter.calls-before)
		}
	}
	if want := (head + body)[len(head+body)-len(counter.last):]; string(counter.last) != want || len(counter.last) == 0 {
		t.Errorf("the awaited write was %d bytes, not the request's end", len(counter.last))
	}
	if n := b.accepts.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}
