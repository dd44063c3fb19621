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
	err := s.rc.Write(d.do)
	d.p = nil
	switch {
	case err != nil:
		return d.n, s.opError("write", err)
	case d.errno != 0:
		return d.n, s.opError("write", os.NewSyscallError("write", d.errno))
	}
	return d.n, nil
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
