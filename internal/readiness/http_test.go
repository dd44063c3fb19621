package readiness

// Tests against real loopback servers with the default HTTP client and the
// wall clock. Timeouts stay at or below one second.

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// dropListener closes the first drop connections it accepts, as
// docker-proxy does while the app behind it is not listening yet: odd ones
// with a reset (SO_LINGER 0), even ones with a plain close (EOF).
type dropListener struct {
	net.Listener
	drop int

	// mu guards dropped.
	mu      sync.Mutex
	dropped int
}

func (l *dropListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		drop := l.dropped < l.drop
		if drop {
			l.dropped++
		}
		n := l.dropped
		l.mu.Unlock()
		if !drop {
			return conn, nil
		}
		if tcp, ok := conn.(*net.TCPConn); ok && n%2 == 1 {
			_ = tcp.SetLinger(0)
		}
		conn.Close()
	}
}

func (l *dropListener) Dropped() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}

func listenLoopback(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func realTarget(addr string, timeout time.Duration, checks ...config.ReadyCheck) lifecycle.ProbeTarget {
	return lifecycle.ProbeTarget{
		Container: "web",
		Instance:  "i-1",
		Addrs:     map[int]string{8080: addr},
		Ports:     []int{8080},
		ReadyOn:   checks,
		Timeout:   timeout,
	}
}

// assertNoGateGoroutines fails if a goroutine of the gate is still alive.
// WaitReady waits for all of them, so none may remain once it returned.
func assertNoGateGoroutines(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "readiness.(*gate)") || strings.Contains(g, "readiness.(*Prober)") {
			t.Errorf("gate goroutine still running:\n%s", g)
		}
	}
}

type seenRequest struct {
	host, path, ua string
	close          bool
}

func TestRealServerSeesPingThenContainerHost(t *testing.T) {
	var mu sync.Mutex
	var seen []seenRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, seenRequest{host: r.Host, path: r.URL.Path, ua: r.UserAgent(), close: r.Close})
		mu.Unlock()
		if r.URL.Path == "/ready" {
			w.WriteHeader(http.StatusOK)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()

	p := New(Options{})
	target := realTarget(srv.Listener.Addr().String(), time.Second, config.ReadyCheck{Path: "/ready", Port: 8080, Status: 200})
	if err := p.WaitReady(context.Background(), target); err != nil {
		t.Fatalf("WaitReady = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []seenRequest{
		{host: "ping", path: "/", ua: userAgent, close: true},
		{host: "container", path: "/ready", ua: userAgent, close: true},
	}
	if !slices.Equal(seen, want) {
		t.Errorf("app saw %+v, want %+v", seen, want)
	}
	assertNoGateGoroutines(t)
}

func TestRealAcceptThenCloseIsNotReady(t *testing.T) {
	ln := &dropListener{Listener: listenLoopback(t), drop: 1 << 30}
	defer ln.Close()
	go func() { _, _ = ln.Accept() }() // returns once ln is closed

	p := New(Options{})
	start := time.Now()
	err := p.WaitReady(context.Background(), realTarget(ln.Addr().String(), 300*ms))
	elapsed := time.Since(start)

	var nre *lifecycle.NotReadyError
	if !errors.As(err, &nre) || nre.Path != "" || nre.Port != 8080 || nre.LastErr == nil {
		t.Fatalf("WaitReady = %v, want a port NotReadyError", err)
	}
	if elapsed < 300*ms || elapsed > time.Second {
		t.Errorf("gave up after %v, want about 300ms", elapsed)
	}
	if n := ln.Dropped(); n < 5 {
		t.Errorf("only %d connections accepted in 300ms; polling too slow", n)
	}
	assertNoGateGoroutines(t)
}

func TestRealProxyResetsThenAppAnswers(t *testing.T) {
	ln := &dropListener{Listener: listenLoopback(t), drop: 6}
	var requests atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusInternalServerError) // any status counts for a port
	}))
	srv.Listener = ln
	srv.Start()
	defer srv.Close()

	p := New(Options{})
	if err := p.WaitReady(context.Background(), realTarget(ln.Addr().String(), time.Second)); err != nil {
		t.Fatalf("WaitReady = %v", err)
	}
	if ln.Dropped() != 6 || requests.Load() != 1 {
		t.Errorf("dropped %d connections and served %d requests, want 6 and 1", ln.Dropped(), requests.Load())
	}
}

func TestRealRefusedPortIsNotReady(t *testing.T) {
	ln := listenLoopback(t)
	addr := ln.Addr().String()
	ln.Close()

	err := New(Options{}).WaitReady(context.Background(), realTarget(addr, 100*ms))
	var nre *lifecycle.NotReadyError
	if !errors.As(err, &nre) || nre.LastErr == nil || !strings.Contains(nre.LastErr.Error(), "refused") {
		t.Fatalf("WaitReady = %v, want a NotReadyError for a refused connection", err)
	}
}

func TestRealRedirectIsNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/", http.StatusFound)
	}))
	defer srv.Close()

	p := New(Options{})
	target := realTarget(srv.Listener.Addr().String(), time.Second, config.ReadyCheck{Path: "/ready", Port: 8080, Status: http.StatusFound})
	if err := p.WaitReady(context.Background(), target); err != nil {
		t.Fatalf("WaitReady = %v, want the 302 to satisfy the check", err)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect was followed %d times", n)
	}
}

// BenchmarkReadyGap measures the time from a server's readyOn check
// flipping to 200 until WaitReady returns. The flip happens 5ms to 100ms
// after the gate started, so it lands at every phase of the backoff.
func BenchmarkReadyGap(b *testing.B) {
	var ready atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ready" && !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	p := New(Options{})
	target := realTarget(srv.Listener.Addr().String(), 5*time.Second, config.ReadyCheck{Path: "/ready", Port: 8080, Status: 200})

	var gaps []time.Duration
	for i := 0; b.Loop(); i++ {
		ready.Store(false)
		done := make(chan error, 1)
		go func() { done <- p.WaitReady(context.Background(), target) }()
		time.Sleep(time.Duration(i%20+1) * 5 * ms)
		flipped := time.Now()
		ready.Store(true)
		if err := <-done; err != nil {
			b.Fatalf("WaitReady = %v", err)
		}
		gaps = append(gaps, time.Since(flipped))
	}
	slices.Sort(gaps)
	pct := func(q float64) float64 {
		return float64(gaps[int(q*float64(len(gaps)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "median-gap-ms")
	b.ReportMetric(pct(0.9), "p90-gap-ms")
	b.ReportMetric(pct(1), "max-gap-ms")
	if testing.Verbose() {
		b.Logf("n=%d median=%.2fms p90=%.2fms max=%.2fms", len(gaps), pct(0.5), pct(0.9), pct(1))
	}
}
