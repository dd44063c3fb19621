package readiness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/lifecycle"
)

const ms = time.Millisecond

func newTestProber(c *pollClock, d *fakeDoer) *Prober {
	d.clk = c
	return New(Options{Clock: c, Doer: d, InitialInterval: 2 * ms, MaxInterval: 20 * ms})
}

func webTarget(timeout time.Duration, checks ...config.ReadyCheck) lifecycle.ProbeTarget {
	return lifecycle.ProbeTarget{
		Container: "web",
		Instance:  "i-1",
		Addrs:     map[int]string{8080: "127.0.0.1:41000", 9090: "127.0.0.1:41001"},
		Ports:     []int{8080},
		ReadyOn:   checks,
		Timeout:   timeout,
	}
}

func resetErr() error {
	return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
}

func TestPortProbeRetriesResetAndEOFThenAcceptsAnyStatus(t *testing.T) {
	c := newPollClock()
	notReady := []error{
		resetErr(),
		io.EOF,
		errors.New("http: server closed idle connection"),
		&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)},
	}
	d := &fakeDoer{respond: func(_ *http.Request, n int) (*http.Response, error) {
		if n <= len(notReady) {
			return nil, notReady[n-1]
		}
		return status(http.StatusNotFound), nil // any status proves the app answers
	}}
	p := newTestProber(c, d)

	err, elapsed := c.drive(t, 1, func() error { return p.WaitReady(context.Background(), webTarget(time.Second)) })
	if err != nil {
		t.Fatalf("WaitReady = %v, want nil", err)
	}
	// Backoff 2, 4, 8, 16 ms between the five attempts.
	want := []time.Duration{0, 2 * ms, 6 * ms, 14 * ms, 30 * ms}
	if got := d.CallsTo("ping", "/"); !slices.Equal(got, want) {
		t.Errorf("port probe times = %v, want %v", got, want)
	}
	if elapsed != 30*ms {
		t.Errorf("elapsed = %v, want 30ms", elapsed)
	}
	for _, call := range d.Calls() {
		if call.addr != "127.0.0.1:41000" || call.ua != userAgent {
			t.Errorf("port probe went to %q with User-Agent %q", call.addr, call.ua)
		}
	}
	assertQuiet(t, d, c)
}

func TestBackoffGrowsAndCapsAndPortFailureIsReported(t *testing.T) {
	c := newPollClock()
	refused := errors.New("connect: connection refused")
	d := &fakeDoer{respond: func(*http.Request, int) (*http.Response, error) { return nil, refused }}
	p := newTestProber(c, d)

	err, elapsed := c.drive(t, 1, func() error { return p.WaitReady(context.Background(), webTarget(200*ms)) })

	var gaps []time.Duration
	times := d.CallsTo("ping", "/")
	for i := 1; i < len(times); i++ {
		gaps = append(gaps, times[i]-times[i-1])
	}
	// Doubling from 2ms to the 20ms cap; the last wait is cut to the deadline
	// (190ms + 10ms) and one last attempt is made at the deadline itself.
	want := []time.Duration{2 * ms, 4 * ms, 8 * ms, 16 * ms, 20 * ms, 20 * ms, 20 * ms, 20 * ms, 20 * ms, 20 * ms, 20 * ms, 20 * ms, 10 * ms}
	if !slices.Equal(gaps, want) {
		t.Errorf("gaps between attempts = %v, want %v", gaps, want)
	}
	if elapsed != 200*ms {
		t.Errorf("elapsed = %v, want 200ms", elapsed)
	}
	var nre *lifecycle.NotReadyError
	if !errors.As(err, &nre) {
		t.Fatalf("WaitReady = %v, want *lifecycle.NotReadyError", err)
	}
	if nre.Path != "" || nre.Port != 8080 || nre.TimeoutMs != 200 || !errors.Is(nre.LastErr, refused) {
		t.Errorf("NotReadyError = %+v", *nre)
	}
	const msg = `container "web": port 8080 did not answer an HTTP request within 200ms (last error: connect: connection refused)`
	if err.Error() != msg {
		t.Errorf("message = %q\nwant      %q", err.Error(), msg)
	}
	assertQuiet(t, d, c)
}

func TestCheckRetriedUntilItsStatusAfterPortsAnswer(t *testing.T) {
	c := newPollClock()
	d := &fakeDoer{}
	d.respond = func(req *http.Request, _ int) (*http.Response, error) {
		now := c.Now().Sub(epoch)
		switch {
		case req.Host == "ping" && now < 6*ms:
			return nil, io.EOF
		case req.Host == "ping":
			return status(http.StatusInternalServerError), nil
		case now < 6*ms+25*ms:
			return status(http.StatusServiceUnavailable), nil
		default:
			return status(http.StatusOK), nil
		}
	}
	p := newTestProber(c, d)

	err, _ := c.drive(t, 1, func() error {
		return p.WaitReady(context.Background(), webTarget(time.Second, config.ReadyCheck{Path: "/ready", Port: 8080, Status: 200}))
	})
	if err != nil {
		t.Fatalf("WaitReady = %v, want nil", err)
	}
	if got, want := d.CallsTo("ping", "/"), []time.Duration{0, 2 * ms, 6 * ms}; !slices.Equal(got, want) {
		t.Errorf("port probe times = %v, want %v", got, want)
	}
	// Phase 2 starts once the port answered (6ms) with a fresh backoff.
	if got, want := d.CallsTo("container", "/ready"), []time.Duration{6 * ms, 8 * ms, 12 * ms, 20 * ms, 36 * ms}; !slices.Equal(got, want) {
		t.Errorf("check times = %v, want %v", got, want)
	}
	assertQuiet(t, d, c)
}

func TestCheckRequestShape(t *testing.T) {
	c := newPollClock()
	d := &fakeDoer{respond: func(*http.Request, int) (*http.Response, error) { return status(http.StatusNoContent), nil }}
	p := newTestProber(c, d)

	target := webTarget(time.Second, config.ReadyCheck{Path: "health?full=1", Port: 9090, Status: 204})
	if err := p.WaitReady(context.Background(), target); err != nil {
		t.Fatalf("WaitReady = %v", err)
	}
	calls := d.Calls()
	if len(calls) != 2 {
		t.Fatalf("calls = %+v, want a port probe and a check", calls)
	}
	want := call{host: "container", addr: "127.0.0.1:41001", path: "/health", raw: "full=1", ua: userAgent}
	if calls[1] != want {
		t.Errorf("check request = %+v, want %+v", calls[1], want)
	}
}

// Each request of a phase waits until every request of that phase has
// arrived, so sequential probing would never finish.
func TestProbesOfAPhaseRunInParallel(t *testing.T) {
	c := newPollClock()
	arrived := map[string]chan struct{}{"ping": make(chan struct{}), "container": make(chan struct{})}
	var mu sync.Mutex
	seen := map[string]int{}
	d := &fakeDoer{respond: func(req *http.Request, _ int) (*http.Response, error) {
		mu.Lock()
		seen[req.Host]++
		if seen[req.Host] == 2 {
			close(arrived[req.Host])
		}
		mu.Unlock()
		select {
		case <-arrived[req.Host]:
			return status(http.StatusOK), nil
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}}
	p := newTestProber(c, d)
	target := webTarget(time.Second,
		config.ReadyCheck{Path: "/a", Port: 8080, Status: 200},
		config.ReadyCheck{Path: "/b", Port: 9090, Status: 200})
	target.Ports = []int{8080, 9090}

	done := make(chan error, 1)
	go func() { done <- p.WaitReady(context.Background(), target) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("WaitReady = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("probes of one phase did not run in parallel")
	}
	assertQuiet(t, d, c)
}

func TestChecksShareOneDeadline(t *testing.T) {
	c := newPollClock()
	d := &fakeDoer{respond: func(req *http.Request, _ int) (*http.Response, error) {
		if req.Host == "ping" {
			return status(http.StatusOK), nil
		}
		return status(http.StatusServiceUnavailable), nil
	}}
	p := newTestProber(c, d)
	target := webTarget(time.Second,
		config.ReadyCheck{Path: "/a", Port: 8080, Status: 200},
		config.ReadyCheck{Path: "/b", Port: 9090, Status: 204})

	err, elapsed := c.drive(t, 2, func() error { return p.WaitReady(context.Background(), target) })

	// One deadline for the whole gate: 1s, not 1s per check.
	if elapsed != time.Second {
		t.Errorf("elapsed = %v, want 1s (one shared deadline)", elapsed)
	}
	// Both checks polled side by side from the start of phase 2 to the
	// deadline: 0, 2, 6, 14, 30, then every 20ms from 50 to 990, then 1000.
	want := []time.Duration{0, 2 * ms, 6 * ms, 14 * ms, 30 * ms}
	for at := 50 * ms; at < time.Second; at += 20 * ms {
		want = append(want, at)
	}
	want = append(want, time.Second)
	for _, path := range []string{"/a", "/b"} {
		if got := d.CallsTo("container", path); !slices.Equal(got, want) {
			t.Errorf("check %s polled at %v\nwant %v", path, got, want)
		}
	}
	// The first check in config order that had not passed is reported.
	const msg = `container "web": readiness check "/a" (port 8080) did not return 200 within 1000ms`
	if err == nil || err.Error() != msg {
		t.Fatalf("WaitReady = %v\nwant        %s", err, msg)
	}
	var nre *lifecycle.NotReadyError
	if !errors.As(err, &nre) || nre.LastErr == nil || nre.LastErr.Error() != "got status 503" {
		t.Errorf("NotReadyError = %+v, want LastErr \"got status 503\"", nre)
	}
	assertQuiet(t, d, c)
}

func TestFailureNamesTheFirstCheckThatDidNotPass(t *testing.T) {
	c := newPollClock()
	// Everything answers 200: /ready passes, /live (which wants 204) never does.
	d := &fakeDoer{respond: func(*http.Request, int) (*http.Response, error) { return status(http.StatusOK), nil }}
	p := newTestProber(c, d)
	target := webTarget(500*ms,
		config.ReadyCheck{Path: "/ready", Port: 8080, Status: 200},
		config.ReadyCheck{Path: "/live", Port: 9090, Status: 204})

	err, _ := c.drive(t, 1, func() error { return p.WaitReady(context.Background(), target) })

	const msg = `container "web": readiness check "/live" (port 9090) did not return 204 within 500ms`
	if err == nil || err.Error() != msg {
		t.Fatalf("WaitReady = %v\nwant        %s", err, msg)
	}
	var nre *lifecycle.NotReadyError
	if !errors.As(err, &nre) || nre.Status != 204 || nre.Port != 9090 || nre.TimeoutMs != 500 {
		t.Errorf("NotReadyError = %+v", nre)
	}
}

func TestExitedEndsTheGateAtOnce(t *testing.T) {
	for _, hung := range []bool{false, true} {
		t.Run(fmt.Sprintf("hung=%v", hung), func(t *testing.T) {
			c := newPollClock()
			exited := make(chan struct{})
			firstCall := make(chan struct{})
			var once sync.Once
			d := &fakeDoer{respond: func(req *http.Request, _ int) (*http.Response, error) {
				once.Do(func() { close(firstCall) })
				if hung {
					return blockUntilDone(req)
				}
				return nil, io.EOF
			}}
			p := newTestProber(c, d)
			target := webTarget(time.Minute)
			target.Exited = exited
			target.ExitCode = func() int { return 3 }

			done := make(chan error, 1)
			go func() { done <- p.WaitReady(context.Background(), target) }()
			<-firstCall
			close(exited) // the fake clock never moves: the exit alone ends the gate
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("WaitReady did not return after the container exited")
			}
			if !errors.Is(err, lifecycle.ErrExited) {
				t.Fatalf("WaitReady = %v, want an error wrapping lifecycle.ErrExited", err)
			}
			var ee *ExitedError
			if !errors.As(err, &ee) || ee.ExitCode != 3 {
				t.Fatalf("WaitReady = %#v, want *ExitedError with code 3", err)
			}
			if want := `container "web" exited with code 3 before it was ready`; err.Error() != want {
				t.Errorf("message = %q, want %q", err.Error(), want)
			}
			assertQuiet(t, d, c)
		})
	}
}

// A container that exits as its last probe passes is not ready: the exit
// wins however the two race.
func TestExitDuringTheLastProbeWins(t *testing.T) {
	for range 20 {
		c := newPollClock()
		exited := make(chan struct{})
		d := &fakeDoer{respond: func(*http.Request, int) (*http.Response, error) {
			close(exited)
			return status(http.StatusOK), nil
		}}
		p := newTestProber(c, d)
		target := webTarget(time.Second)
		target.Exited = exited
		target.ExitCode = func() int { return 137 }

		if err := p.WaitReady(context.Background(), target); !errors.Is(err, lifecycle.ErrExited) {
			t.Fatalf("WaitReady = %v, want an error wrapping ErrExited", err)
		}
	}
}

func TestAlreadyExitedSendsNoRequest(t *testing.T) {
	c := newPollClock()
	d := &fakeDoer{respond: func(*http.Request, int) (*http.Response, error) { return status(200), nil }}
	p := newTestProber(c, d)
	exited := make(chan struct{})
	close(exited)
	target := webTarget(time.Second)
	target.Exited = exited // ExitCode left nil: the code is unknown

	err := p.WaitReady(context.Background(), target)
	if want := `container "web" exited before it was ready`; err == nil || err.Error() != want || !errors.Is(err, lifecycle.ErrExited) {
		t.Fatalf("WaitReady = %v, want %q wrapping ErrExited", err, want)
	}
	if n := len(d.Calls()); n != 0 {
		t.Errorf("%d requests sent to an exited container", n)
	}
}

func TestContextCancelEndsTheGate(t *testing.T) {
	c := newPollClock()
	firstCall := make(chan struct{})
	var once sync.Once
	d := &fakeDoer{respond: func(req *http.Request, _ int) (*http.Response, error) {
		once.Do(func() { close(firstCall) })
		return blockUntilDone(req)
	}}
	p := newTestProber(c, d)
	ctx, cancel := context.WithCancel(context.Background())

	done := make(chan error, 1)
	go func() { done <- p.WaitReady(ctx, webTarget(time.Minute)) }()
	<-firstCall
	cancel()
	err := <-done
	var nre *lifecycle.NotReadyError
	if !errors.Is(err, context.Canceled) || errors.As(err, &nre) {
		t.Fatalf("WaitReady = %v, want a wrapped context.Canceled", err)
	}
	assertQuiet(t, d, c)
}

func TestAttemptIsBoundedByRemainingTimeButAtLeast500ms(t *testing.T) {
	tests := []struct {
		timeout  time.Duration
		notYet   time.Duration // the attempt is still running at this time
		cutAfter time.Duration
	}{
		{timeout: 100 * ms, notYet: 499 * ms, cutAfter: 500 * ms},                // floor
		{timeout: 2 * time.Second, notYet: 1999 * ms, cutAfter: 2 * time.Second}, // remaining time
	}
	for _, tt := range tests {
		t.Run(tt.timeout.String(), func(t *testing.T) {
			c := newPollClock()
			requests := make(chan *http.Request, 1)
			d := &fakeDoer{respond: func(req *http.Request, _ int) (*http.Response, error) {
				requests <- req
				return blockUntilDone(req)
			}}
			p := newTestProber(c, d)

			done := make(chan error, 1)
			go func() { done <- p.WaitReady(context.Background(), webTarget(tt.timeout)) }()
			req := <-requests
			if err := c.BlockUntil(context.Background(), 1); err != nil {
				t.Fatal(err)
			}
			c.Advance(tt.notYet)
			if err := req.Context().Err(); err != nil {
				t.Fatalf("attempt cut after %v: %v", tt.notYet, err)
			}
			c.Advance(tt.cutAfter - tt.notYet)
			if req.Context().Err() == nil {
				t.Fatalf("attempt still running after %v", tt.cutAfter)
			}
			err := <-done
			var nre *lifecycle.NotReadyError
			if !errors.As(err, &nre) || !errors.Is(nre.LastErr, errAttemptTimedOut) {
				t.Fatalf("WaitReady = %v, want NotReadyError with LastErr wrapping errAttemptTimedOut", err)
			}
			assertQuiet(t, d, c)
		})
	}
}

func TestDefaultTimeoutIs30s(t *testing.T) {
	c := newPollClock()
	d := &fakeDoer{respond: func(*http.Request, int) (*http.Response, error) { return nil, io.EOF }}
	p := newTestProber(c, d)

	err, elapsed := c.drive(t, 1, func() error { return p.WaitReady(context.Background(), webTarget(0)) })
	var nre *lifecycle.NotReadyError
	if !errors.As(err, &nre) || nre.TimeoutMs != 30000 {
		t.Fatalf("WaitReady = %v, want NotReadyError after 30000ms", err)
	}
	if elapsed != 30*time.Second {
		t.Errorf("elapsed = %v, want 30s", elapsed)
	}
}

func TestPortWithoutAddressFailsAtOnce(t *testing.T) {
	c := newPollClock()
	d := &fakeDoer{respond: func(*http.Request, int) (*http.Response, error) { return status(200), nil }}
	p := newTestProber(c, d)
	target := webTarget(time.Second, config.ReadyCheck{Path: "/ready", Port: 7070, Status: 200})

	err := p.WaitReady(context.Background(), target)
	if err == nil || err.Error() != `container "web": port 7070 has no published address to probe` {
		t.Fatalf("WaitReady = %v", err)
	}
	if n := len(d.Calls()); n != 0 {
		t.Errorf("%d requests sent before the target was checked", n)
	}
}

func TestNothingToProbeIsReady(t *testing.T) {
	c := newPollClock()
	d := &fakeDoer{respond: func(*http.Request, int) (*http.Response, error) { return nil, io.EOF }}
	p := newTestProber(c, d)
	target := webTarget(time.Second)
	target.Ports = nil
	if err := p.WaitReady(context.Background(), target); err != nil {
		t.Fatalf("WaitReady = %v, want nil", err)
	}
	if n := len(d.Calls()); n != 0 {
		t.Errorf("%d requests sent with nothing to probe", n)
	}
}

func TestNewAppliesDefaults(t *testing.T) {
	p := New(Options{})
	if p.initialInterval != DefaultInitialInterval || p.maxInterval != DefaultMaxInterval || p.doer == nil || p.clock == nil || p.logger == nil {
		t.Errorf("New(Options{}) = %+v", p)
	}
	p = New(Options{InitialInterval: 50 * ms, MaxInterval: 10 * ms})
	if p.maxInterval != 50*ms {
		t.Errorf("MaxInterval below InitialInterval not raised: %v", p.maxInterval)
	}
}
