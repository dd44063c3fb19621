//go:build linux && !race

package rawio

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Enabled reports whether New returns raw readers and writers in this build.
const Enabled = true

// New returns c's reads and writes made with raw system calls, or c itself
// when it does not expose its descriptor.
func New(c net.Conn) io.ReadWriter {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	s := &socket{conn: c, rc: rc}
	s.r.do = s.r.read
	s.w.do = s.w.write
	s.awaitDo = s.writeThenAwait
	return s
}

// socket is one connection's raw reader and writer. Each direction keeps
// its buffer and result in fields rather than in a closure, so a call
// allocates nothing; its mutex makes concurrent calls in one direction safe,
// as they are on a net.Conn.
type socket struct {
	conn net.Conn // for the addresses in errors
	rc   syscall.RawConn
	r    direction
	w    direction

	// WriteThenAwait's state, guarded by w.mu; awaitDo is
	// writeThenAwait, bound once.
	awaitDo     func(fd uintptr) bool
	awaitCalled bool
}

type direction struct {
	mu    sync.Mutex
	p     []byte
	n     int
	errno syscall.Errno
	do    func(fd uintptr) bool // r.read or w.write, bound once
}

// read makes one read(2); false asks the poller to wait for readability.
func (d *direction) read(fd uintptr) bool {
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&d.p[0])), uintptr(len(d.p)))
		switch errno {
		case 0:
			d.n = int(n)
		case syscall.EINTR:
			// Retry at once, as net.Conn does: the poller is edge-triggered,
			// so waiting here could miss data that is already there.
			continue
		case syscall.EAGAIN:
			return false
		default:
			d.errno = errno
		}
		return true
	}
}

// done is a RawConn callback that makes no call: the poller's checks only.
func done(uintptr) bool { return true }

// write writes all of p, as net.Conn.Write does; false asks the poller to
// wait for writability and call again with what is left.
func (d *direction) write(fd uintptr) bool {
	for len(d.p) > 0 {
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&d.p[0])), uintptr(len(d.p)))
		switch errno {
		case 0:
			d.n += int(n)
			d.p = d.p[n:]
		case syscall.EINTR: // retry at once, as for reads
		case syscall.EAGAIN:
			return false
		default:
			d.errno = errno
			return true
		}
	}
	return true
}

func (s *socket) Read(p []byte) (int, error) {
	if len(p) == 0 {
		// As net.Conn: no read(2), but a closed connection still fails.
		if err := s.rc.Read(done); err != nil {
			return 0, s.opError("read", err)
		}
		return 0, nil
	}
	d := &s.r
	d.mu.Lock()
	defer d.mu.Unlock()
	d.p, d.n, d.errno = p, 0, 0
	err := s.rc.Read(d.do)
	d.p = nil
	switch {
	case err != nil:
		return 0, s.opError("read", err)
	case d.errno != 0:
		return 0, s.opError("read", os.NewSyscallError("read", d.errno))
	case d.n == 0:
		return 0, io.EOF
	}
	return d.n, nil
}

func (s *socket) Write(p []byte) (int, error) {
	d := &s.w
	d.mu.Lock()
	defer d.mu.Unlock()
	d.p, d.n, d.errno = p, 0, 0
	return s.writeResult(s.rc.Write(d.do))
}

// writeResult reports a write of s.w given the poller's error; s.w.mu is
// held.
func (s *socket) writeResult(err error) (int, error) {
	d := &s.w
	d.p = nil
	switch {
	case err != nil:
		return d.n, s.opError("write", err)
	case d.errno != 0:
		return d.n, s.opError("write", os.NewSyscallError("write", d.errno))
	}
	return d.n, nil
}

// WriteThenAwait writes all of p, as Write does, and then waits until the
// connection has something to read (bytes, end of stream or an error), a
// deadline passes or the connection is closed, without reading anything.
// Its error is the write's: whatever ends the wait, the next Read reports.
//
// It is for a request whose answer cannot come before the request is
// written. A Read right after Write almost always finds nothing (EAGAIN),
// parks in the poller and reads again when woken: one wasted system call
// per exchange. Here the write runs inside the connection's read wait
// (RawConn.Read resets the poller's readiness, then calls back), so an
// answer arriving at any time after the write wakes the wait, and the Read
// that follows finds it at the first read(2). Bytes that arrived before the
// write (which the caller's protocol does not expect) are found by that
// Read all the same once the answer's own arrival wakes the wait. The wait
// holds the connection's read side: a concurrent Read waits for it to end.
func (s *socket) WriteThenAwait(p []byte) (int, error) {
	d := &s.w
	d.mu.Lock()
	defer d.mu.Unlock()
	d.p, d.n, d.errno = p, 0, 0
	s.awaitCalled = false
	// An error here (deadline, closed) is the wait's, reported by the next
	// Read, unless the write never ran: Write's own call then reports it.
	_ = s.rc.Read(s.awaitDo)
	var err error
	if !s.awaitCalled || (len(d.p) > 0 && d.errno == 0) {
		err = s.rc.Write(d.do) // not run, or stopped by a full buffer
	}
	return s.writeResult(err)
}

// writeThenAwait is WriteThenAwait's read callback: the first call writes
// and, when the whole of p went out, asks the poller to wait for
// readability; the next call, made once readable, ends the wait.
func (s *socket) writeThenAwait(fd uintptr) bool {
	if s.awaitCalled {
		return true
	}
	s.awaitCalled = true
	// A full socket buffer (EAGAIN) or a failure ends the read wait here:
	// WriteThenAwait completes the write, or reports its error.
	return !s.w.write(fd) || s.w.errno != 0 || len(s.w.p) > 0
}

// opError is the error net.Conn returns for the same failure. RawConn
// reports poller errors (deadline, closed) as an *net.OpError with Op
// "raw-read" or "raw-write"; its Err is what net.Conn would wrap.
func (s *socket) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: s.conn.LocalAddr().Network(), Source: s.conn.LocalAddr(), Addr: s.conn.RemoteAddr(), Err: err}
}
