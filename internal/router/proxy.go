package router

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/lunora/lunorad/internal/clock"
)

// touchEvery throttles Lease.Touch while bytes stream: activity is tracked at
// the granularity of sleepAfter (seconds to minutes), not per read.
const touchEvery = 100 * time.Millisecond

// forwardingHeaders are the ones ReverseProxy strips before Rewrite; lunorad
// puts back whatever the client sent (it adds none of its own, as Cloudflare
// adds none between a Durable Object and its container).
var forwardingHeaders = [...]string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// attempt is one try of one data-plane request against one instance. The
// ReverseProxy callbacks (Rewrite, ModifyResponse, ErrorHandler and the
// Transport) find it in the request context; all of them run on the
// goroutine that called ServeHTTP, so its fields need no lock.
type attempt struct {
	lease          Lease
	transport      *http.Transport
	addr           string // "127.0.0.1:NNNNN"
	path           string // raw path to forward
	instanceHeader string
	clock          clock.Clock
	// retry5xx: a 5xx response becomes a retry instead of the answer
	// (pool, not the last attempt, body replayable).
	retry5xx bool

	// Outcome, written by ModifyResponse and ErrorHandler.
	responded bool // a response (possibly a 101) went to the client
	status    int
	err       error

	// trace tells the attempt when a request was written; wrote is set
	// from the transport's write goroutine, hence atomic.
	trace httptrace.ClientTrace
	wrote atomic.Bool
}

// wroteRequest is the attempt's httptrace.ClientTrace.WroteRequest.
func (a *attempt) wroteRequest(info httptrace.WroteRequestInfo) {
	if info.Err == nil {
		a.wrote.Store(true)
	}
}

type attemptKey struct{}

func attemptFrom(ctx context.Context) *attempt {
	a, _ := ctx.Value(attemptKey{}).(*attempt)
	return a
}

// newReverseProxy builds the one ReverseProxy every data-plane attempt goes
// through; per-attempt state travels in the request context.
func newReverseProxy(log *zap.Logger, buffers *bufferPool) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:   rewrite,
		Transport: attemptTransport{},
		// ReverseProxy flushes SSE and unknown-length (chunked) bodies on
		// every write whatever this says; modifyResponse extends that to
		// large fixed-length bodies. Only a body that fits one copy buffer
		// is written once at its end: a flush timer and an extra header
		// write per response cost a third of the warm-path throughput.
		FlushInterval:  0,
		BufferPool:     buffers,
		ModifyResponse: modifyResponse,
		ErrorHandler:   recordProxyError,
		ErrorLog:       zap.NewStdLog(log.Named("reverseproxy")),
	}
}

// rewrite points the outbound request at the instance, byte-for-byte.
func rewrite(pr *httputil.ProxyRequest) {
	a := attemptFrom(pr.In.Context())
	out := pr.Out
	u := &url.URL{Scheme: "http", Host: a.addr, RawQuery: pr.In.URL.RawQuery, ForceQuery: pr.In.URL.ForceQuery}
	if strings.HasPrefix(a.path, "//") {
		// An opaque "//x" would be read as scheme-relative; spell it as a
		// path instead (the same bytes whenever Go deems them canonical).
		u.Path, _ = url.PathUnescape(a.path)
		u.RawPath = a.path
	} else {
		// Opaque is sent verbatim as the request target: the container
		// sees exactly the path the client wrote.
		u.Opaque = a.path
	}
	out.URL = u
	out.Host = "container"
	for _, h := range forwardingHeaders {
		if v, ok := pr.In.Header[h]; ok {
			out.Header[h] = v
		}
	}
	for _, h := range tuningHeaders {
		delete(out.Header, h)
	}
	// Share the inbound trailer map: the server fills it when the body hits
	// EOF, which is when the transport reads it to send the trailers on.
	if pr.In.Trailer != nil {
		out.Trailer = pr.In.Trailer
	}
}

// modifyResponse stamps the instance header, marks the lease streaming,
// wraps the body so streamed bytes keep the instance awake, and turns a
// retryable pool 5xx into a retry.
func modifyResponse(res *http.Response) error {
	a := attemptFrom(res.Request.Context())
	if res.StatusCode == http.StatusSwitchingProtocols && !isUpgrade(res.Request) {
		return errUnexpectedSwitch // ReverseProxy would answer an empty 200
	}
	if a.retry5xx && res.StatusCode >= 500 {
		a.status = res.StatusCode
		return errRetryResponse
	}
	a.responded = true
	a.status = res.StatusCode
	// The container has answered: the request is no longer in flight. What
	// follows (a body, a WebSocket) keeps the instance awake only while its
	// bytes move; a short body releases the lease right after anyway.
	a.lease.Streaming()
	res.Header.Set(headerInstance, a.instanceHeader)
	switch {
	case res.StatusCode == http.StatusSwitchingProtocols:
		if rwc, ok := res.Body.(io.ReadWriteCloser); ok {
			res.Body = withWebSocketClose(res, &touchConn{ReadWriteCloser: rwc, toucher: toucher{lease: a.lease, clock: a.clock}})
		}
	case res.Body != nil && res.Body != http.NoBody:
		res.Body = &touchBody{ReadCloser: res.Body, toucher: toucher{lease: a.lease, clock: a.clock}}
		if res.ContentLength > copyBufferSize {
			// Read by ReverseProxy only to pick the flush interval (-1:
			// flush every write); the Content-Length header is unchanged.
			res.ContentLength = -1
		}
	}
	return nil
}

// recordProxyError keeps the error for the retry loop, which decides what
// the client gets; nothing is written here.
func recordProxyError(_ http.ResponseWriter, req *http.Request, err error) {
	if a := attemptFrom(req.Context()); a != nil {
		a.err = err
	}
}

// attemptTransport sends each attempt through its instance's keep-alive pool.
type attemptTransport struct{}

func (attemptTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	a := attemptFrom(req.Context())
	if a == nil {
		return nil, errors.New("internal error: request without an attempt")
	}
	return a.transport.RoundTrip(req)
}

// toucher calls Lease.Touch at most once per touchEvery.
type toucher struct {
	lease Lease
	clock clock.Clock
	last  atomic.Int64 // unix nanos of the last touch
}

func (t *toucher) touch() {
	now := t.clock.Now().UnixNano()
	last := t.last.Load()
	if last != 0 && now-last < int64(touchEvery) {
		return
	}
	if t.last.CompareAndSwap(last, now) {
		t.lease.Touch()
	}
}

// touchBody is a streamed response body that touches the lease as it moves.
type touchBody struct {
	io.ReadCloser
	toucher
}

func (b *touchBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.touch()
	}
	return n, err
}

// touchConn is the backend side of an upgraded connection (WebSocket); bytes
// in either direction touch the lease.
type touchConn struct {
	io.ReadWriteCloser
	toucher
}

func (c *touchConn) Read(p []byte) (int, error) {
	n, err := c.ReadWriteCloser.Read(p)
	if n > 0 {
		c.touch()
	}
	return n, err
}

func (c *touchConn) Write(p []byte) (int, error) {
	n, err := c.ReadWriteCloser.Write(p)
	if n > 0 {
		c.touch()
	}
	return n, err
}

// bufferPool recycles ReverseProxy's copy buffers.
type bufferPool struct{ p sync.Pool }

const copyBufferSize = 32 << 10

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}}
}

func (b *bufferPool) Get() []byte { return *(b.p.Get().(*[]byte)) }

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == copyBufferSize {
		buf = buf[:copyBufferSize]
		b.p.Put(&buf)
	}
}

// get and put serve the router's own copies: the pointer goes back as it
// came, where Put, given a slice, must allocate a new one.
func (b *bufferPool) get() *[]byte  { return b.p.Get().(*[]byte) }
func (b *bufferPool) put(p *[]byte) { b.p.Put(p) }
