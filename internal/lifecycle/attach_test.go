package lifecycle

import (
	"context"
	"errors"
	"maps"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// attachCall is one Attach the fake received.
type attachCall struct {
	containerID string
	published   map[int]string
}

// fakeAttacher records every Attach. hook, when set, answers it; the
// default gives every port 10.99.0.2:port.
type fakeAttacher struct {
	calls chan attachCall // receives every call when non-nil

	// mu guards hook.
	mu   sync.Mutex
	hook func(ctx context.Context, containerID string, published map[int]string) (map[int]string, error)
}

func (a *fakeAttacher) Attach(ctx context.Context, containerID string, published map[int]string) (map[int]string, error) {
	if a.calls != nil {
		a.calls <- attachCall{containerID, maps.Clone(published)}
	}
	a.mu.Lock()
	hook := a.hook
	a.mu.Unlock()
	if hook != nil {
		return hook(ctx, containerID, published)
	}
	return directFor("10.99.0.2", published), nil
}

func (a *fakeAttacher) setHook(hook func(ctx context.Context, containerID string, published map[int]string) (map[int]string, error)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hook = hook
}

func directFor(ip string, published map[int]string) map[int]string {
	out := make(map[int]string, len(published))
	for port := range published {
		out[port] = net.JoinHostPort(ip, strconv.Itoa(port))
	}
	return out
}

// newAttachHarness is newHarness with a fakeAttacher as Options.Attacher
// and the manager's log observed.
func newAttachHarness(t *testing.T) (*harness, *fakeAttacher, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	ar := &fakeAttacher{calls: make(chan attachCall, 16)}
	h := newHarness(t, harnessOptions{tweak: func(o *Options) {
		o.Attacher = ar
		o.Logger = zap.New(core)
	}}, testContainer("web"))
	return h, ar, logs
}

func nextAttach(t *testing.T, ar *fakeAttacher) attachCall {
	t.Helper()
	select {
	case c := <-ar.calls:
		return c
	case <-time.After(5 * time.Second): // a bound on a goroutine's progress, not on time under test
		t.Fatal("no Attach call")
		return attachCall{}
	}
}

func noAttach(t *testing.T, ar *fakeAttacher) {
	t.Helper()
	select {
	case c := <-ar.calls:
		t.Fatalf("unexpected Attach of %s", c.containerID)
	default:
	}
}

func TestAttachRunsAfterReadinessAndLaterLeasesDialDirect(t *testing.T) {
	h, ar, _ := newAttachHarness(t)
	release := make(chan struct{})
	h.pr.gate(release)
	proceed := make(chan struct{})
	ar.setHook(func(ctx context.Context, id string, published map[int]string) (map[int]string, error) {
		select {
		case <-proceed:
			return directFor("10.99.0.2", published), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})

	acquired := make(chan *Lease, 1)
	go func() {
		l, err := h.m.Acquire(context.Background(), "web", "a")
		if err != nil {
			t.Errorf("Acquire: %v", err)
		}
		acquired <- l
	}()
	eventually(t, "the readiness gate to be probed", func() bool {
		h.pr.mu.Lock()
		defer h.pr.mu.Unlock()
		return len(h.pr.targets) == 1
	})
	noAttach(t, ar) // never before the gate passed
	close(release)

	// The cold start's lease does not wait for the attach (still held).
	first := <-acquired
	if first == nil {
		t.FailNow()
	}
	defer first.Release()
	published, _ := first.Addr(8080)
	if published != "127.0.0.1:40010" {
		t.Fatalf("cold-start lease dials %q, want the published port", published)
	}
	call := nextAttach(t, ar)
	if call.containerID != "ctr01" || !maps.Equal(call.published, map[int]string{8080: "127.0.0.1:40010"}) {
		t.Errorf("Attach(%s, %v), want ctr01 with its published ports", call.containerID, call.published)
	}

	close(proceed)
	eventually(t, "the direct address to be recorded", func() bool {
		info, _ := h.m.Instance("web", "a")
		return info.Direct[8080] == "10.99.0.2:8080"
	})
	second := h.acquire("web", "a")
	defer second.Release()
	if addr, _ := second.Addr(8080); addr != "10.99.0.2:8080" {
		t.Errorf("lease after the attach dials %q, want the direct address", addr)
	}
	if addr, _ := first.Addr(8080); addr != published {
		t.Errorf("the lease held across the attach changed address to %q", addr)
	}
	if info, _ := h.m.Instance("web", "a"); info.Ports[8080] != published {
		t.Errorf("info Ports = %v, want the published port still shown", info.Ports)
	}
	noAttach(t, ar) // one attach per run
}

func TestAttachOfARunThatEndedMeanwhileIsIgnored(t *testing.T) {
	h, ar, logs := newAttachHarness(t)
	firstStarted, proceedFirst := make(chan struct{}), make(chan struct{})
	ar.setHook(func(ctx context.Context, id string, published map[int]string) (map[int]string, error) {
		if id != "ctr01" {
			return nil, nil // the new run: no direct route
		}
		close(firstStarted)
		<-proceedFirst // finishes after the run it was for is over
		return directFor("10.99.0.2", published), nil
	})

	h.acquire("web", "a").Release()
	<-firstStarted
	if err := h.m.Stop(context.Background(), "web", "a", "SIGTERM"); err != nil {
		t.Fatal(err)
	}
	l := h.acquire("web", "a") // a new run, ctr02
	defer l.Release()
	if c := nextAttach(t, ar); c.containerID != "ctr01" {
		t.Fatalf("first attach of %s", c.containerID)
	}
	if c := nextAttach(t, ar); c.containerID != "ctr02" {
		t.Fatalf("second attach of %s, want the new run's", c.containerID)
	}
	close(proceedFirst)
	eventually(t, "the stale attach to be dropped", func() bool {
		return logs.FilterMessage("ignoring the attach of a run that is over").Len() == 1
	})
	info, _ := h.m.Instance("web", "a")
	if info.ContainerID != "ctr02" || len(info.Direct) != 0 {
		t.Errorf("info = %s Direct %v, want ctr02 without the old run's direct address", info.ContainerID, info.Direct)
	}
	if addr, _ := h.acquire("web", "a").Addr(8080); addr != info.Ports[8080] {
		t.Errorf("Addr = %q, want the new run's published port %q", addr, info.Ports[8080])
	}
	if n := logs.FilterLevelExact(zap.WarnLevel).Len(); n != 0 {
		t.Errorf("%d warnings, want none for a stale attach", n)
	}
}

func TestAttachFailureKeepsThePublishedPortsAndWarnsOnce(t *testing.T) {
	h, ar, logs := newAttachHarness(t)
	ar.setHook(func(ctx context.Context, id string, published map[int]string) (map[int]string, error) {
		return nil, errors.New("network lunorad-x exists but lunorad does not own it")
	})
	for _, id := range []string{"a", "b"} {
		h.acquire("web", id).Release()
		nextAttach(t, ar)
	}
	eventually(t, "both attaches to fail", func() bool {
		return logs.FilterMessage("attach failed; keeping the published ports").Len() == 2
	})
	warns := logs.FilterLevelExact(zap.WarnLevel).All()
	if len(warns) != 1 || warns[0].ContextMap()["error"] != "network lunorad-x exists but lunorad does not own it" {
		t.Errorf("warnings = %v, want one with the error", warns)
	}
	for _, id := range []string{"a", "b"} {
		l := h.acquire("web", id)
		info, _ := h.m.Instance("web", id)
		if addr, _ := l.Addr(8080); addr != info.Ports[8080] || len(info.Direct) != 0 || info.State.Status != StatusHealthy {
			t.Errorf("%s: Addr = %q Direct = %v status %s, want a healthy instance on its published port", id, addr, info.Direct, info.State.Status)
		}
		l.Release()
	}
}

func TestShutdownCancelsAndWaitsForAnAttachInFlight(t *testing.T) {
	h, ar, logs := newAttachHarness(t)
	var ended atomic.Bool
	ar.setHook(func(ctx context.Context, id string, published map[int]string) (map[int]string, error) {
		defer ended.Store(true)
		<-ctx.Done() // a wedged engine call: only cancellation ends it
		return nil, ctx.Err()
	})
	h.acquire("web", "a").Release()
	nextAttach(t, ar)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.m.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if !ended.Load() {
		t.Error("Shutdown returned before the attach in flight ended")
	}
	if n := logs.FilterLevelExact(zap.WarnLevel).Len(); n != 0 {
		t.Errorf("%d warnings, want none for an attach cancelled by shutdown", n)
	}
}

func TestAdoptedContainerIsAttachedUnlessAlreadyDirect(t *testing.T) {
	h, ar, _ := newAttachHarness(t)
	hash := testContainer("web").Hash()
	old := t0.Add(-time.Hour)
	h.rt.add(Running{ID: "plain", Container: "web", Instance: "a", ConfigHash: hash, Running: true, Created: old,
		Ports: map[int]string{8080: "127.0.0.1:41000"}})
	h.rt.add(Running{ID: "connected", Container: "web", Instance: "b", ConfigHash: hash, Running: true, Created: old,
		Ports: map[int]string{8080: "127.0.0.1:41001"}, Direct: map[int]string{8080: "10.99.0.9:8080"}})
	runManager(t, h)
	h.acquire("web", "a").Release()
	l := h.acquire("web", "b")
	defer l.Release()
	if c := nextAttach(t, ar); c.containerID != "plain" {
		t.Errorf("attached %s, want the adopted container without a direct address", c.containerID)
	}
	if addr, _ := l.Addr(8080); addr != "10.99.0.9:8080" {
		t.Errorf("Addr = %q, want the direct address the adopted container already had", addr)
	}
	eventually(t, "the adopted container's direct address", func() bool {
		info, _ := h.m.Instance("web", "a")
		return info.Direct[8080] == "10.99.0.2:8080"
	})
	noAttach(t, ar)
}

// attachingRuntime is a Runtime that could also attach.
type attachingRuntime struct {
	*fakeRuntime
	*fakeAttacher
}

// Without Options.Attacher nothing is attached, even when the Runtime also
// implements Attacher (the Docker runtime does): the caller's choice is the
// only switch.
func TestNoAttacherNeverAttaches(t *testing.T) {
	ar := &fakeAttacher{calls: make(chan attachCall, 16)}
	h := newHarness(t, harnessOptions{tweak: func(o *Options) {
		o.Runtime = attachingRuntime{o.Runtime.(*fakeRuntime), ar}
	}}, testContainer("web"))
	h.acquire("web", "a").Release()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.m.Shutdown(ctx); err != nil { // waits for any background attach
		t.Fatal(err)
	}
	noAttach(t, ar)
}
