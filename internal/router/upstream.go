package router

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/lunora/lunorad/internal/h1"
	"github.com/lunora/lunorad/internal/rawio"
)

// The inline upstream client: one instance run's keep-alive connections,
// used by forwardInline to send a request and read its response on the
// handler's own goroutine. http.Transport hands every request to a writer
// goroutine and every response to a reader goroutine; on a small VM those two
// wake-ups per request were most of the warm path's cost (BENCHMARKS.md). The
// Transport stays for what this client does not do: upgrades, streamed or
// large request bodies, request trailers and Expect: 100-continue.

const (
	// upstreamBufferSize sizes each connection's reader and writer.
	upstreamBufferSize = 4 << 10
	// maxResponseHeaderBytes bounds one response head, as
	// http.Transport's default MaxResponseHeaderBytes does.
	maxResponseHeaderBytes = 10 << 20
)

// aLongTimeAgo is a deadline that unblocks a pending read or write at once.
var aLongTimeAgo = time.Unix(1, 0)

// errUnexpectedSwitch: a 101 answered a request that did not ask to switch.
var errUnexpectedSwitch = errors.New("the container switched protocols (101) on a request that did not ask to upgrade")

// upstreamConn is one keep-alive connection to an instance.
type upstreamConn struct {
	conn      net.Conn
	addr      string
	lr        limitedReader // br's source
	br        *bufio.Reader
	rw        requestWriter // bw's destination
	bw        *bufio.Writer
	peek      *peeker
	idleSince time.Time
}

// limitedReader reads from the connection until remaining runs out; it
// bounds response heads (body reads set remaining to unlimited).
type limitedReader struct {
	r         io.Reader // the connection (through rawio)
	remaining int64
}

func (r *limitedReader) Read(p []byte) (int, error) {
	if r.remaining <= 0 {
		return 0, errHeadersTooLarge
	}
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n, err := r.r.Read(p)
	r.remaining -= int64(n)
	return n, err
}

// awaitWriter is rawio's socket: it can write a request and wait for the
// answer without the read that would find nothing yet (rawio.WriteThenAwait).
type awaitWriter interface {
	WriteThenAwait(p []byte) (int, error)
}

// requestWriter writes to the connection; the write that ends a request
// (await set) goes through WriteThenAwait when the socket offers it.
type requestWriter struct {
	w     io.Writer
	aw    awaitWriter // nil: this build's sockets are plain net.Conns
	await bool
}

func (w *requestWriter) Write(p []byte) (int, error) {
	if w.await && w.aw != nil {
		return w.aw.WriteThenAwait(p)
	}
	return w.w.Write(p)
}

// errHeadersTooLarge is http.Transport's error for the same case.
var errHeadersTooLarge = fmt.Errorf("net/http: server response headers exceeded %d bytes; aborted", maxResponseHeaderBytes)

// connPool keeps idle connections per address, newest first: the most
// recently used connection is the least likely to have been closed by the
// container's own idle timeout.
type connPool struct {
	dialer *net.Dialer
	now    func() time.Time // idle ages; replaced in tests

	// mu guards idle.
	mu   sync.Mutex
	idle map[string][]*upstreamConn
}

func newConnPool() *connPool {
	return &connPool{
		dialer: newInstanceDialer(),
		now:    time.Now,
		idle:   make(map[string][]*upstreamConn),
	}
}

// get returns an idle connection to addr (reused=true) or dials a new one.
// A dial error is the dialer's *net.OpError with Op "dial", which the router
// classifies as "nothing listens".
func (p *connPool) get(ctx context.Context, addr string) (c *upstreamConn, reused bool, err error) {
	if c := p.takeIdle(addr); c != nil {
		return c, true, nil
	}
	conn, err := p.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	sock := rawio.New(conn)
	c = &upstreamConn{conn: conn, addr: addr, lr: limitedReader{r: sock}, peek: newPeeker(conn)}
	c.rw.w = sock
	c.rw.aw, _ = sock.(awaitWriter)
	c.br = bufio.NewReaderSize(&c.lr, upstreamBufferSize)
	c.bw = bufio.NewWriterSize(&c.rw, upstreamBufferSize)
	return c, false, nil
}

// takeIdle pops the newest idle connection to addr younger than
// idleConnTimeout, closing the expired ones it passes. The checks run
// outside the lock: the peek is a system call.
func (p *connPool) takeIdle(addr string) *upstreamConn {
	now := p.now()
	for {
		c := p.popIdle(addr)
		if c == nil {
			return nil
		}
		// A connection the container closed while it sat idle is dropped
		// here rather than failing the request written on it; the
		// Transport learns the same from its read loop.
		if now.Sub(c.idleSince) < idleConnTimeout && c.br.Buffered() == 0 && c.peek.peerOpen() {
			return c
		}
		_ = c.conn.Close()
	}
}

// popIdle removes and returns the newest idle connection to addr, or nil.
func (p *connPool) popIdle(addr string) *upstreamConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.idle[addr]
	if len(list) == 0 {
		return nil
	}
	c := list[len(list)-1]
	list[len(list)-1] = nil
	p.idle[addr] = list[:len(list)-1]
	return c
}

// put returns c to the idle list, or closes it when the list is full.
func (p *connPool) put(c *upstreamConn) {
	c.idleSince = p.now()
	p.mu.Lock()
	if len(p.idle[c.addr]) < maxIdleConnsPerHost {
		p.idle[c.addr] = append(p.idle[c.addr], c)
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		_ = c.conn.Close()
	}
}

// closeIdle closes every idle connection. Connections in use are returned
// later and kept, as http.Transport.CloseIdleConnections does; the instance
// pool closes those when its last attempt leaves.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = make(map[string][]*upstreamConn)
	p.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			_ = c.conn.Close()
		}
	}
}

// exchange is one request/response on the pool's connections.
type exchange struct {
	// writeRequest writes the request (head and body) to the connection.
	writeRequest func(*bufio.Writer) error
	// replayable: the request may be sent again on a new connection when a
	// kept-alive one turns out to be closed before any response byte (GET,
	// HEAD, OPTIONS, TRACE, or an idempotency key; net/http's rule).
	replayable bool
	// wrote is called once the request is on the wire.
	wrote func()
	// got1xx receives each informational response but 101.
	got1xx func(code int, header http.Header)
}

// roundTrip sends x and returns the final response to req, which the
// response refers to (and whose method says whether it has a body). Its
// body must be read to EOF or closed: that returns the connection to the
// pool or closes it. The context bounds the whole exchange, body included.
// req is not part of x because it outlives the call in the response: in
// the same struct, x's hooks would escape to the heap with it.
func (p *connPool) roundTrip(ctx context.Context, addr string, req *http.Request, x exchange) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		c, reused, err := p.get(ctx, addr)
		if err != nil {
			return nil, err
		}
		res, stale, err := p.exchangeOn(ctx, c, req, x)
		if err == nil {
			return res, nil
		}
		_ = c.conn.Close()
		// A kept-alive connection the container closed while idle fails
		// before any response byte; net/http replays such a request once
		// on a new connection, and so does this client.
		if reused && stale && x.replayable && ctx.Err() == nil && attempt == 0 {
			continue
		}
		return nil, err
	}
}

// exchangeOn runs x on c. stale reports a failure before any byte of a
// response arrived (the request may or may not have reached the container).
func (p *connPool) exchangeOn(ctx context.Context, c *upstreamConn, req *http.Request, x exchange) (res *http.Response, stale bool, err error) {
	// The read and write below block on the connection, not on ctx: a
	// cancelled context unblocks them with a past deadline.
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(aLongTimeAgo) })
	fail := func(err error, stale bool) (*http.Response, bool, error) {
		stop()
		if ctx.Err() != nil {
			return nil, false, fmt.Errorf("%w (%w)", context.Cause(ctx), err)
		}
		return nil, stale, err
	}

	if err := x.writeRequest(c.bw); err != nil {
		return fail(err, true)
	}
	// The last write of the request also waits for the response's first
	// bytes, which the read below then finds at once.
	c.rw.await = true
	flushErr := c.bw.Flush()
	c.rw.await = false
	if flushErr != nil {
		return fail(flushErr, true)
	}
	if x.wrote != nil {
		x.wrote()
	}
	for n := 0; ; n++ {
		c.lr.remaining = maxResponseHeaderBytes
		if _, err := c.br.Peek(1); err != nil {
			return fail(err, n == 0)
		}
		res, err := c.readResponse(req)
		if err != nil {
			if c.lr.remaining <= 0 {
				return fail(errHeadersTooLarge, false)
			}
			// The Transport's words for a response it could not read.
			return fail(fmt.Errorf("net/http: HTTP/1.x transport connection broken: %w", err), false)
		}
		switch {
		case res.StatusCode == http.StatusSwitchingProtocols:
			return fail(errUnexpectedSwitch, false)
		case res.StatusCode >= 100 && res.StatusCode < 200:
			// Passed on (ReverseProxy's hook writes them to the client);
			// like the Transport, no limit on how many.
			if x.got1xx != nil {
				x.got1xx(res.StatusCode, res.Header)
			}
			continue
		}
		c.lr.remaining = math.MaxInt64
		keep := !res.Close
		if res.Body == http.NoBody {
			// HEAD, 204, 304, Content-Length: 0: the exchange is over.
			p.release(c, stop, keep)
			return res, false, nil
		}
		res.Body = &upstreamBody{body: res.Body, conn: c, pool: p, stop: stop, keep: keep}
		return res, false, nil
	}
}

// readResponse reads the next response head from c, as http.ReadResponse
// does. A common head already buffered whole is parsed by hand, which yields
// the same response with half the allocations; any other (not yet complete,
// longer than the buffer, chunked, ...) goes to http.ReadResponse.
func (c *upstreamConn) readResponse(req *http.Request) (*http.Response, error) {
	buf, _ := c.br.Peek(c.br.Buffered())
	res, headLen, ok := h1.ParseResponse(buf, req)
	if !ok {
		return http.ReadResponse(c.br, req)
	}
	if _, err := c.br.Discard(headLen); err != nil {
		return nil, err
	}
	if res.Body == nil {
		res.Body = h1.NewBody(c.br, res.ContentLength, res.Close)
	}
	return res, nil
}

// release ends an exchange on c: back to the pool when the connection can
// carry another request and the context did not fire, closed otherwise.
func (p *connPool) release(c *upstreamConn, stop func() bool, keep bool) {
	if stop() && keep {
		p.put(c)
		return
	}
	_ = c.conn.Close()
}

// upstreamBody is a response body that gives its connection back when read
// to the end and closes it when abandoned earlier.
type upstreamBody struct {
	body io.ReadCloser
	conn *upstreamConn
	pool *connPool
	stop func() bool
	keep bool
	done bool
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	if err != nil {
		b.finish(err == io.EOF)
	}
	return n, err
}

// Close abandons the rest of the body: the connection is closed, not
// drained, because the rest may be an endless stream.
func (b *upstreamBody) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

func (b *upstreamBody) finish(complete bool) {
	b.done = true
	if !complete {
		// Closing first makes the body's own Close return at once instead
		// of draining what the container still sends.
		_ = b.conn.conn.Close()
		_ = b.body.Close()
		b.stop()
		return
	}
	// At EOF the body's Close only marks it closed (and, for a chunked
	// body, has already read the trailers into the response).
	_ = b.body.Close()
	b.pool.release(b.conn, b.stop, b.keep)
}
