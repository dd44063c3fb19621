package lifecycle

import (
	"maps"
	"testing"
	"time"
)

func TestLeaseAndProberPreferTheDirectAddress(t *testing.T) {
	web := testContainer("web")
	web.RequiredPorts = []int{8080, 9090}
	h := newHarness(t, harnessOptions{}, web)
	h.rt.mu.Lock()
	h.rt.directIP = "10.99.0.2"
	h.rt.mu.Unlock()

	l := h.acquire("web", "a")
	defer l.Release()
	want := map[int]string{8080: "10.99.0.2:8080", 9090: "10.99.0.2:9090"}
	for port, addr := range want {
		if got, ok := l.Addr(port); !ok || got != addr {
			t.Errorf("Addr(%d) = %q, %v, want %q", port, got, ok, addr)
		}
	}
	h.pr.mu.Lock()
	target := h.pr.targets[0]
	h.pr.mu.Unlock()
	if !maps.Equal(target.Addrs, want) {
		t.Errorf("prober Addrs = %v, want the direct addresses %v", target.Addrs, want)
	}
	info, err := h.m.Instance("web", "a")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(info.Direct, want) || len(info.Ports) != 2 || info.Ports[8080] == want[8080] {
		t.Errorf("info Ports = %v Direct = %v, want published ports shown beside the direct ones", info.Ports, info.Direct)
	}
}

func TestAdoptedContainerKeepsItsDirectAddress(t *testing.T) {
	web := testContainer("web")
	h := newHarness(t, harnessOptions{}, web)
	h.rt.add(Running{ID: "adopt-me", Container: "web", Instance: "a", ConfigHash: web.Hash(), Running: true,
		Created: t0.Add(-time.Hour), StartedAt: t0.Add(-time.Hour),
		Ports: map[int]string{8080: "127.0.0.1:41000"}, Direct: map[int]string{8080: "10.99.0.7:8080"}})
	runManager(t, h)
	l := h.acquire("web", "a")
	defer l.Release()
	if h.rt.runCount() != 0 {
		t.Fatal("the adoptable container was started again")
	}
	if addr, _ := l.Addr(8080); addr != "10.99.0.7:8080" {
		t.Errorf("Addr = %q, want the adopted direct address", addr)
	}
}

func TestRunAddrFallsBackPerPortToThePublishedAddress(t *testing.T) {
	r := &run{
		ports:  map[int]string{8080: "127.0.0.1:41000", 9090: "127.0.0.1:41001"},
		direct: map[int]string{8080: "10.99.0.2:8080"},
	}
	want := map[int]string{8080: "10.99.0.2:8080", 9090: "127.0.0.1:41001"}
	if got := r.addrs(); !maps.Equal(got, want) {
		t.Errorf("addrs = %v, want %v", got, want)
	}
	if _, ok := r.addr(7000); ok {
		t.Error("addr(7000) found an address for a port that is not published")
	}
}
