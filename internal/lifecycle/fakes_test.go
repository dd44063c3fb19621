package lifecycle

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/clock"
	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/events"
)

// fakeRuntime is a hand-written Runtime: an in-memory table of owned
// containers, with hooks that let a test hold or fail a call.
type fakeRuntime struct {
	mu       sync.Mutex
	seq      int
	owned    map[string]*Running
	specs    []RunSpec
	ensured  []string
	stops    []stopCall
	removed  []string
	imageErr error
	runErr   error
	// runHook runs before Run creates the container; an error fails Run.
	runHook func(ctx context.Context, spec RunSpec) error
	// stopHook runs before Stop removes the container; an error fails Stop.
	stopHook  func(ctx context.Context, id string) error
	removeErr error
	listErr   error // fails both listings
	lists     int
	// stateLists counts ListOwnedStates calls, apart from ListOwned's.
	stateLists int
	exits      chan Exit
	// directIP, when set, gives every port a Running.Direct address on it.
	directIP string
}

type stopCall struct {
	id     string
	signal string
	grace  time.Duration
}

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{owned: make(map[string]*Running), exits: make(chan Exit)}
}

func (f *fakeRuntime) EnsureImage(ctx context.Context, c *config.Container) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ensured = append(f.ensured, c.Name)
	if f.imageErr != nil {
		return "", f.imageErr
	}
	return "lunora-" + c.Name + ":build", nil
}

func (f *fakeRuntime) Run(ctx context.Context, spec RunSpec) (Running, error) {
	f.mu.Lock()
	f.specs = append(f.specs, spec)
	hook, runErr := f.runHook, f.runErr
	f.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, spec); err != nil {
			return Running{}, err
		}
	}
	if runErr != nil {
		return Running{}, runErr
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	r := &Running{
		ID:         fmt.Sprintf("ctr%02d", f.seq),
		Name:       "lunorad-" + spec.Container + "-" + spec.Instance,
		Container:  spec.Container,
		Instance:   spec.Instance,
		Ports:      make(map[int]string),
		ConfigHash: spec.ConfigHash,
		Generation: spec.Generation,
		Running:    true,
	}
	for i, p := range spec.Ports {
		r.Ports[p] = fmt.Sprintf("127.0.0.1:%d", 40000+f.seq*10+i)
		if f.directIP != "" {
			if r.Direct == nil {
				r.Direct = make(map[int]string)
			}
			r.Direct[p] = fmt.Sprintf("%s:%d", f.directIP, p)
		}
	}
	f.owned[r.ID] = r
	out := *r
	out.Ports = maps.Clone(r.Ports)
	out.Direct = maps.Clone(r.Direct)
	return out, nil
}

func (f *fakeRuntime) Stop(ctx context.Context, id string, signal string, grace time.Duration) error {
	f.mu.Lock()
	f.stops = append(f.stops, stopCall{id, signal, grace})
	hook := f.stopHook
	f.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, id); err != nil {
			return err
		}
	}
	f.mu.Lock()
	delete(f.owned, id)
	f.mu.Unlock()
	return nil
}

func (f *fakeRuntime) Remove(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, id)
	if f.removeErr != nil {
		return f.removeErr
	}
	delete(f.owned, id)
	return nil
}

func (f *fakeRuntime) ListOwned(ctx context.Context) ([]Running, error) {
	return f.listOwned(&f.lists, func(r Running) Running {
		r.Ports = maps.Clone(r.Ports)
		r.Direct = maps.Clone(r.Direct)
		return r
	})
}

// ListOwnedStates fills only what the real one does, so that a caller
// relying on more fails here: a running container has no ports, direct
// addresses, start time or exit code, and its Created is rounded down to
// the second, as the engine's list has it.
func (f *fakeRuntime) ListOwnedStates(ctx context.Context) ([]Running, error) {
	return f.listOwned(&f.stateLists, func(r Running) Running {
		r.Ports, r.Direct = nil, nil
		if r.Running {
			r.StartedAt, r.ExitCode = time.Time{}, 0
			r.Created = r.Created.Truncate(time.Second)
		}
		return r
	})
}

// listOwned counts one listing in *calls and returns the owned containers
// in id order, each as view shows it.
func (f *fakeRuntime) listOwned(calls *int, view func(Running) Running) ([]Running, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*calls++
	if f.listErr != nil {
		return nil, f.listErr
	}
	var out []Running
	for _, id := range slices.Sorted(maps.Keys(f.owned)) {
		out = append(out, view(*f.owned[id]))
	}
	return out, nil
}

func (f *fakeRuntime) Exits(ctx context.Context) <-chan Exit {
	out := make(chan Exit)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case ex := <-f.exits:
				select {
				case out <- ex:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// exit marks a container exited in the table and returns the Exit the
// engine would report.
func (f *fakeRuntime) exit(id string, code int, oom bool) Exit {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.owned[id]
	if r == nil {
		return Exit{ContainerID: id, ExitCode: code, OOMKilled: oom}
	}
	r.Running = false
	r.ExitCode = code
	return Exit{ContainerID: id, Container: r.Container, Instance: r.Instance, ExitCode: code, OOMKilled: oom}
}

func (f *fakeRuntime) add(r Running) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.owned[r.ID] = &r
}

func (f *fakeRuntime) listCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists
}

func (f *fakeRuntime) stateListCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stateLists
}

func (f *fakeRuntime) runCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.specs)
}

func (f *fakeRuntime) lastSpec() RunSpec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.specs[len(f.specs)-1]
}

func (f *fakeRuntime) stopCalls() []stopCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.stops)
}

func (f *fakeRuntime) removedIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.removed)
}

func (f *fakeRuntime) isOwned(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.owned[id]
	return ok
}

func (f *fakeRuntime) set(fn func(f *fakeRuntime)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// fakeProber is a hand-written Prober. Without a hook every instance is
// ready at once.
type fakeProber struct {
	mu      sync.Mutex
	targets []ProbeTarget
	hook    func(ctx context.Context, t ProbeTarget) error
	called  chan ProbeTarget // receives every target when non-nil
}

func (p *fakeProber) WaitReady(ctx context.Context, t ProbeTarget) error {
	p.mu.Lock()
	p.targets = append(p.targets, t)
	hook, called := p.hook, p.called
	p.mu.Unlock()
	if called != nil {
		select {
		case called <- t:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if hook == nil {
		return nil
	}
	return hook(ctx, t)
}

func (p *fakeProber) set(hook func(ctx context.Context, t ProbeTarget) error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hook = hook
}

// gate makes the prober hold every start until release is closed, failing
// early when the container exits or the start is cancelled, as the real
// prober does.
func (p *fakeProber) gate(release <-chan struct{}) {
	p.set(func(ctx context.Context, t ProbeTarget) error {
		select {
		case <-release:
			return nil
		case <-t.Exited:
			return fmt.Errorf("container exited (exit %d): %w", t.ExitCode(), ErrExited)
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// fakeSecrets is a SecretSource over a map that counts lookups.
type fakeSecrets struct {
	mu      sync.Mutex
	values  map[string]string
	lookups map[string]int
}

func newFakeSecrets(kv ...string) *fakeSecrets {
	s := &fakeSecrets{values: map[string]string{}, lookups: map[string]int{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.values[kv[i]] = kv[i+1]
	}
	return s
}

func (s *fakeSecrets) Lookup(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups[name]++
	v, ok := s.values[name]
	return v, ok
}

func (s *fakeSecrets) put(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values[name] = value
}

func (s *fakeSecrets) count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookups[name]
}

// recordingClock is a Fake that also remembers every AfterFunc callback, so
// a test can fire a stale one by hand (the race a real timer can lose:
// fired just before Stop).
type recordingClock struct {
	*clock.Fake
	mu    sync.Mutex
	funcs []recordedFunc
}

type recordedFunc struct {
	d  time.Duration
	fn func()
}

func (c *recordingClock) AfterFunc(d time.Duration, fn func()) clock.Timer {
	c.mu.Lock()
	c.funcs = append(c.funcs, recordedFunc{d, fn})
	c.mu.Unlock()
	return c.Fake.AfterFunc(d, fn)
}

func (c *recordingClock) recorded(d time.Duration) []func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var fns []func()
	for _, f := range c.funcs {
		if f.d == d {
			fns = append(fns, f.fn)
		}
	}
	return fns
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testContainer(name string) *config.Container {
	return &config.Container{
		Name:           name,
		Image:          config.Image{Kind: config.ImageDockerfile, BuildContext: "/src/" + name, DockerfilePath: "/src/" + name + "/Dockerfile", Source: "./" + name},
		DefaultPort:    8080,
		InstanceType:   config.InstanceType{Name: "lite", VCPU: 0.0625, MemoryMiB: 256, DiskMB: 2000},
		SleepAfter:     10 * time.Minute,
		EnableInternet: true,
		PingEndpoint:   "ping",
	}
}

func testConfig(cs ...*config.Container) *config.Config {
	cfg := &config.Config{Path: "/src/lunorad.yaml", Dir: "/src", Listen: config.DefaultListen, Containers: map[string]*config.Container{}}
	for _, c := range cs {
		cfg.Containers[c.Name] = c
		cfg.Names = append(cfg.Names, c.Name)
	}
	slices.Sort(cfg.Names)
	return cfg
}

type harness struct {
	t       *testing.T
	m       *Manager
	rt      *fakeRuntime
	pr      *fakeProber
	clk     *clock.Fake
	secrets *fakeSecrets
	sub     *events.Subscription
}

type harnessOptions struct {
	clock   clock.Clock // default: a Fake at t0
	secrets *fakeSecrets
	tweak   func(o *Options)
}

// newHarness builds a Manager over fakes. Cleanup shuts it down and then
// checks that no goroutine outlived the test.
func newHarness(t *testing.T, ho harnessOptions, cs ...*config.Container) *harness {
	t.Helper()
	checkGoroutines(t)
	h := &harness{t: t, rt: newFakeRuntime(), pr: &fakeProber{}, secrets: ho.secrets}
	if h.secrets == nil {
		h.secrets = newFakeSecrets()
	}
	clk := ho.clock
	if clk == nil {
		h.clk = clock.NewFake(t0)
		clk = h.clk
	} else if rc, ok := clk.(*recordingClock); ok {
		h.clk = rc.Fake
	}
	bus := &events.Bus{}
	h.sub = bus.Subscribe(1024, false)
	opts := Options{
		Config: testConfig(cs...), Runtime: h.rt, Prober: h.pr, Clock: clk, Events: bus, Secrets: h.secrets,
	}
	if ho.tweak != nil {
		ho.tweak(&opts)
	}
	m, err := NewManager(opts)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	h.m = m
	t.Cleanup(func() {
		h.sub.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown at cleanup: %v", err)
		}
	})
	return h
}

// checkGoroutines fails the test if goroutines started during it are still
// there once every other cleanup has run.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Errorf("goroutines leaked: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:n])
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// eventually polls cond: for results produced on another goroutine, never
// for passing time (the clock is fake).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (h *harness) acquire(container, id string) *Lease {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := h.m.Acquire(ctx, container, id)
	if err != nil {
		h.t.Fatalf("Acquire(%s, %s): %v", container, id, err)
	}
	return l
}

func (h *harness) state(container, id string) State {
	h.t.Helper()
	s, err := h.m.State(container, id)
	if err != nil {
		h.t.Fatalf("State: %v", err)
	}
	return s
}

func (h *harness) status(container, id string) string {
	h.t.Helper()
	return h.state(container, id).Status
}

// waitEvent reads events until one of type typ for instance id arrives and
// returns it; events are emitted right after the state changes, so this
// may need to wait a moment.
func (h *harness) waitEvent(id, typ string) events.Event {
	h.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e := <-h.sub.C:
			if e.Instance == id && e.Event == typ {
				return e
			}
		case <-timeout:
			h.t.Fatalf("no %q event for instance %q", typ, id)
		}
	}
}

// waitEvents reads events until one of each type for instance id arrived,
// in any order (they may come from different goroutines).
func (h *harness) waitEvents(id string, types ...string) map[string]events.Event {
	h.t.Helper()
	got := make(map[string]events.Event)
	timeout := time.After(5 * time.Second)
	for len(got) < len(types) {
		select {
		case e := <-h.sub.C:
			if e.Instance == id && slices.Contains(types, e.Event) {
				got[e.Event] = e
			}
		case <-timeout:
			h.t.Fatalf("events for %q: got %v, want %v", id, got, types)
		}
	}
	return got
}

// waitStops reads events until each of ids had a stop event, in any order.
func (h *harness) waitStops(ids ...string) map[string]events.Event {
	h.t.Helper()
	got := make(map[string]events.Event)
	timeout := time.After(5 * time.Second)
	for len(got) < len(ids) {
		select {
		case e := <-h.sub.C:
			if e.Event == events.Stop && slices.Contains(ids, e.Instance) {
				got[e.Instance] = e
			}
		case <-timeout:
			h.t.Fatalf("stop events: got %v, want one for each of %v", got, ids)
		}
	}
	return got
}

// drainEvents discards the events queued so far.
func (h *harness) drainEvents() {
	for {
		select {
		case <-h.sub.C:
		default:
			return
		}
	}
}

// noEvent checks that no event of type typ for id is queued.
func (h *harness) noEvent(id, typ string) {
	h.t.Helper()
	for {
		select {
		case e := <-h.sub.C:
			if e.Instance == id && e.Event == typ {
				h.t.Fatalf("unexpected %q event for %q: %q", typ, id, e.Message)
			}
		default:
			return
		}
	}
}

// waiters reports how many callers joined the instance's start in progress.
func (h *harness) waiters(container, id string) int {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	inst := h.m.lookupLocked(container, id)
	if inst == nil || inst.start == nil {
		return 0
	}
	return inst.start.waiters
}

func (h *harness) containerID(container, id string) string {
	h.t.Helper()
	info, err := h.m.Instance(container, id)
	if err != nil {
		h.t.Fatalf("Instance: %v", err)
	}
	return info.ContainerID
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
