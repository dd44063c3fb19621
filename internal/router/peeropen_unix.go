//go:build unix

package router

import (
	"net"
	"syscall"
	"unsafe"
)

// peeker probes whether an idle connection is still open at the other end:
// a non-blocking peek finds nothing to read (EAGAIN). EOF, a reset or
// unexpected bytes mean the container closed it or broke it. It is made
// once per connection, with its callback bound, so a probe allocates
// nothing; probes of one connection do not overlap (it is idle).
type peeker struct {
	rc syscall.RawConn // nil: no probe possible (see broken)
	// broken: the connection has a descriptor that could not be reached;
	// it is never reused. A connection without one is, unprobed.
	broken bool
	buf    [1]byte
	open   bool
	probe  func(fd uintptr) bool
}

func newPeeker(c net.Conn) *peeker {
	p := &peeker{}
	if sc, ok := c.(syscall.Conn); ok {
		rc, err := sc.SyscallConn()
		p.rc, p.broken = rc, err != nil
	}
	p.probe = p.peek
	return p
}

func (p *peeker) peek(fd uintptr) bool {
	// A raw call: MSG_DONTWAIT never blocks, and syscall.Recvfrom would
	// wake the runtime's sysmon on an idle daemon (package rawio).
	_, _, err := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p.buf[0])), 1, syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	p.open = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
	return true // never wait: this is a probe, not a read
}

// peerOpen reports whether the connection is still open at the other end.
func (p *peeker) peerOpen() bool {
	if p.rc == nil {
		return !p.broken
	}
	p.open = false
	return p.rc.Read(p.probe) == nil && p.open
}
