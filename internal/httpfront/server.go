// Package httpfront serves lunorad's port. Plain HTTP/1.1 requests, the
// data plane's warm path, are read and answered on their connection's own
// goroutine with a lean response writer: net/http's server starts a
// background read on every request and moves read deadlines three times to
// stop it, which on a small machine cost a fifth of the proxy's CPU
// (BENCHMARKS.md). Any other request (an upgrade, Expect, a chunked or large
// body, HTTP/1.0, a head that does not parse, one Take declines) hands the
// whole connection, at that request's first byte, to a net/http Server,
// which serves it and every later request on it.
package httpfront

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lunora/lunorad/internal/h1"
	"github.com/lunora/lunorad/internal/rawio"
	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"
)

const (
	// readBufferSize bounds a request head served here; a larger one goes
	// to the fallback, which answers it as net/http does.
	readBufferSize  = 16 << 10
	writeBufferSize = 4 << 10
	// maxBody is the largest request body served here; it is read in full
	// before the handler runs.
	maxBody = 64 << 10
	// watchAfter: a request still running after this long gets a goroutine
	// watching for the client to hang up, which cancels its context (what
	// net/http's background read does for every request). One watchdog
	// goroutine per server looks every watchAfter, and only while some
	// connection is active: no per-request timer.
	watchAfter = 10 * time.Millisecond
)

// aLongTimeAgo unblocks a pending read at once.
var aLongTimeAgo = time.Unix(1, 0)

// errClientGone cancels a request whose client hung up.
var errClientGone = errors.New("the client closed the connection")

// Server serves a listener; see the package comment.
type Server struct {
	// Handler serves the requests taken here.
	Handler http.Handler
	// Fallback serves the connections handed off; its Handler should be
	// Handler. Serve runs it; Shutdown and Close stop it. Its
	// ReadHeaderTimeout also bounds the heads read here.
	Fallback *http.Server
	// Take reports whether a plain request may be served here; nil takes
	// every one.
	Take func(*http.Request) bool
	// Logger receives what net/http would print to its ErrorLog.
	Logger *zap.Logger

	dateText atomic.Pointer[dateCache]
	// closing is set by Shutdown and Close: no new connection or request
	// starts, and responses say Connection: close, as net/http's do. It is
	// written with mu held, so a check under mu orders with closeIdle.
	closing atomic.Bool

	// mu guards everything below.
	mu      sync.Mutex
	ln      net.Listener
	handoff *handoffListener
	conns   map[*conn]bool // value: idle (waiting for a request)
	// fallbackDone is closed when Fallback.Serve has returned fallbackErr.
	fallbackDone chan struct{}
	fallbackErr  error
	// watchdog is closed when the watchdog goroutine ends; nil when none runs.
	watchdog chan struct{}
}

// Serve accepts connections on ln until Shutdown or Close, then returns
// http.ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	if s.ln != nil {
		s.mu.Unlock()
		return errors.New("httpfront: Serve called twice")
	}
	s.ln = ln
	s.handoff = newHandoffListener(ln.Addr())
	s.conns = make(map[*conn]bool)
	s.fallbackDone = make(chan struct{})
	s.mu.Unlock()
	go func() {
		s.fallbackErr = s.Fallback.Serve(s.handoff)
		close(s.fallbackDone)
	}()

	var backoff time.Duration
	for {
		rwc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && !errors.Is(err, net.ErrClosed) {
				// Out of descriptors and the like: net/http's backoff.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logf("http: Accept error: %v; retrying in %v", err, backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := s.newConn(rwc)
		if !s.track(c) {
			_ = rwc.Close()
			continue
		}
		go c.serve()
	}
}

// Shutdown stops accepting, closes idle connections, waits for the active
// ones to finish their request (or ctx), then shuts the fallback down.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	ln := s.ln
	s.mu.Unlock()
	var lnErr error
	if ln != nil {
		lnErr = ln.Close()
		if errors.Is(lnErr, net.ErrClosed) {
			lnErr = nil
		}
	}
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	var waitErr error
	for s.closeIdle() > 0 {
		select {
		case <-ctx.Done():
			waitErr = ctx.Err()
		case <-poll.C:
			continue
		}
		break
	}
	if waitErr == nil {
		waitErr = s.waitWatchdog(ctx)
	}
	fallbackErr := s.stopFallback(func() error { return s.Fallback.Shutdown(ctx) })
	if waitErr != nil && fallbackErr == waitErr {
		fallbackErr = nil // the same expired context: said once
	}
	return errors.Join(lnErr, waitErr, fallbackErr)
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closing.Store(true)
	ln := s.ln
	for c := range s.conns {
		_ = c.rwc.Close()
	}
	s.mu.Unlock()
	var lnErr error
	if ln != nil {
		if lnErr = ln.Close(); errors.Is(lnErr, net.ErrClosed) {
			lnErr = nil
		}
	}
	return errors.Join(lnErr, s.stopFallback(s.Fallback.Close))
}

// stopFallback stops the fallback server and waits for its Serve to end;
// Shutdown and Close may both be waiting.
func (s *Server) stopFallback(stop func() error) error {
	err := stop()
	s.mu.Lock()
	done := s.fallbackDone
	s.mu.Unlock()
	if done != nil {
		<-done
		if serr := s.fallbackErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
	}
	return err
}

// track registers a new connection as active; false once closing.
func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[c] = false
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// setIdle marks c idle or active; false means the server is closing and c
// must close instead. An active connection starts the watchdog.
func (s *Server) setIdle(c *conn, idle bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[c] = idle
	if !idle && s.watchdog == nil {
		s.watchdog = make(chan struct{})
		go s.watchLongRequests(s.watchdog)
	}
	return true
}

// watchLongRequests starts a client-gone watcher on each request running
// longer than watchAfter. It ends once no connection is active.
func (s *Server) watchLongRequests(done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(watchAfter)
	defer tick.Stop()
	var active []*conn
	for range tick.C {
		active = active[:0]
		s.mu.Lock()
		for c, idle := range s.conns {
			if !idle {
				active = append(active, c)
			}
		}
		if len(active) == 0 {
			s.watchdog = nil
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		now := time.Now()
		for _, c := range active {
			c.maybeWatch(now)
		}
	}
}

// waitWatchdog waits for the watchdog to end (it does within watchAfter of
// the last connection going idle or away), or for ctx.
func (s *Server) waitWatchdog(ctx context.Context) error {
	s.mu.Lock()
	done := s.watchdog
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closeIdle closes the idle connections and returns how many are left.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c, idle := range s.conns {
		if idle {
			_ = c.rwc.Close()
			delete(s.conns, c)
		}
	}
	return len(s.conns)
}

func (s *Server) logf(format string, args ...any) {
	if s.Logger != nil {
		s.Logger.Warn(fmt.Sprintf(format, args...))
	}
}

// logPanic logs a recovered panic with its stack, as net/http does.
func (s *Server) logPanic(remoteAddr string, v any) {
	if s.Logger != nil {
		s.Logger.Error(fmt.Sprintf("http: panic serving %v: %v", remoteAddr, v), zap.Stack("stack"))
	}
}

// date is the Date header's value now, formatted once per second.
func (s *Server) date() string {
	now := time.Now()
	if d := s.dateText.Load(); d != nil && d.sec == now.Unix() {
		return d.text
	}
	d := &dateCache{sec: now.Unix(), text: now.UTC().Format(http.TimeFormat)}
	s.dateText.Store(d)
	return d.text
}

// conn is one client connection while this package serves it.
type conn struct {
	s          *Server
	rwc        net.Conn
	remoteAddr string
	baseCtx    context.Context
	in         stashReader
	br         *bufio.Reader
	bw         *bufio.Writer
	out        errWriter
	res        *response // reused across requests
	// sock reads and writes rwc on the serving path (see package rawio).
	sock io.ReadWriter

	// headReader parses a head peeked from br without consuming it, so a
	// head that is not taken can still be handed off whole.
	headBytes  bytes.Reader
	headReader *bufio.Reader

	writeFailed bool
	cancelReq   context.CancelCauseFunc

	// Client-gone watching of the request in progress.
	// watchMu guards the fields below.
	watchMu    sync.Mutex
	reqActive  bool
	reqStart   time.Time
	pipelined  bool // the next request's bytes were already buffered
	watching   bool
	watchDone  chan struct{}
	clientGone bool
	watchAbort atomic.Bool
}

func (s *Server) newConn(rwc net.Conn) *conn {
	c := &conn{s: s, rwc: rwc, remoteAddr: rwc.RemoteAddr().String()}
	// The values net/http puts in every request's context.
	c.baseCtx = context.WithValue(context.WithValue(context.Background(),
		http.ServerContextKey, s.Fallback), http.LocalAddrContextKey, rwc.LocalAddr())
	c.sock = rawio.New(rwc)
	c.in.r = c.sock
	c.br = bufio.NewReaderSize(&c.in, readBufferSize)
	c.out.c = c
	c.bw = bufio.NewWriterSize(&c.out, writeBufferSize)
	return c
}

// serve runs the connection until it closes or is handed off.
func (c *conn) serve() {
	handedOff := false
	defer func() {
		if v := recover(); v != nil {
			c.s.logPanic(c.remoteAddr, v)
		}
		if !handedOff {
			_ = c.rwc.Close()
			c.s.untrack(c)
		}
	}()
	for first := true; ; first = false {
		if !c.s.setIdle(c, true) {
			return
		}
		// As net/http: a new connection has ReadHeaderTimeout to send its
		// first head; a kept-alive one may idle, and the timeout starts
		// with the next request's first byte.
		deadline := first && c.s.Fallback.ReadHeaderTimeout > 0
		if deadline {
			_ = c.rwc.SetReadDeadline(time.Now().Add(c.s.Fallback.ReadHeaderTimeout))
		}
		if _, err := c.br.Peek(1); err != nil {
			return
		}
		// Still idle until the whole head is in: as in net/http, Shutdown
		// closes a connection that has sent only part of one.
		head, err := c.readHead(deadline)
		if errors.Is(err, errHandOff) {
			handedOff = c.handOff()
			return
		}
		if err != nil || !c.s.setIdle(c, false) {
			return
		}
		req := c.parse(head)
		if req == nil {
			handedOff = c.handOff()
			return
		}
		if _, err := c.br.Discard(len(head)); err != nil {
			return
		}
		if !c.serveRequest(req) {
			return
		}
	}
}

// errHandOff: the request is not one this package serves.
var errHandOff = errors.New("hand off")

// readHead returns the next request head (through its blank line), still
// unread in br.
func (c *conn) readHead(deadline bool) ([]byte, error) {
	defer func() {
		if deadline {
			_ = c.rwc.SetReadDeadline(time.Time{})
		}
	}()
	scanned := 0
	for {
		buf, _ := c.br.Peek(c.br.Buffered())
		// The head ends at the first CRLFCRLF. Only CRLF line ends are
		// parsed here: a bare LF before that (legal for net/http) would
		// otherwise leave us waiting for a CRLFCRLF that never comes.
		for i := scanned; i < len(buf); i++ {
			if buf[i] != '\n' {
				continue
			}
			if i == 0 || buf[i-1] != '\r' {
				return nil, errHandOff
			}
			if i >= 3 && buf[i-2] == '\n' && buf[i-3] == '\r' {
				return buf[:i+1], nil
			}
		}
		scanned = len(buf)
		if len(buf) >= readBufferSize {
			return nil, errHandOff
		}
		if !deadline && c.s.Fallback.ReadHeaderTimeout > 0 {
			_ = c.rwc.SetReadDeadline(time.Now().Add(c.s.Fallback.ReadHeaderTimeout))
			deadline = true
		}
		if _, err := c.br.Peek(len(buf) + 1); err != nil {
			return nil, err
		}
	}
}

// parse reads head into a request served here, or returns nil when the
// request must go to the fallback.
func (c *conn) parse(head []byte) *http.Request {
	// The common heads are parsed by hand, which yields exactly what
	// http.ReadRequest would, in about half its time and allocations.
	req, ok := h1.ParseRequest(head)
	if !ok {
		if req = c.readRequest(head); req == nil {
			return nil
		}
	}
	switch {
	case req.ProtoMajor != 1 || req.ProtoMinor != 1,
		req.Method == http.MethodConnect,
		!strings.HasPrefix(req.RequestURI, "/"),
		len(req.TransferEncoding) > 0,
		req.Header["Upgrade"] != nil,
		req.Header["Expect"] != nil,
		len(req.Trailer) > 0,
		req.ContentLength < 0 || req.ContentLength > maxBody:
		return nil
	}
	// net/http's own check of Host, which both parsers leave to the
	// server: a request failing it goes to the fallback for its 400.
	// (Both refused two Host headers and moved the one to req.Host;
	// origin-form targets only, so it came from the header.)
	if req.Host == "" || !httpguts.ValidHostHeader(req.Host) {
		return nil
	}
	if c.s.Take != nil && !c.s.Take(req) {
		return nil
	}
	req.RemoteAddr = c.remoteAddr
	return req
}

// readRequest parses head with net/http, or returns nil.
func (c *conn) readRequest(head []byte) *http.Request {
	if !plainHead(head) {
		return nil
	}
	if c.headReader == nil {
		c.headReader = bufio.NewReaderSize(&c.headBytes, readBufferSize)
	}
	c.headBytes.Reset(head)
	c.headReader.Reset(&c.headBytes)
	req, err := http.ReadRequest(c.headReader)
	if err != nil {
		return nil
	}
	// net/http's server also refuses header names and values that
	// http.ReadRequest lets through; the fallback answers those with its
	// 400. (h1 accepts only bytes that pass these checks.)
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil
			}
		}
	}
	return req
}

// plainHead reports whether the head starts with a request line and has no
// folded (continued) header lines; anything else is left to net/http.
func plainHead(head []byte) bool {
	if len(head) == 0 || head[0] < 'A' || head[0] > 'Z' {
		return false
	}
	return !bytes.Contains(head, []byte("\n ")) && !bytes.Contains(head, []byte("\n\t"))
}

// serveRequest reads the body, runs the handler and completes the
// response; false means the connection must close.
func (c *conn) serveRequest(req *http.Request) bool {
	if req.ContentLength > 0 {
		body := make([]byte, req.ContentLength)
		if _, err := io.ReadFull(c.br, body); err != nil {
			return false
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
	} else {
		req.Body = http.NoBody
	}
	ctx, cancel := context.WithCancelCause(c.baseCtx)
	defer cancel(nil)
	req = req.WithContext(ctx)
	c.cancelReq = cancel
	c.writeFailed = false
	w := c.newResponse(req)

	c.beginRequest()
	aborted := c.runHandler(w, req)
	gone := c.stopWatch()

	if aborted {
		// As net/http: what reached the connection's buffer goes out,
		// the rest of the response never does.
		_ = c.bw.Flush()
		return false
	}
	reuse := w.finish()
	return reuse && !gone
}

// runHandler calls the handler and reports whether it panicked (with
// http.ErrAbortHandler or otherwise), which aborts the response.
func (c *conn) runHandler(w *response, req *http.Request) (aborted bool) {
	defer func() {
		if v := recover(); v != nil {
			aborted = true
			if v != http.ErrAbortHandler {
				c.s.logPanic(c.remoteAddr, v)
			}
		}
	}()
	c.s.Handler.ServeHTTP(w, req)
	return false
}

// beginRequest makes the request starting visible to the watchdog.
func (c *conn) beginRequest() {
	c.watchMu.Lock()
	c.reqActive = true
	c.reqStart = time.Now()
	c.clientGone = false
	c.pipelined = c.br.Buffered() > 0
	c.watchMu.Unlock()
}

// maybeWatch begins reading the connection in the background when its
// request has run longer than watchAfter: EOF or an error there means the
// client is gone. A pipelined request already buffered shows it is not.
func (c *conn) maybeWatch(now time.Time) {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	if !c.reqActive || c.watching || c.pipelined || now.Sub(c.reqStart) < watchAfter {
		return
	}
	c.watching = true
	c.watchAbort.Store(false)
	done := make(chan struct{})
	c.watchDone = done
	cancel := c.cancelReq
	go func() {
		defer close(done)
		n, err := c.rwc.Read(c.in.stash[:])
		c.watchMu.Lock()
		defer c.watchMu.Unlock()
		if n == 1 {
			c.in.stashed = true // the next request's first byte
			return
		}
		if err != nil && !c.watchAbort.Load() {
			c.clientGone = true
			cancel(errClientGone)
		}
	}()
}

// stopWatch ends the request's watching and reports whether the client
// went away.
func (c *conn) stopWatch() bool {
	c.watchMu.Lock()
	c.reqActive = false
	watching, done := c.watching, c.watchDone
	c.watchMu.Unlock()
	if watching {
		c.watchAbort.Store(true)
		_ = c.rwc.SetReadDeadline(aLongTimeAgo)
		<-done
		_ = c.rwc.SetReadDeadline(time.Time{})
		c.watchMu.Lock()
		c.watching = false
		c.watchMu.Unlock()
	}
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	return c.clientGone
}

// handOff gives the connection, unread bytes included, to the fallback.
func (c *conn) handOff() bool {
	c.s.untrack(c)
	return c.s.handoff.push(&handedOffConn{Conn: c.rwc, r: c.br})
}

// stashReader reads the connection, first returning the byte the watcher
// read while a request ran (the start of a pipelined request).
type stashReader struct {
	r       io.Reader
	stash   [1]byte
	stashed bool // guarded by conn.watchMu while a watcher may run
}

func (r *stashReader) Read(p []byte) (int, error) {
	if r.stashed && len(p) > 0 {
		r.stashed = false
		p[0] = r.stash[0]
		return 1, nil
	}
	return r.r.Read(p)
}

// errWriter writes to the connection; a failed write cancels the request
// in progress, as it does in net/http.
type errWriter struct{ c *conn }

func (w *errWriter) Write(p []byte) (int, error) {
	n, err := w.c.sock.Write(p)
	if err != nil && !w.c.writeFailed {
		w.c.writeFailed = true
		if w.c.cancelReq != nil {
			w.c.cancelReq(fmt.Errorf("writing the response: %w", err))
		}
	}
	return n, err
}

// handedOffConn is a connection given to the fallback: reads drain what
// this package buffered before reaching the socket. They keep going through
// the buffer for the connection's life, which costs a copy but turns
// net/http's 4 KiB reads into 16 KiB raw ones: reading the socket directly
// once the buffer was drained moved a 4 MiB upload no faster (1 300-1 700
// against 1 350-1 840 MB/s, 4 alternating runs).
type handedOffConn struct {
	net.Conn
	r io.Reader
}

func (c *handedOffConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes the connection. net/http does so before closing a
// connection it answered early (a 431, a 400): the client then reads the
// answer and EOF instead of a reset caused by the bytes it had still sent.
// The embedded net.Conn would hide the TCP connection's own method.
func (c *handedOffConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// handoffListener feeds handed-off connections to the fallback's Serve.
type handoffListener struct {
	addr  net.Addr
	conns chan net.Conn
	// mu guards closed (and the close of done).
	mu     sync.Mutex
	closed bool
	done   chan struct{}
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c to Accept; false (and c closed) once the listener is closed.
func (l *handoffListener) push(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		_ = c.Close()
		return false
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.done)
	}
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }
