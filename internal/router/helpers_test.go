package router

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/clock"
	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/events"
	"github.com/lunora/lunorad/internal/leakcheck"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// TestMain fails the package when goroutines outlive the tests: every
// goroutine the router starts must end with its context or Close.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }

// fakeLease is a Lease on a set of httptest backends.
type fakeLease struct {
	id          string
	gen         uint64
	defaultPort int
	addrs       map[int]string
	done        chan struct{}
	touches     atomic.Int64
	streamings  atomic.Int64
	releases    atomic.Int64
	released    chan struct{} // closed by the first Release
	releaseOnce sync.Once
	cold        bool
	// beforeRelease, when set, runs at the start of every Release.
	beforeRelease func()

	// streamingAfterRelease records a Streaming call after the first
	// Release: the router must mark the lease while it still holds it.
	streamingAfterRelease atomic.Bool
}

func (l *fakeLease) ColdStart() bool { return l.cold }

func (l *fakeLease) Instance() string   { return l.id }
func (l *fakeLease) Generation() uint64 { return l.gen }
func (l *fakeLease) DefaultPort() int   { return l.defaultPort }
func (l *fakeLease) Addr(port int) (string, bool) {
	a, ok := l.addrs[port]
	return a, ok
}
func (l *fakeLease) Ports() []int {
	ports := make([]int, 0, len(l.addrs))
	for p := range l.addrs {
		ports = append(ports, p)
	}
	return ports
}
func (l *fakeLease) Touch() { l.touches.Add(1) }
func (l *fakeLease) Streaming() {
	l.streamings.Add(1)
	select {
	case <-l.released:
		l.streamingAfterRelease.Store(true)
	default:
	}
}
func (l *fakeLease) Release() {
	if l.beforeRelease != nil {
		l.beforeRelease()
	}
	l.releases.Add(1)
	l.releaseOnce.Do(func() { close(l.released) })
}
func (l *fakeLease) Done() <-chan struct{} { return l.done }

// fakeInstances hands out fakeLeases; script, when set, decides the outcome
// of each Acquire by its index (0-based) first.
type fakeInstances struct {
	containers map[string]*config.Container
	addrs      map[int]string // published ports of every lease
	done       chan struct{}  // shared by every lease: one run
	script     func(call int, id string) error
	cold       bool // leases report a cold start
	// beforeRelease is given to every lease (fakeLease.beforeRelease).
	beforeRelease func()

	// mu guards everything that follows.
	mu     sync.Mutex
	ids    []string
	leases []*fakeLease
}

func (f *fakeInstances) Acquire(ctx context.Context, container, id string) (Lease, error) {
	f.mu.Lock()
	call := len(f.ids)
	f.ids = append(f.ids, id)
	f.mu.Unlock()
	c, ok := f.containers[container]
	if !ok {
		return nil, &lifecycle.UnknownContainerError{Name: container}
	}
	if f.script != nil {
		if err := f.script(call, id); err != nil {
			return nil, err
		}
	}
	l := &fakeLease{id: id, gen: 1, defaultPort: c.DefaultPort, addrs: f.addrs, done: f.done, released: make(chan struct{}), cold: f.cold, beforeRelease: f.beforeRelease}
	f.mu.Lock()
	f.leases = append(f.leases, l)
	f.mu.Unlock()
	return l, nil
}

func (f *fakeInstances) Container(name string) (*config.Container, bool) {
	c, ok := f.containers[name]
	return c, ok
}

func (f *fakeInstances) acquired() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ids...)
}

func (f *fakeInstances) allLeases() []*fakeLease {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*fakeLease(nil), f.leases...)
}

func (f *fakeInstances) lastLease() *fakeLease {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.leases) == 0 {
		return nil
	}
	return f.leases[len(f.leases)-1]
}

// recClock is a fake clock that reports every timer it arms and every
// Stop, so a test can see each backoff wait, advance exactly past it, and
// know when a wait was abandoned.
type recClock struct {
	*clock.Fake
	armed   chan time.Duration
	stopped chan struct{}
}

func newRecClock() *recClock {
	return &recClock{Fake: clock.NewFake(time.Unix(1_700_000_000, 0)),
		armed: make(chan time.Duration, 64), stopped: make(chan struct{}, 64)}
}

func (c *recClock) NewTimer(d time.Duration) clock.Timer {
	t := c.Fake.NewTimer(d)
	c.armed <- d
	return reportingTimer{Timer: t, stopped: c.stopped}
}

type reportingTimer struct {
	clock.Timer
	stopped chan struct{}
}

func (t reportingTimer) Stop() bool {
	was := t.Timer.Stop()
	if was {
		select {
		case t.stopped <- struct{}{}:
		default: // nobody is counting
		}
	}
	return was
}

// seqRand returns the picks in order (then repeats the last) and records n.
type seqRand struct {
	// mu guards everything that follows.
	mu    sync.Mutex
	picks []int
	sizes []int
}

func (s *seqRand) IntN(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sizes = append(s.sizes, n)
	i := len(s.sizes) - 1
	if i >= len(s.picks) {
		i = len(s.picks) - 1
	}
	if i < 0 {
		return 0
	}
	return s.picks[i]
}

func (s *seqRand) calls() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.sizes...)
}

// env is a router in front of fake instances, served on loopback.
type env struct {
	t         testing.TB
	router    *Router
	instances *fakeInstances
	control   *fakeControl
	clock     *recClock
	rand      *seqRand
	bus       *events.Bus
	server    *httptest.Server
	client    *http.Client
}

type envOption func(*env, *Options)

// newEnv starts a router whose instances all answer on backend (port 8080).
func newEnv(t testing.TB, backend http.Handler, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, clock: newRecClock(), rand: &seqRand{}, bus: &events.Bus{}}
	e.instances = &fakeInstances{
		containers: map[string]*config.Container{
			"web":  {Name: "web", DefaultPort: 8080},
			"big":  {Name: "big", DefaultPort: 8080, MaxInstances: 5},
			"none": {Name: "none"},
		},
		addrs: map[int]string{},
		done:  make(chan struct{}),
	}
	if backend != nil {
		e.instances.addrs[8080] = startBackend(t, backend)
	}
	e.control = newFakeControl(e.instances.containers)
	o := Options{Instances: e.instances, Control: e.control, Events: e.bus, Clock: e.clock, Rand: e.rand.IntN}
	for _, opt := range opts {
		opt(e, &o)
	}
	e.router = New(o)
	e.server = httptest.NewServer(e.router.Handler())
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	e.client = &http.Client{Transport: tr}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		e.router.CloseWebSockets()
		e.server.Close()
		e.router.Close()
	})
	return e
}

// startBackend serves h on loopback as a "container" and returns its address.
func startBackend(t testing.TB, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// request builds a request whose target is sent byte for byte.
func (e *env) request(method, target string, body io.Reader) *http.Request {
	e.t.Helper()
	path, query, _ := strings.Cut(target, "?")
	u := &url.URL{Scheme: "http", Host: e.server.Listener.Addr().String(), Opaque: path, RawQuery: query}
	req, err := http.NewRequest(method, "http://placeholder/", body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.URL = u
	req.Host = u.Host
	return req
}

// result is a response read to the end.
type result struct {
	status int
	header http.Header
	body   string
	err    error
}

func (e *env) do(req *http.Request) result {
	res, err := e.client.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return result{status: res.StatusCode, header: res.Header, body: string(b), err: err}
}

func (e *env) get(target string, headers ...string) result {
	req := e.request(http.MethodGet, target, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return e.do(req)
}

// drive runs do(req) and advances the fake clock past every backoff wait,
// returning the response and the waits in order.
func (e *env) drive(req *http.Request) (result, []time.Duration) {
	done := make(chan result, 1)
	go func() { done <- e.do(req) }()
	var waits []time.Duration
	for {
		select {
		case r := <-done:
			return r, waits
		case d := <-e.clock.armed:
			waits = append(waits, d)
			e.clock.Advance(d)
		case <-time.After(10 * time.Second):
			e.t.Fatal("request did not finish")
		}
	}
}

// okBackend answers 200 "ok" and records nothing.
var okBackend = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	_, _ = io.WriteString(w, "ok")
})
