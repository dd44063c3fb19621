package lifecycle

import (
	"context"
	"testing"
)

// stoppingWaiters reports how many callers joined the instance's stop in progress.
func (h *harness) stoppingWaiters(container, id string) int {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	inst := h.m.lookupLocked(container, id)
	if inst == nil || inst.stopping == nil {
		return 0
	}
	return inst.stopping.waiters
}

// A Destroy that joined a stop in progress ends with that stop; a request
// that was waiting for the same stop and then starts the instance afresh
// is new traffic, and Destroy must not cancel its start (found end to end:
// a request retried after its container was destroyed got "instance was
// stopped while starting"). The waiting Acquire is queued before Destroy,
// so it is usually the first to run when the stop ends: the cycle repeats
// to make the interleaving all but certain.
func TestDestroyLeavesAStartThatBeganAfterItsStop(t *testing.T) {
	h := newHarness(t, harnessOptions{}, testContainer("web"))
	h.acquire("web", "a").Release()
	for cycle := range 20 {
		unblock := make(chan struct{})
		h.rt.set(func(f *fakeRuntime) {
			f.stopHook = func(ctx context.Context, _ string) error {
				select {
				case <-unblock:
				case <-ctx.Done():
				}
				return nil
			}
		})
		stopErr := make(chan error, 1)
		go func() { stopErr <- h.m.Stop(context.Background(), "web", "a", "") }()
		eventually(t, "stopping", func() bool { return h.status("web", "a") == StatusStopping })

		type acquired struct {
			l   *Lease
			err error
		}
		acq := make(chan acquired, 1)
		go func() {
			l, err := h.m.Acquire(context.Background(), "web", "a")
			acq <- acquired{l, err}
		}()
		eventually(t, "Acquire to wait for the stop", func() bool { return h.stoppingWaiters("web", "a") == 1 })
		destroyErr := make(chan error, 1)
		go func() { destroyErr <- h.m.Destroy(context.Background(), "web", "a") }()
		eventually(t, "Destroy to join the stop", func() bool { return h.stoppingWaiters("web", "a") == 2 })
		close(unblock)

		if err := <-stopErr; err != nil {
			t.Fatalf("cycle %d: Stop: %v", cycle, err)
		}
		if err := <-destroyErr; err != nil {
			t.Fatalf("cycle %d: Destroy: %v", cycle, err)
		}
		got := <-acq
		if got.err != nil {
			t.Fatalf("cycle %d: the Acquire that waited for the stop got %v; Destroy cancelled a start that began after it", cycle, got.err)
		}
		got.l.Release()
		if s := h.status("web", "a"); s != StatusHealthy {
			t.Fatalf("cycle %d: status = %q, want healthy (the fresh run)", cycle, s)
		}
		h.rt.set(func(f *fakeRuntime) { f.stopHook = nil })
	}
}
