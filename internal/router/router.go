package router

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/lunora/lunorad/internal/clock"
	"github.com/lunora/lunorad/internal/events"
)

// defaultHeartbeat is the SSE comment interval: below the idle timeouts of
// common proxies and browsers (30 s and up).
const defaultHeartbeat = 15 * time.Second

// Options configure a Router. Instances and Control are required.
type Options struct {
	// Instances serves the data plane.
	Instances Instances
	// Control serves the control plane.
	Control Control
	// Events feeds GET /v1/events; nil serves a stream with heartbeats only.
	Events *events.Bus
	// Logger; nil means zap.NewNop().
	Logger *zap.Logger
	// Clock times retry backoff and SSE heartbeats; nil means the wall clock.
	Clock clock.Clock
	// Rand returns a uniform int in [0, n) for any/pool picks; nil means
	// math/rand/v2. It must be safe for concurrent use.
	Rand func(n int) int
	// Registry receives the router's metrics and is what GET /metrics
	// serves; nil means a private registry (never the global one).
	Registry *prometheus.Registry
	// Heartbeat is the SSE comment interval; 0 means 15 s.
	Heartbeat time.Duration
}

// Router is lunorad's HTTP handler. Create it with New; call Close when done.
type Router struct {
	instances Instances
	control   Control
	events    *events.Bus
	log       *zap.Logger
	clock     clock.Clock
	rand      func(n int) int
	heartbeat time.Duration
	metrics   *metrics
	proxy     *httputil.ReverseProxy
	buffers   *bufferPool // body copy buffers of both proxy paths
	// reverseProxyOnly sends every request through ReverseProxy, never
	// inline; tests set it to compare the two paths.
	reverseProxyOnly bool
	pools            *pools
	handler          http.Handler
	// dataHandler is serveData behind the recoverer, for DataHandler.
	dataHandler http.Handler

	// draining refuses new data-plane requests (Drain).
	draining  atomic.Bool
	drained   chan struct{} // closed by Drain: ends SSE streams
	drainOnce sync.Once
	closing   chan struct{} // closed by Close: ends watchers and everything in flight
	closeOnce sync.Once
}

// New builds a Router. It panics if Instances or Control is nil: that is a
// wiring mistake in the composition root, not a runtime condition.
func New(opts Options) *Router {
	if opts.Instances == nil || opts.Control == nil {
		panic("router.New: Options.Instances and Options.Control are required")
	}
	rt := &Router{
		instances: opts.Instances,
		control:   opts.Control,
		events:    opts.Events,
		log:       opts.Logger,
		clock:     opts.Clock,
		rand:      opts.Rand,
		heartbeat: opts.Heartbeat,
		drained:   make(chan struct{}),
		closing:   make(chan struct{}),
	}
	if rt.log == nil {
		rt.log = zap.NewNop()
	}
	rt.log = rt.log.Named("router")
	if rt.clock == nil {
		rt.clock = clock.Real{}
	}
	if rt.rand == nil {
		rt.rand = rand.IntN
	}
	if rt.heartbeat <= 0 {
		rt.heartbeat = defaultHeartbeat
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	rt.metrics = newMetrics(reg)
	rt.buffers = newBufferPool()
	rt.proxy = newReverseProxy(rt.log, rt.buffers)
	rt.pools = newPools(rt.closing)
	rt.handler = rt.routes()
	rt.dataHandler = rt.recoverer(http.HandlerFunc(rt.serveData))
	return rt
}

// Handler returns the HTTP handler serving every route.
func (rt *Router) Handler() http.Handler { return rt.handler }

// DataHandler serves the data-plane routes only, without chi's routing
// pass (serveData parses the raw path itself): httpfront uses it for the
// requests TakesFastPath selects. Anything else gets the same 404 as
// Handler gives.
func (rt *Router) DataHandler() http.Handler { return rt.dataHandler }

// Drain makes the data plane answer new requests with the 503 "no Container
// instance" body (as ErrShuttingDown does) and ends the SSE event streams, so
// that http.Server.Shutdown only waits for real in-flight requests. The
// control plane keeps answering.
func (rt *Router) Drain() {
	rt.drainOnce.Do(func() {
		rt.draining.Store(true)
		close(rt.drained)
	})
}

// CloseWebSockets closes every proxied upgraded connection (WebSocket).
// http.Server.Shutdown neither waits for nor closes hijacked connections;
// call this after it returns.
func (rt *Router) CloseWebSockets() {
	rt.pools.cancelUpgrades(errRouterClosed)
}

// Close drains, cancels whatever is still in flight, drops every keep-alive
// pool and waits for the router's goroutines to end.
func (rt *Router) Close() {
	rt.Drain()
	rt.closeOnce.Do(func() { close(rt.closing) })
	rt.pools.shutdown()
}

func (rt *Router) routes() http.Handler {
	mux := chi.NewRouter()
	mux.Use(rt.recoverer)
	mux.NotFound(rt.notFound)
	mux.MethodNotAllowed(rt.methodNotAllowed)

	mux.Get("/healthz", rt.healthz)
	mux.Method(http.MethodGet, "/metrics", rt.metrics.handler)

	mux.Route("/v1", func(v1 chi.Router) {
		v1.Get("/events", rt.serveEvents)
		v1.Get("/containers", rt.api(rt.listContainers))
		v1.Get("/containers/{name}", rt.api(rt.getContainer))
		v1.Get("/containers/{name}/instances", rt.api(rt.listInstances))
		v1.Get("/containers/{name}/instances/{id}", rt.api(rt.getInstance))
		v1.Get("/containers/{name}/instances/{id}/state", rt.api(rt.getState))
		v1.Post("/containers/{name}/instances/{id}/start", rt.api(rt.startInstance))
		v1.Post("/containers/{name}/instances/{id}/stop", rt.api(rt.stopInstance))
		v1.Post("/containers/{name}/instances/{id}/destroy", rt.api(rt.destroyInstance))
		v1.Post("/containers/{name}/instances/{id}/renew-activity-timeout", rt.api(rt.renewActivity))

		// Data plane: every method. The handler re-parses the raw path
		// itself, because ids are decoded from the bytes the client sent.
		data := http.HandlerFunc(rt.serveData)
		v1.Handle("/containers/{name}/instances/{id}/fetch*", data)
		v1.Handle("/containers/{name}/any/fetch*", data)
		v1.Handle("/containers/{name}/pool/fetch*", data)
	})
	return mux
}

// recoverer logs a handler panic and answers 500, except for
// http.ErrAbortHandler, which ReverseProxy raises on purpose to abort a
// response mid-body and which the server must see.
func (rt *Router) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			rt.log.Error("handler panic", zap.Any("panic", v), zap.String("method", r.Method),
				zap.String("path", r.URL.Path), zap.Stack("stack"))
			writeAPIError(w, &apiError{status: http.StatusInternalServerError, code: codeInternal, message: "internal error"})
		}()
		next.ServeHTTP(w, r)
	})
}

func (rt *Router) healthz(w http.ResponseWriter, _ *http.Request) {
	status, body := http.StatusOK, map[string]string{"status": "ok"}
	if rt.draining.Load() {
		status, body = http.StatusServiceUnavailable, map[string]string{"status": "draining"}
	}
	rt.metrics.request(kindControl, status)
	writeJSON(w, status, body)
}

func (rt *Router) notFound(w http.ResponseWriter, r *http.Request) {
	// chi's {id} does not match an empty segment; an empty id (and any
	// other malformed data-plane target) still deserves its 400.
	if _, err := parseDataRoute(rawRequestPath(r)); !errors.Is(err, errNotDataRoute) {
		rt.serveData(w, r)
		return
	}
	rt.metrics.request(kindControl, http.StatusNotFound)
	writeAPIError(w, apiNotFound("no route for %s %s", r.Method, r.URL.EscapedPath()))
}

func (rt *Router) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	rt.metrics.request(kindControl, http.StatusMethodNotAllowed)
	writeAPIError(w, &apiError{status: http.StatusMethodNotAllowed, code: codeBadRequest,
		message: "method " + r.Method + " is not allowed on " + r.URL.EscapedPath()})
}
