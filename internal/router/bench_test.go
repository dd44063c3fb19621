package router

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/httpfront"
)

// benchInstances hands out one warm lease, as lifecycle does for a healthy
// instance, without recording anything.
type benchInstances struct {
	c     *config.Container
	lease *fakeLease
}

func (b *benchInstances) Acquire(context.Context, string, string) (Lease, error) { return b.lease, nil }
func (b *benchInstances) Container(string) (*config.Container, bool)             { return b.c, true }

var benchPayload = []byte(`{"ok":true,"items":[1,2,3,4,5,6,7,8,9,10]}`)

func benchBackend(b *testing.B) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(benchPayload)
	}))
	b.Cleanup(s.Close)
	return s
}

func benchClient(b *testing.B) *http.Client {
	tr := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func runParallelGets(b *testing.B, client *http.Client, url string) {
	b.ReportAllocs()
	// Several requests in flight per core, as a Worker under load sends
	// them; with one per core the numbers measure scheduler wake-ups.
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
}

// BenchmarkProxyWarm measures a warm instance behind the router: keep-alive
// on both sides, no cold start, no retry.
func BenchmarkProxyWarm(b *testing.B) {
	backend := benchBackend(b)
	lease := &fakeLease{id: "bench", gen: 1, defaultPort: 8080, done: make(chan struct{}), released: make(chan struct{}),
		addrs: map[int]string{8080: backend.Listener.Addr().String()}}
	rt := New(Options{Instances: &benchInstances{c: &config.Container{Name: "web", DefaultPort: 8080}, lease: lease},
		Control: newFakeControl(nil)})
	front := httptest.NewServer(rt.Handler())
	b.Cleanup(func() { front.Close(); rt.Close() })
	runParallelGets(b, benchClient(b), front.URL+"/v1/containers/web/instances/bench/fetch/items?limit=10")
}

// BenchmarkDirect is the same client against the same backend, no router.
func BenchmarkDirect(b *testing.B) {
	backend := benchBackend(b)
	runParallelGets(b, benchClient(b), backend.URL+"/items?limit=10")
}

// BenchmarkProxyWarmFront is BenchmarkProxyWarm served as the daemon serves
// it: httpfront in front, data routes through DataHandler.
func BenchmarkProxyWarmFront(b *testing.B) {
	backend := benchBackend(b)
	lease := &fakeLease{id: "bench", gen: 1, defaultPort: 8080, done: make(chan struct{}), released: make(chan struct{}),
		addrs: map[int]string{8080: backend.Listener.Addr().String()}}
	rt := New(Options{Instances: &benchInstances{c: &config.Container{Name: "web", DefaultPort: 8080}, lease: lease},
		Control: newFakeControl(nil)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &httpfront.Server{Handler: rt.DataHandler(), Fallback: &http.Server{Handler: rt.Handler()}, Take: TakesFastPath}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close(); rt.Close() })
	runParallelGets(b, benchClient(b), "http://"+ln.Addr().String()+"/v1/containers/web/instances/bench/fetch/items?limit=10")
}
