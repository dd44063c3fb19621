package lifecycle

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/events"
)

func TestAcquireSingleFlight(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	release := make(chan struct{})
	h.pr.gate(release)

	const callers = 100
	var wg sync.WaitGroup
	leases := make(chan *Lease, callers)
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			l, err := h.m.Acquire(ctx, "web", "one")
			if err != nil {
				errs <- err
				return
			}
			leases <- l
		})
	}
	// Every caller must have joined the one start before it may finish.
	eventually(t, "100 callers waiting on one start", func() bool { return h.waiters("web", "one") == callers })
	if got := h.status("web", "one"); got != StatusRunning {
		t.Fatalf("status during the gate = %q, want running", got)
	}
	close(release)
	wg.Wait()
	close(leases)
	close(errs)
	for err := range errs {
		t.Errorf("Acquire: %v", err)
	}
	if n := h.rt.runCount(); n != 1 {
		t.Fatalf("Runtime.Run called %d times, want 1", n)
	}
	gens := map[uint64]bool{}
	n := 0
	for l := range leases {
		gens[l.Generation()] = true
		n++
		l.Release()
	}
	if n != callers || len(gens) != 1 {
		t.Fatalf("got %d leases over generations %v, want %d on one", n, gens, callers)
	}
}

func TestAcquireHoldsUntilHealthy(t *testing.T) {
	c := testContainer("web")
	c.RequiredPorts = []int{8080, 9090}
	h := newHarness(t, harnessOptions{}, c)
	release := make(chan struct{})
	h.pr.gate(release)

	type result struct {
		l   *Lease
		err error
	}
	res := make(chan result, 1)
	go func() {
		l, err := h.m.Acquire(context.Background(), "web", "a")
		res <- result{l, err}
	}()
	eventually(t, "the caller to wait on the start", func() bool { return h.waiters("web", "a") == 1 })
	eventually(t, "the container to be registered", func() bool { return h.containerID("web", "a") != "" })
	select {
	case r := <-res:
		t.Fatalf("Acquire returned before the gate passed: %+v", r)
	default:
	}
	if s := h.status("web", "a"); s != StatusRunning {
		t.Fatalf("status = %q, want running", s)
	}
	close(release)
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.l.Release()
	if s := h.status("web", "a"); s != StatusHealthy {
		t.Fatalf("status = %q, want healthy", s)
	}
	if got := r.l.Ports(); !slices.Equal(got, []int{8080, 9090}) {
		t.Fatalf("Ports = %v", got)
	}
	if addr, ok := r.l.Addr(9090); !ok || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("Addr(9090) = %q, %v", addr, ok)
	}
	if !r.l.ColdStart() {
		t.Fatal("ColdStart = false for a lease that waited for the start")
	}
	warm := h.acquire("web", "a")
	if warm.ColdStart() {
		t.Fatal("ColdStart = true for a lease on a healthy instance")
	}
	warm.Release()
	if p := r.l.DefaultPort(); p != 8080 {
		t.Fatalf("DefaultPort = %d", p)
	}
	// The prober was asked for the required ports, with the addresses.
	h.pr.mu.Lock()
	target := h.pr.targets[0]
	h.pr.mu.Unlock()
	if !slices.Equal(target.Ports, []int{8080, 9090}) || len(target.Addrs) != 2 || target.Timeout != defaultReadyTimeout {
		t.Fatalf("probe target = %+v", target)
	}
	e := h.waitEvent("a", events.Start)
	if !strings.HasPrefix(e.Message, "started in ") || e.Level != events.LevelInfo || e.Container != "web" {
		t.Fatalf("start event = %+v", e)
	}
}

func TestAcquireCallerContextBoundsOnlyTheWait(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	release := make(chan struct{})
	h.pr.gate(release)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := h.m.Acquire(ctx, "web", "a")
		errc <- err
	}()
	eventually(t, "the caller to wait", func() bool { return h.waiters("web", "a") == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// The start goes on without its caller and ends healthy, idle.
	close(release)
	eventually(t, "healthy", func() bool { return h.status("web", "a") == StatusHealthy })
	h.clk.Advance(10 * time.Minute)
	if s := h.status("web", "a"); s != StatusStopped {
		t.Fatalf("an abandoned start did not idle out: %q", s)
	}
}

func TestMaxInstances(t *testing.T) {
	limited := testContainer("limited")
	limited.MaxInstances = 2
	h := newHarness(t, harnessOptions{}, limited, testContainer("other"))

	a := h.acquire("limited", "a")
	h.acquire("limited", "b").Release()
	_, err := h.m.Acquire(context.Background(), "limited", "c")
	var ce *CapacityError
	if !errors.As(err, &ce) || ce.Max != 2 || ce.Container != "limited" {
		t.Fatalf("third instance: err = %v, want CapacityError{Max: 2}", err)
	}
	if err.Error() != "Maximum number of running container instances exceeded" {
		t.Fatalf("text = %q", err.Error())
	}
	// A running instance still serves, and Start counts too.
	h.acquire("limited", "a").Release()
	if err := h.m.Start(context.Background(), "limited", "c", StartOptions{}); !errors.As(err, &ce) {
		t.Fatalf("Start over the limit: %v", err)
	}
	// Another container is not affected.
	h.acquire("other", "a").Release()
	h.acquire("other", "b").Release()
	h.acquire("other", "c").Release()

	a.Release()
	if err := h.m.Stop(context.Background(), "limited", "b", ""); err != nil {
		t.Fatal(err)
	}
	h.acquire("limited", "c").Release()
	if n := h.rt.runCount(); n != 6 {
		t.Fatalf("runs = %d, want 6", n)
	}
}

func TestCapacityCountsStartsInProgress(t *testing.T) {
	c := testContainer("one")
	c.MaxInstances = 1
	h := newHarness(t, harnessOptions{}, c)
	release := make(chan struct{})
	h.pr.gate(release)
	done := make(chan error, 1)
	go func() {
		l, err := h.m.Acquire(context.Background(), "one", "a")
		if err == nil {
			l.Release()
		}
		done <- err
	}()
	eventually(t, "start in progress", func() bool { return h.waiters("one", "a") == 1 })
	var ce *CapacityError
	if _, err := h.m.Acquire(context.Background(), "one", "b"); !errors.As(err, &ce) {
		t.Fatalf("err = %v, want CapacityError while a is starting", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestUnknownContainer(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	var ue *UnknownContainerError
	if _, err := h.m.Acquire(context.Background(), "nope", "a"); !errors.As(err, &ue) || ue.Name != "nope" {
		t.Fatalf("Acquire: %v", err)
	}
	if err := h.m.Stop(context.Background(), "nope", "a", ""); !errors.As(err, &ue) {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := h.m.State("nope", "a"); !errors.As(err, &ue) {
		t.Fatalf("State: %v", err)
	}
	if names := h.m.ContainerNames(); !slices.Equal(names, []string{"web"}) {
		t.Fatalf("ContainerNames = %v", names)
	}
	if _, ok := h.m.Container("web"); !ok {
		t.Fatal("Container(web) not found")
	}
}

func TestLeaseDefaultPortFallbacks(t *testing.T) {
	required := testContainer("required")
	required.DefaultPort = 0
	required.RequiredPorts = []int{9000, 7000}
	published := testContainer("published")
	published.DefaultPort = 0
	published.ReadyOn = nil
	h := newHarness(t, harnessOptions{}, required, published)
	l := h.acquire("required", "a")
	defer l.Release()
	if p := l.DefaultPort(); p != 9000 {
		t.Fatalf("DefaultPort = %d, want the first required port 9000", p)
	}
	l2 := h.acquire("published", "a")
	defer l2.Release()
	if p := l2.DefaultPort(); p != 0 {
		t.Fatalf("DefaultPort with nothing published = %d, want 0", p)
	}
}
