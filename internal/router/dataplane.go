package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/net/http/httpguts"

	"github.com/lunora/lunorad/internal/clock"
)

// coldStartThreshold: without ColdStarter, an Acquire that took this long
// is counted as a cold start waited for (a warm one takes microseconds).
const coldStartThreshold = 50 * time.Millisecond

// maxReplayBody is the largest request body buffered so that a retry can
// send it again (PROTOCOL §2); a larger one is streamed and sent once.
const maxReplayBody = 8 << 20

// requestBody is a data-plane request body prepared for one or more attempts.
type requestBody struct {
	// buf holds the whole body when it is replayable.
	buf        []byte
	replayable bool
	// stream is the one-shot body when it is not replayable (nil: no body).
	stream io.Reader
}

// prepareBody buffers up to maxReplayBody bytes so that attempts can replay
// the body. With one attempt, or a body known to be too large, nothing is
// buffered. A body that turns out larger is sent once: the buffered prefix,
// then the rest of the stream.
func prepareBody(r *http.Request, attempts int) (requestBody, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return requestBody{replayable: true}, nil
	}
	if attempts <= 1 || r.ContentLength > maxReplayBody {
		return requestBody{stream: r.Body}, nil
	}
	var b bytes.Buffer
	if r.ContentLength > 0 {
		b.Grow(int(r.ContentLength))
	}
	n, err := b.ReadFrom(io.LimitReader(r.Body, maxReplayBody+1))
	if err != nil {
		return requestBody{}, err
	}
	if n > maxReplayBody {
		return requestBody{stream: io.MultiReader(bytes.NewReader(b.Bytes()), r.Body)}, nil
	}
	return requestBody{buf: b.Bytes(), replayable: true}, nil
}

// forAttempt returns the body and GetBody for one attempt's request.
func (b requestBody) forAttempt() (io.ReadCloser, func() (io.ReadCloser, error)) {
	switch {
	case b.replayable && b.buf == nil:
		return http.NoBody, nil
	case b.replayable:
		get := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b.buf)), nil }
		body, _ := get()
		return body, get
	default:
		return io.NopCloser(b.stream), nil
	}
}

// outcome is how one attempt ended.
type outcome struct {
	delivered bool // a response went to the client; the request is done
	status    int  // of the delivered response
	failure   failure
	// sent: the request may have reached the container, so a body that is
	// not replayable has been consumed.
	sent bool
}

// serveData handles the three data-plane routes (PROTOCOL §2).
func (rt *Router) serveData(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	route, err := parseDataRoute(rawRequestPath(r))
	if errors.Is(err, errNotDataRoute) {
		rt.notFound(w, r)
		return
	}
	status := http.StatusOK
	defer func() { rt.metrics.dataRequest(route.kind, status, start) }()
	fail := func(f failure) {
		status = f.status
		if f.clientGone {
			status = 499 // nginx's "client closed request", for the metrics only
			return
		}
		writeFailure(w, f)
	}
	if err != nil {
		fail(badRequest("%s", err.Error()))
		return
	}
	if rt.draining.Load() {
		fail(shuttingDownFailure())
		return
	}
	c, ok := rt.instances.Container(route.container)
	if !ok {
		fail(failure{status: http.StatusNotFound, body: fmt.Sprintf("Unknown container %q", route.container), final: true})
		return
	}
	tun, err := parseTuning(r.Header, route.kind)
	if err != nil {
		fail(badRequest("%s", err.Error()))
		return
	}
	size := tun.poolSize
	if size == 0 {
		size = c.PoolSize()
	}
	body, err := prepareBody(r, tun.attempts)
	if err != nil {
		if r.Context().Err() != nil {
			fail(failure{clientGone: true})
			return
		}
		fail(badRequest("Error reading the request body: %v", err))
		return
	}

	id := route.id
	if route.kind == kindAny {
		id = poolID(rt.rand(size)) // any picks once per request
	}
	var last outcome
	for k := range tun.attempts {
		if k > 0 {
			rt.metrics.retries[route.kind].Inc()
			if ce := rt.log.Check(zapcore.DebugLevel, "retrying"); ce != nil {
				ce.Write(zap.String("container", route.container), zap.String("instance", id),
					zap.Int("attempt", k+1), zap.Duration("wait", tun.wait(k)), zap.Error(last.failure.err))
			}
			if err := clock.Sleep(r.Context(), rt.clock, tun.wait(k)); err != nil {
				fail(failure{clientGone: true, err: err})
				return
			}
		}
		if route.kind == kindPool {
			id = poolID(rt.rand(size)) // pool picks again on every attempt
		}
		isLast := k == tun.attempts-1
		last = rt.attempt(w, r, route, tun, id, body, route.kind == kindPool && !isLast && body.replayable)
		if last.delivered {
			status = last.status
			return
		}
		if isLast || !rt.mayRetry(route.kind, last, body) {
			break
		}
	}
	f := last.failure
	if !f.clientGone {
		w.Header().Set(headerInstance, encodeID(id))
		rt.logFailure(route, id, f)
	}
	fail(f)
}

// mayRetry decides whether another attempt may follow o.
func (rt *Router) mayRetry(kind routeKind, o outcome, body requestBody) bool {
	f := o.failure
	switch {
	case f.clientGone || f.final:
		return false
	case o.sent && !body.replayable:
		return false // the one-shot body is gone
	case kind == kindPool:
		return true // any 5xx or connection error, on a fresh pick
	default:
		return f.retryable // get/any: provisioning failures only
	}
}

// attempt runs one try: acquire the instance, proxy, release.
func (rt *Router) attempt(w http.ResponseWriter, r *http.Request, route dataRoute, tun tuning, id string, body requestBody, retry5xx bool) outcome {
	ctx := r.Context()
	acquireStart := time.Now()
	lease, err := rt.instances.Acquire(ctx, route.container, id)
	if err != nil {
		return outcome{failure: acquireFailure(ctx, err)}
	}
	defer lease.Release()
	waited := time.Since(acquireStart)
	rt.metrics.acquireWait.Observe(waited.Seconds())
	if cs, ok := lease.(ColdStarter); ok {
		if cs.ColdStart() {
			rt.metrics.coldStarts.Inc()
		}
	} else if waited >= coldStartThreshold {
		rt.metrics.coldStarts.Inc()
	}

	port := tun.targetPort
	if port == 0 {
		port = lease.DefaultPort()
		if port == 0 {
			return outcome{failure: noPortFailure(route.container)}
		}
	}
	addr, ok := lease.Addr(port)
	if !ok {
		return outcome{failure: portFailure(route.container, port)}
	}

	pool := rt.pools.get(route.container, lease)
	attemptCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	fl := &inflight{cancel: cancel, upgrade: isUpgrade(r)}
	if !pool.register(fl) {
		// The run ended between Acquire and now.
		return outcome{failure: failure{status: http.StatusInternalServerError, body: bodyDisconnected, retryable: true, err: errInstanceStopped}}
	}
	defer pool.unregister(fl)

	a := &attempt{
		lease: lease, transport: pool.transport, addr: addr, path: route.path,
		instanceHeader: encodeID(id), clock: rt.clock, retry5xx: retry5xx,
	}
	if !rt.reverseProxyOnly && inlineEligible(r, body) {
		rt.forwardInline(attemptCtx, w, r, a, pool.conns, body.buf)
	} else {
		a.trace.WroteRequest = a.wroteRequest
		req := r.WithContext(httptrace.WithClientTrace(context.WithValue(attemptCtx, attemptKey{}, a), &a.trace))
		req.Body, req.GetBody = body.forAttempt()
		rt.proxy.ServeHTTP(w, req)
	}

	switch {
	case a.responded:
		return outcome{delivered: true, status: a.status}
	case errors.Is(a.err, errRetryResponse):
		return outcome{sent: true, failure: failure{
			status: a.status, retryable: true,
			err: fmt.Errorf("instance %q answered %d", id, a.status),
		}}
	case a.err == nil:
		// ReverseProxy always responds or reports; keep the loop total.
		a.err = errors.New("internal error: the proxy produced no response")
	}
	proxyErr := a.err
	if a.wrote.Load() && isDialError(proxyErr) {
		// net/http wrote the request on a kept-alive connection, lost that
		// connection before any response byte and replayed the request on a
		// new one, which was refused: the container died with the request
		// in hand. (Through docker-proxy the replay's dial succeeded and
		// this surfaced as the drop itself.)
		proxyErr = &droppedMidRequestError{replay: proxyErr}
	}
	f := proxyFailure(ctx, attemptCtx, proxyErr)
	return outcome{failure: f, sent: !isDialError(proxyErr)}
}

// logFailure logs a data-plane error once, where it becomes the response.
func (rt *Router) logFailure(route dataRoute, id string, f failure) {
	lvl := zapcore.WarnLevel
	if f.status < 500 {
		lvl = zapcore.DebugLevel
	}
	if ce := rt.log.Check(lvl, "data-plane request failed"); ce != nil {
		ce.Write(zap.String("container", route.container), zap.String("instance", id),
			zap.String("route", route.kind.String()), zap.Int("status", f.status), zap.Error(f.err))
	}
}

func poolID(n int) string { return "pool-" + strconv.Itoa(n) }

// isUpgrade reports whether r asks to switch protocols (WebSocket).
func isUpgrade(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" && httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade")
}
