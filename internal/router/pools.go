package router

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// Keep-alive tuning of the per-instance transports.
const (
	dialTimeout         = 5 * time.Second // loopback: a slow dial means a wedged container
	idleConnTimeout     = 90 * time.Second
	maxIdleConnsPerHost = 256 // sized for concurrent requests to one instance
	maxIdleConns        = 4096
)

// instanceKey names one run of one instance. A new run publishes new ports,
// so its connections never mix with the previous run's.
type instanceKey struct {
	container  string
	instance   string
	generation uint64
}

// inflight is one proxied attempt that must end when its instance stops (or,
// for an upgraded connection, when the router closes).
type inflight struct {
	cancel  context.CancelCauseFunc
	upgrade bool
}

// instancePool is the keep-alive pool of one instance run. It is dropped, its
// idle connections closed and its in-flight attempts cancelled, when the run
// ends (Lease.Done): the issue asks for "pools dropped when an instance
// stops", which one shared Transport could only do globally.
type instancePool struct {
	// conns carries the requests forwarded inline; transport the rest
	// (upgrades, streamed bodies).
	conns     *connPool
	transport *http.Transport

	// mu guards everything that follows.
	mu       sync.Mutex
	inflight map[*inflight]struct{}
	stopped  bool
}

// register adds f unless the pool is already stopped.
func (p *instancePool) register(f *inflight) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	p.inflight[f] = struct{}{}
	return true
}

// unregister removes f. The last attempt out of a stopped pool closes the
// connections it returned to the idle pool after the stop.
func (p *instancePool) unregister(f *inflight) {
	p.mu.Lock()
	delete(p.inflight, f)
	last := p.stopped && len(p.inflight) == 0
	p.mu.Unlock()
	if last {
		p.closeIdle()
	}
}

// stop cancels every in-flight attempt with cause and closes idle connections.
func (p *instancePool) stop(cause error) {
	p.mu.Lock()
	p.stopped = true
	for f := range p.inflight {
		f.cancel(cause)
	}
	p.mu.Unlock()
	p.closeIdle()
}

func (p *instancePool) closeIdle() {
	p.conns.closeIdle()
	p.transport.CloseIdleConnections()
}

// cancelUpgrades cancels the in-flight upgraded connections with cause.
func (p *instancePool) cancelUpgrades(cause error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for f := range p.inflight {
		if f.upgrade {
			f.cancel(cause)
		}
	}
}

// pools holds one instancePool per live instance run.
type pools struct {
	closing <-chan struct{}
	// watchers counts the goroutines waiting for a run to end.
	watchers sync.WaitGroup

	// mu guards everything that follows.
	mu     sync.Mutex
	byKey  map[instanceKey]*instancePool
	closed bool // no new watchers once shutdown started waiting
}

func newPools(closing <-chan struct{}) *pools {
	return &pools{closing: closing, byKey: make(map[instanceKey]*instancePool)}
}

// get returns the pool of the lease's run, creating it (and its watcher) on
// first use.
func (ps *pools) get(container string, l Lease) *instancePool {
	k := instanceKey{container: container, instance: l.Instance(), generation: l.Generation()}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p := ps.byKey[k]; p != nil {
		return p
	}
	p := &instancePool{conns: newConnPool(), transport: newInstanceTransport(), inflight: make(map[*inflight]struct{})}
	if ps.closed {
		// The router is closed (and may be waiting for its watchers): a
		// stopped pool refuses the attempt without starting a watcher.
		p.stopped = true
		return p
	}
	ps.byKey[k] = p
	ps.watchers.Add(1)
	go ps.watch(k, p, l.Done())
	return p
}

// watch drops p when its run ends or the router closes, whichever is first.
func (ps *pools) watch(k instanceKey, p *instancePool, done <-chan struct{}) {
	defer ps.watchers.Done()
	cause := errInstanceStopped
	select {
	case <-done:
	case <-ps.closing:
		cause = errRouterClosed
	}
	ps.mu.Lock()
	if ps.byKey[k] == p {
		delete(ps.byKey, k)
	}
	ps.mu.Unlock()
	p.stop(cause)
}

// cancelUpgrades cancels every upgraded connection of every pool.
func (ps *pools) cancelUpgrades(cause error) {
	ps.mu.Lock()
	live := make([]*instancePool, 0, len(ps.byKey))
	for _, p := range ps.byKey {
		live = append(live, p)
	}
	ps.mu.Unlock()
	for _, p := range live {
		p.cancelUpgrades(cause)
	}
}

// shutdown stops new watchers and waits for the running ones, which end
// because closing is closed.
func (ps *pools) shutdown() {
	ps.mu.Lock()
	ps.closed = true
	ps.mu.Unlock()
	ps.watchers.Wait()
}

// newInstanceDialer dials an instance, for the inline pool and the
// Transport alike.
func newInstanceDialer() *net.Dialer {
	return &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
}

// newInstanceTransport is the keep-alive transport of one instance run.
func newInstanceTransport() *http.Transport {
	d := newInstanceDialer()
	return &http.Transport{
		// Containers are on loopback; an HTTP_PROXY in lunorad's own
		// environment must never capture this traffic.
		Proxy:               nil,
		DialContext:         d.DialContext,
		MaxIdleConns:        maxIdleConns,
		MaxIdleConnsPerHost: maxIdleConnsPerHost,
		IdleConnTimeout:     idleConnTimeout,
		ForceAttemptHTTP2:   false,
		// Pass Accept-Encoding and compressed bodies through untouched:
		// the container must see the client's headers, not Go's.
		DisableCompression: true,
	}
}
