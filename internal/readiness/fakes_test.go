package readiness

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/clock"
)

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// pollClock is a clock.Fake that also tells the test when a probe starts a
// poll wait (clock.Sleep uses NewTimer; the attempt bound uses AfterFunc and
// is not reported). drive uses it to advance exactly to the next wake-up,
// so the schedules the probes follow are deterministic.
type pollClock struct {
	*clock.Fake
	armed chan struct{}

	// armMu makes arming a poll wait and advancing to the next wake-up
	// mutually exclusive, so a wait's recorded wake-up is the one the fake
	// clock fires it at.
	armMu sync.Mutex

	// mu guards pending.
	mu      sync.Mutex
	pending map[*pollTimer]struct{}
}

func newPollClock() *pollClock {
	return &pollClock{
		Fake:    clock.NewFake(epoch),
		armed:   make(chan struct{}, 4096),
		pending: make(map[*pollTimer]struct{}),
	}
}

type pollTimer struct {
	clk   *pollClock
	c     chan time.Time
	when  time.Time
	inner clock.Timer
}

func (c *pollClock) NewTimer(d time.Duration) clock.Timer {
	c.armMu.Lock()
	t := &pollTimer{clk: c, c: make(chan time.Time, 1), when: c.Now().Add(d)}
	c.mu.Lock()
	c.pending[t] = struct{}{}
	c.mu.Unlock()
	t.inner = c.Fake.AfterFunc(d, func() {
		c.forget(t)
		t.c <- t.when
	})
	c.armMu.Unlock()
	c.armed <- struct{}{}
	return t
}

// advanceIfAllWaiting moves the clock to the earliest armed poll wait, but
// only once at least polling probes are waiting: the clock never moves while
// a probe is between two waits, so every probe's schedule is deterministic.
func (c *pollClock) advanceIfAllWaiting(polling int) {
	c.armMu.Lock()
	defer c.armMu.Unlock()
	c.mu.Lock()
	waiting := len(c.pending)
	c.mu.Unlock()
	if waiting < polling {
		return
	}
	if wake, ok := c.nextWake(); ok {
		c.Advance(max(0, wake.Sub(c.Now())))
	}
}

func (c *pollClock) forget(t *pollTimer) {
	c.mu.Lock()
	delete(c.pending, t)
	c.mu.Unlock()
}

// nextWake is the earliest armed poll wait.
func (c *pollClock) nextWake() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first time.Time
	for t := range c.pending {
		if first.IsZero() || t.when.Before(first) {
			first = t.when
		}
	}
	return first, !first.IsZero()
}

func (t *pollTimer) C() <-chan time.Time { return t.c }

func (t *pollTimer) Stop() bool {
	t.clk.forget(t)
	return t.inner.Stop()
}

// Reset is not used by clock.Sleep, the only caller of NewTimer here.
func (t *pollTimer) Reset(time.Duration) bool {
	panic("pollTimer.Reset: not used by the prober")
}

// drive runs fn (a WaitReady call) in which polling probes retry at the
// same time, advancing the clock from one poll wake-up to the next. It
// returns fn's error and the fake time that passed.
func (c *pollClock) drive(t *testing.T, polling int, fn func() error) (error, time.Duration) {
	t.Helper()
	start := c.Now()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	stuck := time.NewTimer(10 * time.Second)
	defer stuck.Stop()
	for {
		select {
		case err := <-done:
			return err, c.Now().Sub(start)
		case <-c.armed:
			c.advanceIfAllWaiting(polling)
		case <-stuck.C:
			c.mu.Lock()
			n := len(c.pending)
			c.mu.Unlock()
			t.Fatalf("WaitReady did not return within 10s of real time (fake now +%v, %d poll waits pending, %d timers armed)", c.Now().Sub(start), n, c.Timers())
		}
	}
}

// call is one request the fake doer received.
type call struct {
	at   time.Duration // fake time since epoch
	host string        // Host header
	addr string        // dialled address
	path string
	raw  string // raw query
	ua   string
}

// fakeDoer answers with respond and records every request. It tracks
// requests in flight and bodies left open so tests can prove nothing leaks.
type fakeDoer struct {
	clk     clock.Clock
	respond func(req *http.Request, n int) (*http.Response, error)

	inFlight   atomic.Int32
	openBodies atomic.Int32

	// mu guards calls.
	mu    sync.Mutex
	calls []call
}

func (d *fakeDoer) Do(req *http.Request) (*http.Response, error) {
	d.inFlight.Add(1)
	defer d.inFlight.Add(-1)
	d.mu.Lock()
	d.calls = append(d.calls, call{
		at:   d.clk.Now().Sub(epoch),
		host: req.Host,
		addr: req.URL.Host,
		path: req.URL.Path,
		raw:  req.URL.RawQuery,
		ua:   req.Header.Get("User-Agent"),
	})
	n := len(d.calls)
	d.mu.Unlock()
	resp, err := d.respond(req, n)
	if resp != nil {
		d.openBodies.Add(1)
		resp.Body = &trackedBody{Reader: strings.NewReader("body"), open: &d.openBodies}
	}
	return resp, err
}

func (d *fakeDoer) Calls() []call {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]call(nil), d.calls...)
}

// CallsTo returns the fake times of the requests for path ("/" is the port probe).
func (d *fakeDoer) CallsTo(host, path string) []time.Duration {
	var out []time.Duration
	for _, c := range d.Calls() {
		if c.host == host && c.path == path {
			out = append(out, c.at)
		}
	}
	return out
}

type trackedBody struct {
	io.Reader
	open   *atomic.Int32
	closed atomic.Bool
}

func (b *trackedBody) Close() error {
	if b.closed.CompareAndSwap(false, true) {
		b.open.Add(-1)
	}
	return nil
}

func status(code int) *http.Response {
	return &http.Response{StatusCode: code, Header: http.Header{}}
}

// blockUntilDone waits for the request's context, as a hung app would make
// it, and fails the way net/http does: the context's error, not its cause.
func blockUntilDone(req *http.Request) (*http.Response, error) {
	<-req.Context().Done()
	return nil, &url.Error{Op: "Get", URL: req.URL.String(), Err: req.Context().Err()}
}

// assertQuiet checks that nothing the gate started is still running: no
// request in flight, every body closed, no timer armed.
func assertQuiet(t *testing.T, d *fakeDoer, c *pollClock) {
	t.Helper()
	if n := d.inFlight.Load(); n != 0 {
		t.Errorf("%d requests still in flight after WaitReady returned", n)
	}
	if n := d.openBodies.Load(); n != 0 {
		t.Errorf("%d response bodies left open", n)
	}
	if n := c.Timers(); n != 0 {
		t.Errorf("%d timers still armed after WaitReady returned", n)
	}
}
